"""Build a tiny but valid nuScenes-format dataset (v1.0-mini tables) from the shared keyframe.

One scene, one sample: the keyframe's LiDAR sweep and six JPEGs are copied into
``<root>/samples/``, one earlier LiDAR sweep (a copy of the keyframe cloud at a known ego
offset) into ``<root>/sweeps/``, and the 13 JSON tables are derived from the mmdet3d info
pickle's matrices and boxes (LiDAR-frame boxes are moved to the global frame for
``sample_annotation``).  Cameras get the ego pose at their own timestamp, recovered from the
pickle's ``lidar2cam``.  The scene name is not an official one, so a ``splits.json`` is
written.  :func:`write_synthetic_map` adds a small map-expansion JSON around the ego.
"""
from __future__ import annotations

import json
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from perception.structures import (NUSCENES_CLASSES, invert_transform, make_transform,
                                   matrix_to_quaternion, yaw_matrix)

PICKLE_NAME = "n015-2018-07-24-11-22-45+0800.pkl"
LOCATION = "singapore-onenorth"  # n015 is a Singapore vehicle; the exact map is a fixture choice
VERSION = "v1.0-mini"
DETECTION_TO_CATEGORY = {
    "car": "vehicle.car", "truck": "vehicle.truck", "trailer": "vehicle.trailer",
    "bus": "vehicle.bus.rigid", "construction_vehicle": "vehicle.construction",
    "bicycle": "vehicle.bicycle", "motorcycle": "vehicle.motorcycle",
    "pedestrian": "human.pedestrian.adult", "traffic_cone": "movable_object.trafficcone",
    "barrier": "movable_object.barrier",
}
IGNORED_CATEGORY = "movable_object.pushable_pullable"  # label -1 in the pickle: not a detection class
SWEEP_LAG_S = 0.05
SWEEP_EGO_OFFSET = make_transform(yaw_matrix(np.radians(-0.5)), [-0.46, 0.02, 0.0])
"""Sweep ego pose = keyframe ego pose @ this (the vehicle was 0.46 m behind, turned 0.5 deg)."""


@dataclass
class NuScenesFixture:
    """Where the fixture lives and what it was built from."""

    root: Path
    info: dict[str, Any]  # the pickle's record
    scene_name: str
    sweep_path: Path
    sweep_lidar2global: np.ndarray


def _pose_record(token: str, matrix: np.ndarray, timestamp: int) -> dict[str, Any]:
    return {"token": token, "timestamp": timestamp, "rotation": matrix_to_quaternion(matrix[:3, :3]).tolist(),
            "translation": matrix[:3, 3].tolist()}


def _calibration(token: str, sensor: str, matrix: np.ndarray, intrinsic: list) -> dict[str, Any]:
    return {"token": token, "sensor_token": sensor, "rotation": matrix_to_quaternion(matrix[:3, :3]).tolist(),
            "translation": matrix[:3, 3].tolist(), "camera_intrinsic": intrinsic}


def _microseconds(seconds: float) -> int:
    return int(round(seconds * 1e6))


def _annotations(info: dict, lidar2global: np.ndarray, sample_token: str) -> tuple[list, list, list]:
    """``(sample_annotation, instance, category)`` tables from the pickle's LiDAR boxes."""
    names = sorted(set(DETECTION_TO_CATEGORY.values()) | {IGNORED_CATEGORY})
    categories = [{"token": f"cat-{i}", "name": name, "description": name} for i, name in enumerate(names)]
    category_token = {c["name"]: c["token"] for c in categories}
    annotations, instances = [], []
    for index, inst in enumerate(info["instances"]):
        x, y, z, length, width, height, yaw = inst["bbox_3d"]
        label = inst["bbox_label_3d"]
        name = DETECTION_TO_CATEGORY[NUSCENES_CLASSES[label]] if label >= 0 else IGNORED_CATEGORY
        box2global = lidar2global @ make_transform(yaw_matrix(yaw), [x, y, z])
        ann_token, inst_token = f"ann-{index:03d}", f"inst-{index:03d}"
        annotations.append({
            "token": ann_token, "sample_token": sample_token, "instance_token": inst_token,
            "visibility_token": "4", "attribute_tokens": [],
            "translation": box2global[:3, 3].tolist(), "size": [width, length, height],
            "rotation": matrix_to_quaternion(box2global[:3, :3]).tolist(), "prev": "", "next": "",
            "num_lidar_pts": int(inst["num_lidar_pts"]), "num_radar_pts": int(inst["num_radar_pts"]),
        })
        instances.append({"token": inst_token, "category_token": category_token[name], "nbr_annotations": 1,
                          "first_annotation_token": ann_token, "last_annotation_token": ann_token})
    return annotations, instances, categories


def build_nuscenes_fixture(keyframe_dir: Path, root: Path, scene_name: str = "fixture-scene-0001",
                           write_splits: bool = True) -> NuScenesFixture:
    """Write the dataset under ``root`` (must be outside the repository) and describe it."""
    info = pickle.load((keyframe_dir / PICKLE_NAME).open("rb"))["data_list"][0]
    lidar2ego = np.asarray(info["lidar_points"]["lidar2ego"], dtype=np.float64)
    ego2global = np.asarray(info["ego2global"], dtype=np.float64)
    lidar2global = ego2global @ lidar2ego
    sample_token, scene_token, log_token, map_token = info["token"], "scene-tok", "log-tok", "map-tok"
    key_us = _microseconds(info["timestamp"])
    sensors = [{"token": "sensor-lidar", "channel": "LIDAR_TOP", "modality": "lidar"}]
    calibrations = [_calibration("cs-lidar", "sensor-lidar", lidar2ego, [])]
    poses = [_pose_record("pose-lidar", ego2global, key_us)]
    lidar_name = info["lidar_points"]["lidar_path"]
    sample_data = [{
        "token": "sd-lidar", "sample_token": sample_token, "ego_pose_token": "pose-lidar",
        "calibrated_sensor_token": "cs-lidar", "timestamp": key_us, "fileformat": "pcd",
        "is_key_frame": True, "height": 0, "width": 0, "filename": f"samples/LIDAR_TOP/{lidar_name}",
        "prev": "sd-sweep", "next": "",
    }]
    (root / "samples" / "LIDAR_TOP").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(keyframe_dir / lidar_name, root / "samples" / "LIDAR_TOP" / lidar_name)

    # One earlier sweep: the same cloud, recorded from a known earlier ego pose.
    sweep_us = key_us - _microseconds(SWEEP_LAG_S)
    sweep_ego2global = ego2global @ SWEEP_EGO_OFFSET
    sweep_rel = f"sweeps/LIDAR_TOP/{lidar_name.split('__')[0]}__LIDAR_TOP__{sweep_us}.pcd.bin"
    (root / "sweeps" / "LIDAR_TOP").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(keyframe_dir / lidar_name, root / sweep_rel)
    poses.append(_pose_record("pose-sweep", sweep_ego2global, sweep_us))
    sample_data.append({
        "token": "sd-sweep", "sample_token": sample_token, "ego_pose_token": "pose-sweep",
        "calibrated_sensor_token": "cs-lidar", "timestamp": sweep_us, "fileformat": "pcd",
        "is_key_frame": False, "height": 0, "width": 0, "filename": sweep_rel, "prev": "", "next": "sd-lidar",
    })

    for camera, record in info["images"].items():
        cam2ego = np.asarray(record["cam2ego"], dtype=np.float64)
        lidar2cam = np.asarray(record["lidar2cam"], dtype=np.float64)
        cam_ego2global = lidar2global @ invert_transform(lidar2cam) @ invert_transform(cam2ego)
        cam_us = _microseconds(record["timestamp"])
        sensors.append({"token": f"sensor-{camera}", "channel": camera, "modality": "camera"})
        calibrations.append(_calibration(f"cs-{camera}", f"sensor-{camera}", cam2ego, record["cam2img"]))
        poses.append(_pose_record(f"pose-{camera}", cam_ego2global, cam_us))
        (root / "samples" / camera).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(keyframe_dir / record["img_path"], root / "samples" / camera / record["img_path"])
        sample_data.append({
            "token": f"sd-{camera}", "sample_token": sample_token, "ego_pose_token": f"pose-{camera}",
            "calibrated_sensor_token": f"cs-{camera}", "timestamp": cam_us, "fileformat": "jpg",
            "is_key_frame": True, "height": 900, "width": 1600,
            "filename": f"samples/{camera}/{record['img_path']}", "prev": "", "next": "",
        })

    annotations, instances, categories = _annotations(info, lidar2global, sample_token)
    (root / "maps").mkdir(exist_ok=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "maps" / f"{map_token}.png")
    tables = {
        "scene": [{"token": scene_token, "log_token": log_token, "nbr_samples": 1, "name": scene_name,
                   "first_sample_token": sample_token, "last_sample_token": sample_token,
                   "description": "fixture built from the shared keyframe"}],
        "sample": [{"token": sample_token, "timestamp": key_us, "prev": "", "next": "", "scene_token": scene_token}],
        "sample_data": sample_data,
        "sample_annotation": annotations,
        "instance": instances,
        "category": categories,
        "attribute": [],
        "visibility": [{"token": str(i), "level": level, "description": level}
                       for i, level in enumerate(["v0-40", "v40-60", "v60-80", "v80-100"], start=1)],
        "calibrated_sensor": calibrations,
        "sensor": sensors,
        "ego_pose": poses,
        "log": [{"token": log_token, "logfile": lidar_name.split("__")[0], "vehicle": "n015",
                 "date_captured": "2018-07-24", "location": LOCATION}],
        "map": [{"token": map_token, "log_tokens": [log_token], "category": "semantic_prior",
                 "filename": f"maps/{map_token}.png"}],
    }
    (root / VERSION).mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        (root / VERSION / f"{name}.json").write_text(json.dumps(rows))
    if write_splits:
        (root / "splits.json").write_text(json.dumps({"train": [scene_name], "val": []}))
    return NuScenesFixture(root, info, scene_name, root / sweep_rel, sweep_ego2global @ lidar2ego)


def write_synthetic_map(root: Path, center_xy: np.ndarray, location: str = LOCATION) -> None:
    """A straight axis-aligned road around ``center_xy``: road segment and lane polygons
    (x +-100 m, y +-10 m), a lane divider at y+0, a road divider at y+3, a crossing at x+20..25."""
    cx, cy = float(center_xy[0]), float(center_xy[1])
    nodes: list[dict] = []

    def node(x: float, y: float) -> str:
        nodes.append({"token": f"n{len(nodes)}", "x": cx + x, "y": cy + y})
        return nodes[-1]["token"]

    def rectangle(x0: float, y0: float, x1: float, y1: float) -> list[str]:
        return [node(x0, y0), node(x1, y0), node(x1, y1), node(x0, y1)]

    polygons = [{"token": "poly-road", "exterior_node_tokens": rectangle(-100, -10, 100, 10), "holes": []},
                {"token": "poly-lane", "exterior_node_tokens": rectangle(-100, -10, 100, 0), "holes": []},
                {"token": "poly-cross", "exterior_node_tokens": rectangle(20, -10, 25, 10), "holes": []}]
    lines = [{"token": "line-lane", "node_tokens": [node(-100, 0), node(0, 0), node(100, 0)]},
             {"token": "line-road", "node_tokens": [node(-100, 3), node(100, 3)]}]
    content = {
        "version": "1.3", "canvas_edge": [cx + 1000, cy + 1000], "node": nodes, "line": lines,
        "polygon": polygons,
        "drivable_area": [{"token": "da", "polygon_tokens": ["poly-road"]}],
        "road_segment": [{"token": "rs", "polygon_token": "poly-road", "is_intersection": False,
                          "drivable_area_token": "da"}],
        "road_block": [], "walkway": [], "stop_line": [], "carpark_area": [], "traffic_light": [],
        "lane": [{"token": "lane", "polygon_token": "poly-lane", "lane_type": "CAR",
                  "from_edge_line_token": "", "to_edge_line_token": "",
                  "left_lane_divider_segments": [], "right_lane_divider_segments": []}],
        "ped_crossing": [{"token": "pc", "polygon_token": "poly-cross", "road_segment_token": "rs"}],
        "road_divider": [{"token": "rd", "line_token": "line-road", "road_segment_token": "rs"}],
        "lane_divider": [{"token": "ld", "line_token": "line-lane", "lane_divider_segments": []}],
        "arcline_path_3": {}, "connectivity": {}, "lane_connector": [],
    }
    (root / "maps" / "expansion").mkdir(parents=True, exist_ok=True)
    (root / "maps" / "expansion" / f"{location}.json").write_text(json.dumps(content))
