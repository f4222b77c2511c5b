"""Build one info record per nuScenes sample with the devkit (used by ``create_infos``).

The record is mmdetection3d 1.x's nuScenes layout (see :mod:`..mmdet3d_info`) plus:

* per instance: ``instance_token`` (track id), ``category_name`` (nuScenes category),
  ``sample_annotation_token`` and ``velocity_isvalid`` (False where the devkit could not
  estimate a velocity, i.e. a track annotated once; the stored velocity is then 0 so that
  mmdet3d loaders see finite numbers, and our reader turns it back into NaN = unknown);
* per frame: ``scene_token``, ``scene_name``, ``location``, ``prev`` / ``next`` sample tokens;
* per camera: ``ego2global`` at the camera's own timestamp, ``width`` / ``height``;
* ``lidar_sweeps`` as mmdet3d's ``update_infos_to_v2`` writes them, newest first:
  ``{lidar_points: {lidar_path (relative to the data root, e.g. sweeps/LIDAR_TOP/x.pcd.bin),
  lidar2ego, lidar2sensor (keyframe LiDAR -> sweep LiDAR)}, ego2global, timestamp,
  sample_data_token}``.

Keyframe LiDAR and image paths are file names only (mmdet3d's convention; the dataset adds
``samples/LIDAR_TOP`` / ``samples/CAM_*``).  Matrices are nested lists of float, times float
seconds.  Instances of non-detection categories are dropped.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from nuscenes.eval.detection.utils import category_to_detection_name
from nuscenes.nuscenes import NuScenes
from nuscenes.utils.geometry_utils import transform_matrix
from pyquaternion import Quaternion

from ...structures import CAMERA_NAMES_NUSCENES, NUSCENES_CLASSES, invert_transform

LIDAR_CHANNEL = "LIDAR_TOP"


def _pose(record: dict[str, Any]) -> np.ndarray:
    """4x4 of a calibrated_sensor or ego_pose record (sensor->ego or ego->global)."""
    return transform_matrix(record["translation"], Quaternion(record["rotation"]))


def _sensor_poses(nusc: NuScenes, sd_token: str) -> tuple[dict, np.ndarray, np.ndarray]:
    """``(sample_data record, sensor2ego, ego2global)``."""
    sd_record = nusc.get("sample_data", sd_token)
    sensor2ego = _pose(nusc.get("calibrated_sensor", sd_record["calibrated_sensor_token"]))
    ego2global = _pose(nusc.get("ego_pose", sd_record["ego_pose_token"]))
    return sd_record, sensor2ego, ego2global


def _lists(matrix: np.ndarray) -> list[list[float]]:
    return np.asarray(matrix, dtype=np.float64).tolist()


def lidar_sweeps(nusc: NuScenes, lidar_sd: dict, key_lidar2global: np.ndarray,
                 max_sweeps: int) -> list[dict[str, Any]]:
    """Up to ``max_sweeps`` previous LiDAR sample_data records, newest first."""
    sweeps: list[dict[str, Any]] = []
    record = lidar_sd
    while len(sweeps) < max_sweeps and record["prev"]:
        record, lidar2ego, ego2global = _sensor_poses(nusc, record["prev"])
        sweep2key = invert_transform(key_lidar2global) @ ego2global @ lidar2ego
        sweeps.append({
            "lidar_points": {
                "lidar_path": record["filename"],
                "lidar2ego": _lists(lidar2ego),
                "lidar2sensor": _lists(invert_transform(sweep2key)),
            },
            "ego2global": _lists(ego2global),
            "timestamp": record["timestamp"] / 1e6,
            "sample_data_token": record["token"],
        })
    return sweeps


def camera_infos(nusc: NuScenes, sample: dict, key_lidar2global: np.ndarray) -> dict[str, dict]:
    """Intrinsics, extrinsics, own-time ego pose and lidar2cam of each camera present."""
    images: dict[str, dict] = {}
    for camera in CAMERA_NAMES_NUSCENES:
        if camera not in sample["data"]:
            continue
        sd_record, cam2ego, ego2global = _sensor_poses(nusc, sample["data"][camera])
        calibration = nusc.get("calibrated_sensor", sd_record["calibrated_sensor_token"])
        lidar2cam = invert_transform(ego2global @ cam2ego) @ key_lidar2global
        images[camera] = {
            "img_path": Path(sd_record["filename"]).name,
            "cam2img": _lists(calibration["camera_intrinsic"]),
            "cam2ego": _lists(cam2ego),
            "lidar2cam": _lists(lidar2cam),
            "ego2global": _lists(ego2global),
            "timestamp": sd_record["timestamp"] / 1e6,
            "sample_data_token": sd_record["token"],
            "width": int(sd_record["width"]),
            "height": int(sd_record["height"]),
        }
    return images


def instance_infos(nusc: NuScenes, sample: dict, lidar_token: str,
                   lidar2global: np.ndarray) -> list[dict[str, Any]]:
    """Detection-class boxes of the sample in the LiDAR frame (devkit's transforms)."""
    _, boxes, _ = nusc.get_sample_data(lidar_token)  # keyframe: one box per sample['anns'], same order
    global2lidar_rotation = lidar2global[:3, :3].T
    instances = []
    for box, ann_token in zip(boxes, sample["anns"]):
        annotation = nusc.get("sample_annotation", ann_token)
        detection_name = category_to_detection_name(annotation["category_name"])
        if detection_name is None:
            continue
        velocity = nusc.box_velocity(ann_token)
        velocity_isvalid = bool(np.isfinite(velocity[:2]).all())
        velocity = global2lidar_rotation @ np.nan_to_num(velocity, nan=0.0)
        width, length, height = box.wlh
        label = NUSCENES_CLASSES.index(detection_name)
        instances.append({
            "bbox_3d": [*map(float, box.center), float(length), float(width), float(height),
                        float(box.orientation.yaw_pitch_roll[0])],
            "bbox_label": label,
            "bbox_label_3d": label,
            "velocity": [float(velocity[0]), float(velocity[1])],
            "velocity_isvalid": velocity_isvalid,
            "num_lidar_pts": int(annotation["num_lidar_pts"]),
            "num_radar_pts": int(annotation["num_radar_pts"]),
            "bbox_3d_isvalid": bool(annotation["num_lidar_pts"] + annotation["num_radar_pts"] > 0),
            "instance_token": annotation["instance_token"],
            "category_name": annotation["category_name"],
            "sample_annotation_token": ann_token,
        })
    return instances


def sample_info(nusc: NuScenes, sample: dict, sample_idx: int, max_sweeps: int) -> dict[str, Any]:
    """The full info record of one sample."""
    lidar_token = sample["data"][LIDAR_CHANNEL]
    lidar_sd, lidar2ego, ego2global = _sensor_poses(nusc, lidar_token)
    lidar2global = ego2global @ lidar2ego
    scene = nusc.get("scene", sample["scene_token"])
    log = nusc.get("log", scene["log_token"])
    return {
        "sample_idx": sample_idx,
        "token": sample["token"],
        "timestamp": lidar_sd["timestamp"] / 1e6,
        "ego2global": _lists(ego2global),
        "lidar_points": {
            "num_pts_feats": 5,
            "lidar_path": Path(lidar_sd["filename"]).name,
            "lidar2ego": _lists(lidar2ego),
        },
        "lidar_sweeps": lidar_sweeps(nusc, lidar_sd, lidar2global, max_sweeps),
        "images": camera_infos(nusc, sample, lidar2global),
        "instances": instance_infos(nusc, sample, lidar_token, lidar2global),
        "scene_token": sample["scene_token"],
        "scene_name": scene["name"],
        "location": log["location"],
        "prev": sample["prev"],
        "next": sample["next"],
    }
