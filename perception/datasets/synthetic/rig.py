"""The nuScenes-like sensor rig: LIDAR_TOP and six cameras, in the ego frame.

The ego frame has its origin at the rear axle on the ground (x forward, y left, z up).
``LIDAR_TOP`` sits 1.84 m up and is turned -90 degrees about z like the real one (its x
points right, y forward: nuScenes' ``lidar2ego`` rotation is ``[[0, 1, 0], [-1, 0, 0],
[0, 0, 1]]`` up to calibration noise).  Cameras use the OpenCV frame (x right, y down, z
forward) and nuScenes' mounting positions and yaws; intrinsics are nuScenes' scaled from
1600 x 900 to the requested image size.
"""
from __future__ import annotations

import numpy as np

from perception.structures.conventions import CAMERA_NAMES_NUSCENES

from .types import CameraRig

LIDAR_HEIGHT = 1.84
LIDAR_X = 0.94
REAR_AXLE_TO_CENTER = 1.1
"""Distance from the rear axle (ego origin) forward to the ego box centre."""

# name: (x, y, z) position in the ego frame, yaw in degrees, focal length at 1600 x 900
CAMERA_MOUNTS: dict[str, tuple[tuple[float, float, float], float, float]] = {
    "CAM_FRONT": ((1.70, 0.02, 1.51), 0.0, 1266.0),
    "CAM_FRONT_RIGHT": ((1.55, -0.49, 1.50), -55.0, 1260.0),
    "CAM_FRONT_LEFT": ((1.52, 0.49, 1.51), 55.0, 1272.0),
    "CAM_BACK": ((0.03, 0.0, 1.58), 180.0, 809.0),
    "CAM_BACK_LEFT": ((1.04, 0.48, 1.59), 110.0, 1257.0),
    "CAM_BACK_RIGHT": ((1.01, -0.48, 1.56), -110.0, 1260.0),
}
NUSCENES_IMAGE_SIZE = (1600, 900)


def lidar_to_ego() -> np.ndarray:
    """4x4 ``lidar2ego`` of ``LIDAR_TOP``: x right, y forward, z up, 1.84 m above ground."""
    transform = np.eye(4)
    transform[:3, :3] = [[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    transform[:3, 3] = [LIDAR_X, 0.0, LIDAR_HEIGHT]
    return transform


def camera_to_ego(position: tuple[float, float, float], yaw_deg: float) -> np.ndarray:
    """4x4 ``cam2ego`` of a level camera looking along ``yaw_deg`` (OpenCV axes)."""
    yaw = np.radians(yaw_deg)
    forward = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    right = np.array([np.sin(yaw), -np.cos(yaw), 0.0])
    down = np.array([0.0, 0.0, -1.0])
    transform = np.eye(4)
    transform[:3, :3] = np.stack([right, down, forward], axis=1)
    transform[:3, 3] = position
    return transform


def intrinsics(focal_1600: float, width: int, height: int) -> np.ndarray:
    """3x3 ``cam2img``: the nuScenes focal length scaled to ``width x height``, centred."""
    fx = focal_1600 * width / NUSCENES_IMAGE_SIZE[0]
    fy = focal_1600 * height / NUSCENES_IMAGE_SIZE[1]
    return np.array([[fx, 0.0, width / 2.0], [0.0, fy, height / 2.0], [0.0, 0.0, 1.0]])


def build_cameras(image_size: tuple[int, int] = (800, 450)) -> list[CameraRig]:
    """The six cameras in nuScenes order for images of ``(width, height)``."""
    width, height = image_size
    if width < 8 or height < 8:
        raise ValueError(f"image_size must be at least 8 x 8 pixels, got {image_size}")
    return [
        CameraRig(name, intrinsics(CAMERA_MOUNTS[name][2], width, height),
                  camera_to_ego(*CAMERA_MOUNTS[name][:2]), width, height)
        for name in CAMERA_NAMES_NUSCENES
    ]
