"""Write scenes as a nuScenes dataset that ``nuscenes.NuScenes(version, dataroot)`` loads unchanged.

Two steps, so that scenes can be written in parallel and merged in a fixed order:
:func:`write_scene_files` writes one scene's sensor files and returns its table rows;
:func:`write_tables` merges the rows of all scenes, adds the shared tables (category,
attribute, visibility, sensor, map) and writes the 13 JSON tables and the split files.

Choices (see also :mod:`.` for which objects are annotated):

* cameras exist on keyframes only, so every camera ``sample_data`` is a keyframe;
  LiDAR ticks between keyframes go to ``sweeps/LIDAR_TOP`` with ``is_key_frame=False``;
* ``visibility_token`` is ``"4"`` (80-100 %) for every box: the simulator has no occlusion
  model, ``num_radar_pts`` is 0;
* splits: ``<root>/splits.json`` holds ``{"train": [...], "val": [...]}``; the devkit's own
  custom-split file ``<root>/<version>/splits.json`` holds the same lists as
  ``synthetic_train`` / ``synthetic_val`` (names that are not predefined nuScenes splits, so
  ``DetectionEval(eval_set="synthetic_val")`` uses our scene lists).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ....structures import matrix_to_quaternion, yaw_matrix
from ..types import SyntheticScene, Tick
from . import annotate_tick, seconds_to_us, stable_token

LIDAR_CHANNEL = "LIDAR_TOP"
DEFAULT_VERSION = "v1.0-synthetic"
JPEG_QUALITY = 90
SCENE_TABLES: tuple[str, ...] = (
    "log", "scene", "sample", "sample_data", "ego_pose", "calibrated_sensor", "instance",
    "sample_annotation",
)
"""Tables whose rows belong to one scene (the other five are shared by all scenes)."""
VISIBILITY_LEVELS: tuple[tuple[str, str, str], ...] = (
    ("1", "v0-40", "visibility of whole object is between 0 and 40%"),
    ("2", "v40-60", "visibility of whole object is between 40 and 60%"),
    ("3", "v60-80", "visibility of whole object is between 60 and 80%"),
    ("4", "v80-100", "visibility of whole object is between 80 and 100%"),
)
DEVKIT_SPLIT_NAMES = {"train": "synthetic_train", "val": "synthetic_val"}
"""Our split name -> the name in the devkit's ``<version>/splits.json``."""


def _quaternion(rotation: np.ndarray) -> list[float]:
    return [float(v) for v in matrix_to_quaternion(np.asarray(rotation)[:3, :3])]


def _translation(transform: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(transform)[:3, 3]]


def _check_points(scene: SyntheticScene, index: int, tick: Tick) -> np.ndarray:
    points = np.asarray(tick.points)
    if points.ndim != 2 or points.shape[1] != 5:
        raise ValueError(f"scene {scene.name} tick {index}: points must be (N, 5), got {points.shape}")
    return points.astype(np.float32)


def _calibrated_sensors(scene: SyntheticScene) -> dict[str, dict[str, Any]]:
    """One calibrated_sensor row per channel of the scene's rig."""
    rows = {LIDAR_CHANNEL: {
        "token": stable_token(scene.name, "calibrated_sensor", LIDAR_CHANNEL),
        "sensor_token": stable_token("sensor", LIDAR_CHANNEL),
        "translation": _translation(scene.lidar2ego), "rotation": _quaternion(scene.lidar2ego),
        "camera_intrinsic": [],
    }}
    for camera in scene.cameras:
        rows[camera.name] = {
            "token": stable_token(scene.name, "calibrated_sensor", camera.name),
            "sensor_token": stable_token("sensor", camera.name),
            "translation": _translation(camera.cam2ego), "rotation": _quaternion(camera.cam2ego),
            "camera_intrinsic": np.asarray(camera.cam2img, dtype=float)[:3, :3].tolist(),
        }
    return rows


def _link(rows: list[dict[str, Any]]) -> None:
    """Set ``prev`` / ``next`` along ``rows`` (already in time order)."""
    for i, row in enumerate(rows):
        row["prev"] = rows[i - 1]["token"] if i > 0 else ""
        row["next"] = rows[i + 1]["token"] if i + 1 < len(rows) else ""


def write_scene_files(scene: SyntheticScene, root: Path) -> dict[str, list[dict[str, Any]]]:
    """Write the sensor files of ``scene`` under ``root`` and return its table rows.

    Files: ``samples/LIDAR_TOP/*.pcd.bin`` on keyframes, ``sweeps/LIDAR_TOP/*.pcd.bin``
    otherwise, ``samples/CAM_*/*.jpg`` on keyframes.
    """
    if not scene.ticks or not scene.ticks[0].is_keyframe:
        raise ValueError(f"scene {scene.name}: the first tick must be a keyframe")
    from nuscenes.eval.detection.constants import ATTRIBUTE_NAMES

    root = Path(root)
    calib = _calibrated_sensors(scene)
    log_token = stable_token(scene.name, "log")
    scene_token = stable_token(scene.name, "scene")
    samples: list[dict[str, Any]] = []
    chains: dict[str, list[dict[str, Any]]] = {channel: [] for channel in calib}
    ego_poses: list[dict[str, Any]] = []
    annotations: dict[str, list[dict[str, Any]]] = {}
    categories: dict[str, str] = {}
    sample_token = ""
    for index, tick in enumerate(scene.ticks):
        stamp = seconds_to_us(tick.timestamp)
        if tick.is_keyframe:
            sample_token = stable_token(scene.name, "sample", index)
            samples.append({"token": sample_token, "timestamp": stamp, "scene_token": scene_token})
        channels = [LIDAR_CHANNEL] + (sorted(tick.images) if tick.is_keyframe else [])
        for channel in channels:
            if channel not in calib:
                raise ValueError(f"scene {scene.name} tick {index}: image of unknown camera {channel!r}")
            folder = "samples" if tick.is_keyframe else "sweeps"
            suffix = "pcd.bin" if channel == LIDAR_CHANNEL else "jpg"
            filename = f"{folder}/{channel}/{scene.name}__{channel}__{stamp}.{suffix}"
            (root / folder / channel).mkdir(parents=True, exist_ok=True)
            if channel == LIDAR_CHANNEL:
                _check_points(scene, index, tick).tofile(root / filename)
                height = width = 0
            else:
                image = np.asarray(tick.images[channel], dtype=np.uint8)
                Image.fromarray(image).save(root / filename, format="JPEG", quality=JPEG_QUALITY)
                height, width = image.shape[:2]
            pose_token = stable_token(scene.name, "ego_pose", channel, index)
            ego_poses.append({"token": pose_token, "timestamp": stamp,
                              "rotation": _quaternion(tick.ego2global),
                              "translation": _translation(tick.ego2global)})
            chains[channel].append({
                "token": stable_token(scene.name, "sample_data", channel, index),
                "sample_token": sample_token, "ego_pose_token": pose_token,
                "calibrated_sensor_token": calib[channel]["token"], "timestamp": stamp,
                "fileformat": "pcd" if channel == LIDAR_CHANNEL else "jpg",
                "is_key_frame": bool(tick.is_keyframe), "height": int(height), "width": int(width),
                "filename": filename,
            })
        if tick.is_keyframe:
            found = annotate_tick(tick, scene.lidar2ego)
            for obj, box, count in zip(found.objects, found.boxes_world.data, found.num_points):
                if obj.attribute and obj.attribute not in ATTRIBUTE_NAMES:
                    raise ValueError(f"scene {scene.name} tick {index} object {obj.track_id}: "
                                     f"unknown nuScenes attribute {obj.attribute!r}")
                instance = stable_token(scene.name, "instance", obj.track_id)
                categories[instance] = obj.category
                length, width_, height_ = (float(v) for v in box[3:6])
                annotations.setdefault(instance, []).append({
                    "token": stable_token(scene.name, "sample_annotation", obj.track_id, index),
                    "sample_token": sample_token, "instance_token": instance,
                    "visibility_token": "4",
                    "attribute_tokens": [stable_token("attribute", obj.attribute)] if obj.attribute else [],
                    "translation": [float(v) for v in box[:3]], "size": [width_, length, height_],
                    "rotation": _quaternion(yaw_matrix(float(box[6]))),
                    "num_lidar_pts": int(count), "num_radar_pts": 0,
                })
    _link(samples)
    for chain in chains.values():
        _link(chain)
    instances = []
    for instance, rows in annotations.items():
        _link(rows)
        instances.append({"token": instance, "category_token": stable_token("category", categories[instance]),
                          "nbr_annotations": len(rows), "first_annotation_token": rows[0]["token"],
                          "last_annotation_token": rows[-1]["token"]})
    return {
        "log": [{"token": log_token, "logfile": scene.name, "vehicle": "synthetic-ego",
                 "date_captured": "2024-01-01", "location": scene.location}],
        "scene": [{"token": scene_token, "log_token": log_token, "nbr_samples": len(samples),
                   "first_sample_token": samples[0]["token"], "last_sample_token": samples[-1]["token"],
                   "name": scene.name, "description": f"synthetic scene in {scene.location}"}],
        "sample": samples,
        "sample_data": [row for chain in chains.values() for row in chain],
        "ego_pose": ego_poses,
        "calibrated_sensor": [calib[channel] for channel, chain in chains.items() if chain],
        "instance": instances,
        "sample_annotation": [row for rows in annotations.values() for row in rows],
    }


def _shared_tables(channels: list[str]) -> dict[str, list[dict[str, Any]]]:
    """category (the 14 nuScenes categories of the 10 detection classes), attribute, visibility, sensor."""
    from nuscenes.eval.detection.constants import ATTRIBUTE_NAMES
    from nuscenes.eval.detection.utils import category_to_detection_name

    known = ["movable_object.barrier", "vehicle.bicycle", "vehicle.bus.bendy", "vehicle.bus.rigid",
             "vehicle.car", "vehicle.construction", "vehicle.motorcycle", "human.pedestrian.adult",
             "human.pedestrian.child", "human.pedestrian.construction_worker",
             "human.pedestrian.police_officer", "movable_object.trafficcone", "vehicle.trailer",
             "vehicle.truck"]
    categories = [{"token": stable_token("category", name), "name": name, "index": i,
                   "description": f"{category_to_detection_name(name)} (synthetic)"}
                  for i, name in enumerate(known)]
    return {
        "category": categories,
        "attribute": [{"token": stable_token("attribute", name), "name": name, "description": name}
                      for name in ATTRIBUTE_NAMES],
        "visibility": [{"token": token, "level": level, "description": text}
                       for token, level, text in VISIBILITY_LEVELS],
        "sensor": [{"token": stable_token("sensor", channel), "channel": channel,
                    "modality": "lidar" if channel == LIDAR_CHANNEL else "camera"} for channel in channels],
    }


def write_tables(
    root: Path,
    scene_rows: list[dict[str, list[dict[str, Any]]]],
    splits: dict[str, list[str]],
    map_files: dict[str, str],
    version: str = DEFAULT_VERSION,
) -> Path:
    """Merge per-scene rows (in the given order) and write ``<root>/<version>/*.json``.

    ``map_files`` maps each location to its semantic-prior PNG (relative to ``root``), for the
    ``map`` table; every log's location must have one.  Returns the table folder.
    """
    root = Path(root)
    tables: dict[str, list[dict[str, Any]]] = {name: [] for name in SCENE_TABLES}
    for rows in scene_rows:
        for name in SCENE_TABLES:
            tables[name].extend(rows[name])
    channels = sorted({row["sensor_token"] for row in tables["calibrated_sensor"]})
    channel_names = sorted({row["filename"].split("/")[1] for row in tables["sample_data"]})
    tables.update(_shared_tables(channel_names))
    if len(channels) != len(channel_names):
        raise ValueError(f"{root}: {len(channels)} calibrated sensors but {len(channel_names)} channels")
    maps = []
    for location in sorted({log["location"] for log in tables["log"]}):
        if location not in map_files:
            raise ValueError(f"{root}: no map image for location {location!r}")
        maps.append({"token": stable_token("map", location), "category": "semantic_prior",
                     "filename": map_files[location],
                     "log_tokens": [log["token"] for log in tables["log"] if log["location"] == location]})
    tables["map"] = maps
    folder = root / version
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in sorted(tables.items()):
        (folder / f"{name}.json").write_text(json.dumps(rows, indent=0))
    (root / "splits.json").write_text(json.dumps(splits, indent=1, sort_keys=True))
    devkit = {DEVKIT_SPLIT_NAMES.get(name, name): scenes for name, scenes in splits.items()}
    (folder / "splits.json").write_text(json.dumps(devkit, indent=1, sort_keys=True))
    return folder
