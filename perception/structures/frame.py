"""The one frame schema of the stack: what every loader produces and every model consumes.

Conventions (frames, transform names, box centres, yaw, BEV axes, time) are in
:mod:`perception.structures.conventions`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .boxes import Boxes3D
from .geometry import invert_transform
from .map_elements import AgentHistory, MapElement


class FrameError(ValueError):
    """A frame (or one of its files) is malformed; the message names the file or field."""


@dataclass
class CameraView:
    """One camera of a frame.

    ``cam2img`` is the 3x3 intrinsic matrix, ``cam2ego`` the 4x4 extrinsic.  ``ego2global``
    is the ego pose at the camera's own timestamp when the dataset records it (nuScenes
    does), else ``None`` and the frame's pose is used.  ``image`` is filled lazily by
    :meth:`load_image`.
    """

    name: str
    image_path: str
    cam2img: np.ndarray
    cam2ego: np.ndarray
    timestamp: float
    ego2global: np.ndarray | None = None
    image_size: tuple[int, int] | None = None  # (width, height) when known without decoding
    image: np.ndarray | None = None

    def load_image(self) -> np.ndarray:
        """Decode the JPEG/PNG into ``(H, W, 3)`` uint8 RGB, raising :class:`FrameError` if bad."""
        if self.image is None:
            from PIL import Image, UnidentifiedImageError

            path = Path(self.image_path)
            if not path.is_file():
                raise FrameError(f"camera {self.name}: image file not found: {path}")
            try:
                with Image.open(path) as handle:
                    self.image = np.asarray(handle.convert("RGB"))
            except (UnidentifiedImageError, OSError) as error:
                raise FrameError(f"camera {self.name}: cannot decode image {path}: {error}") from error
        return self.image


@dataclass
class Frame:
    """One keyframe with everything the stack knows about it.

    ``points`` is ``(N, C)`` float32 in the LiDAR frame with column names
    ``point_features`` (always starting ``x, y, z``; ``time_lag`` present for multi-sweep
    input).  ``boxes`` are in the LiDAR frame and index ``class_names``.  ``map_elements``
    and ``agents`` are in the world frame.
    """

    token: str
    timestamp: float
    dataset: str
    points: np.ndarray
    point_features: tuple[str, ...]
    lidar2ego: np.ndarray
    ego2global: np.ndarray
    class_names: tuple[str, ...]
    boxes: Boxes3D = field(default_factory=Boxes3D.empty)
    cameras: dict[str, CameraView] = field(default_factory=dict)
    map_elements: list[MapElement] = field(default_factory=list)
    agents: list[AgentHistory] = field(default_factory=list)
    scene: str = ""
    location: str = ""
    lidar_path: str = ""

    def __post_init__(self) -> None:
        self.points = np.asarray(self.points, dtype=np.float32)
        if self.points.ndim != 2 or self.points.shape[1] != len(self.point_features):
            raise FrameError(
                f"frame {self.token}: points shape {self.points.shape} does not match features "
                f"{self.point_features} (from {self.lidar_path or 'memory'})"
            )
        if tuple(self.point_features[:3]) != ("x", "y", "z"):
            raise FrameError(f"frame {self.token}: point features must start with x, y, z")
        for name in ("lidar2ego", "ego2global"):
            matrix = np.asarray(getattr(self, name), dtype=np.float64)
            if matrix.shape != (4, 4) or not np.isfinite(matrix).all():
                raise FrameError(f"frame {self.token}: {name} must be a finite 4x4 matrix")
            setattr(self, name, matrix)

    @property
    def lidar2global(self) -> np.ndarray:
        """LiDAR frame to world frame."""
        return self.ego2global @ self.lidar2ego

    def feature(self, name: str) -> np.ndarray:
        """One named point column."""
        if name not in self.point_features:
            raise KeyError(f"frame {self.token} has no point feature {name!r}; has {self.point_features}")
        return self.points[:, self.point_features.index(name)]

    def lidar2cam(self, camera: str) -> np.ndarray:
        """LiDAR frame to the camera frame, through the world when the camera has its own pose."""
        view = self.cameras[camera]
        if view.ego2global is None:
            return invert_transform(view.cam2ego) @ self.lidar2ego
        cam2global = view.ego2global @ view.cam2ego
        return invert_transform(cam2global) @ self.lidar2global

    def lidar2img(self, camera: str) -> np.ndarray:
        """4x4 projection from the LiDAR frame to pixel coordinates (times depth)."""
        projection = np.eye(4)
        projection[:3, :3] = self.cameras[camera].cam2img
        return projection @ self.lidar2cam(camera)
