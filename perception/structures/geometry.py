"""Rigid transforms, yaw helpers and the BEV grid (conventions in :mod:`.conventions`)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def make_transform(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """4x4 homogeneous transform from a 3x3 rotation and a 3-vector translation."""
    transform = np.eye(4)
    transform[:3, :3] = np.asarray(rotation, dtype=np.float64)
    transform[:3, 3] = np.asarray(translation, dtype=np.float64).reshape(3)
    return transform


def invert_transform(transform: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 transform (uses R^T, no general matrix inverse)."""
    transform = np.asarray(transform, dtype=np.float64)
    rotation_t = transform[:3, :3].T
    inverse = np.eye(4)
    inverse[:3, :3] = rotation_t
    inverse[:3, 3] = -rotation_t @ transform[:3, 3]
    return inverse


def apply_transform(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform to ``(N, 3)`` points (extra columns are passed through)."""
    points = np.asarray(points)
    xyz = points[:, :3].astype(np.float64) @ np.asarray(transform)[:3, :3].T + transform[:3, 3]
    if points.shape[1] == 3:
        return xyz.astype(points.dtype, copy=False)
    out = points.copy()
    out[:, :3] = xyz
    return out


def quaternion_to_matrix(wxyz: np.ndarray) -> np.ndarray:
    """Rotation matrix of a unit quaternion given as ``(w, x, y, z)`` (nuScenes / AV2 order)."""
    w, x, y, z = np.asarray(wxyz, dtype=np.float64) / np.linalg.norm(wxyz)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quaternion(rotation: np.ndarray) -> np.ndarray:
    """``(w, x, y, z)`` unit quaternion with w >= 0 of a 3x3 rotation matrix."""
    m = np.asarray(rotation, dtype=np.float64)
    trace = np.trace(m)
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    quat = np.asarray(q)
    quat /= np.linalg.norm(quat)
    return quat if quat[0] >= 0 else -quat


def yaw_matrix(yaw: float) -> np.ndarray:
    """3x3 rotation about +z by ``yaw`` radians (counter-clockwise)."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def wrap_angle(angle: np.ndarray | float) -> np.ndarray | float:
    """Wrap angles to ``[-pi, pi)``."""
    return (np.asarray(angle) + np.pi) % (2 * np.pi) - np.pi


def yaw_of_rotation(rotation: np.ndarray) -> float:
    """Heading (yaw about +z) of a rotation matrix: the angle of its x axis in the xy plane."""
    rotation = np.asarray(rotation)
    return float(np.arctan2(rotation[1, 0], rotation[0, 0]))


@dataclass(frozen=True)
class BEVGrid:
    """A bird's-eye-view raster: column ``j`` along +x, row ``i`` along +y.

    ``x_range`` and ``y_range`` are ``(min, max)`` in metres; ``resolution`` is metres per cell.
    """

    x_range: tuple[float, float]
    y_range: tuple[float, float]
    resolution: float

    def __post_init__(self) -> None:
        if self.resolution <= 0:
            raise ValueError(f"BEVGrid resolution must be positive, got {self.resolution}")
        if self.x_range[1] <= self.x_range[0] or self.y_range[1] <= self.y_range[0]:
            raise ValueError(f"BEVGrid ranges must be (min, max), got {self.x_range}, {self.y_range}")

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)``: rows along y, columns along x."""
        height = int(round((self.y_range[1] - self.y_range[0]) / self.resolution))
        width = int(round((self.x_range[1] - self.x_range[0]) / self.resolution))
        return height, width

    def cell_of(self, xy: np.ndarray) -> np.ndarray:
        """Integer ``(row, col)`` of each ``(N, 2)`` point; out-of-grid points get -1."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        cols = np.floor((xy[:, 0] - self.x_range[0]) / self.resolution).astype(np.int64)
        rows = np.floor((xy[:, 1] - self.y_range[0]) / self.resolution).astype(np.int64)
        height, width = self.shape
        inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        cells = np.stack([rows, cols], axis=1)
        cells[~inside] = -1
        return cells

    def center_of(self, cells: np.ndarray) -> np.ndarray:
        """Metric ``(x, y)`` of the centre of each ``(N, 2)`` ``(row, col)`` cell."""
        cells = np.asarray(cells, dtype=np.float64).reshape(-1, 2)
        x = self.x_range[0] + (cells[:, 1] + 0.5) * self.resolution
        y = self.y_range[0] + (cells[:, 0] + 0.5) * self.resolution
        return np.stack([x, y], axis=1)
