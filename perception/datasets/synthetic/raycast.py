"""Vectorized ray casting against oriented boxes (slab method in each box's own frame).

Each box is cast as its silhouette's parts (:mod:`.shapes`: cars and trucks are not
cuboids), all reported as hits of that box.

Both sensors cast a grid of rays from one origin (LiDAR: beams x azimuths, camera: pixel
rows x columns).  Each box is tested only against the sub-window of the grid that can
see it (the sensor supplies the windows), so the cost follows the boxes' angular size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from .shapes import part_boxes
from .types import ObjectState

Window = tuple[int, int, int, int]  # row0, row1, col0, col1 (half-open)


@dataclass
class BoxSet:
    """Boxes as arrays: gravity centres ``(B, 3)``, sizes ``(B, 3)``, yaws ``(B,)``, categories."""

    centers: np.ndarray
    sizes: np.ndarray
    yaws: np.ndarray
    categories: list[str]

    @classmethod
    def from_objects(cls, objects: list[ObjectState]) -> "BoxSet":
        """Stack a tick's objects."""
        if not objects:
            return cls(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), [])
        return cls(np.stack([o.center for o in objects]).astype(np.float64),
                   np.stack([o.size for o in objects]).astype(np.float64),
                   np.array([o.yaw for o in objects], dtype=np.float64), [o.category for o in objects])

    def __len__(self) -> int:
        return len(self.yaws)

    def corners(self) -> np.ndarray:
        """``(B, 8, 3)`` corners in the world frame."""
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
        local = signs[None] * self.sizes[:, None, :] / 2
        cos, sin = np.cos(self.yaws)[:, None], np.sin(self.yaws)[:, None]
        x = local[..., 0] * cos - local[..., 1] * sin
        y = local[..., 0] * sin + local[..., 1] * cos
        return np.stack([x, y, local[..., 2]], axis=-1) + self.centers[:, None, :]

    def planar_distance(self, point: np.ndarray) -> np.ndarray:
        """``(B,)`` horizontal distance from ``point`` to each box's footprint (0 inside)."""
        offset = point[:2] - self.centers[:, :2]
        cos, sin = np.cos(self.yaws), np.sin(self.yaws)
        lx = np.abs(offset[:, 0] * cos + offset[:, 1] * sin) - self.sizes[:, 0] / 2
        ly = np.abs(-offset[:, 0] * sin + offset[:, 1] * cos) - self.sizes[:, 1] / 2
        return np.hypot(np.maximum(lx, 0), np.maximum(ly, 0))


@dataclass
class Hits:
    """Per-ray result: distance (inf = no box), box index (-1) and the hit face's world normal."""

    depth: np.ndarray
    index: np.ndarray
    normal: np.ndarray


def cast(origin: np.ndarray, dirs: np.ndarray, boxes: BoxSet,
         windows: Callable[[int], Iterable[Window]], max_depth: float = np.inf) -> Hits:
    """Nearest box hit of every ray ``origin + t * dirs[r, c]`` (``dirs`` ``(R, C, 3)``)."""
    rows, cols = dirs.shape[:2]
    depth = np.full((rows, cols), np.float32(max_depth), dtype=np.float32)
    index = np.full((rows, cols), -1, dtype=np.int32)
    face = np.zeros((rows, cols), dtype=np.int8)  # +-1..3: local axis of the normal, signed
    for b in range(len(boxes)):
        cos, sin = np.cos(boxes.yaws[b]), np.sin(boxes.yaws[b])
        box_windows = list(windows(b))
        for offset, half in part_boxes(boxes.categories[b], boxes.sizes[b]):
            centre = boxes.centers[b] + np.array([offset[0] * cos - offset[1] * sin,
                                                  offset[0] * sin + offset[1] * cos, offset[2]])
            rel = origin - centre
            o_local = np.array([rel[0] * cos + rel[1] * sin, -rel[0] * sin + rel[1] * cos, rel[2]],
                               np.float32)
            _cast_part(dirs, box_windows, cos, sin, o_local, half.astype(np.float32), b, depth, index, face)
    return Hits(depth, index, _normals(face, index, boxes))


def _cast_part(dirs: np.ndarray, windows: list[Window], cos: float, sin: float, o_local: np.ndarray,
               half: np.ndarray, b: int, depth: np.ndarray, index: np.ndarray, face: np.ndarray) -> None:
    """Cast one box part (centred at ``o_local`` away from the origin, in the box frame) and
    record nearer hits as box ``b`` in ``depth`` / ``index`` / ``face`` (in place)."""
    for r0, r1, c0, c1 in windows:
        d = dirs[r0:r1, c0:c1]
        if d.size == 0:
            continue
        local = (d[..., 0] * cos + d[..., 1] * sin, d[..., 1] * cos - d[..., 0] * sin, d[..., 2])
        t_near, t_far, axis, slope = _slabs(local, o_local, half)
        window_depth = depth[r0:r1, c0:c1]
        hit = (t_near <= t_far) & (t_near > 0) & (t_near < window_depth)
        if not hit.any():
            continue
        window_depth[hit] = t_near[hit]
        index[r0:r1, c0:c1][hit] = b
        face[r0:r1, c0:c1][hit] = ((axis[hit] + 1) * -np.sign(slope[hit])).astype(np.int8)


def _slabs(local: tuple[np.ndarray, ...], origin: np.ndarray, half: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Entry/exit distances of rays (local directions per axis) through a centred box, the
    axis of the entry face and the ray's slope along it."""
    t_near = t_far = axis = slope = None
    for k, component in enumerate(local):
        with np.errstate(divide="ignore"):
            inv = 1.0 / np.where(np.abs(component) < 1e-9, np.float32(1e-9), component)
        ta, tb = (-half[k] - origin[k]) * inv, (half[k] - origin[k]) * inv
        near, far = np.minimum(ta, tb), np.maximum(ta, tb)
        if t_near is None:
            t_near, t_far, axis, slope = near, far, np.zeros(near.shape, np.int8), component
            continue
        better = near > t_near
        axis = np.where(better, np.int8(k), axis)
        slope = np.where(better, component, slope)
        t_near, t_far = np.maximum(t_near, near), np.minimum(t_far, far)
    return t_near, t_far, axis, slope


def _normals(face: np.ndarray, index: np.ndarray, boxes: BoxSet) -> np.ndarray:
    """World-frame unit normals ``(R, C, 3)`` from signed local face axes."""
    normal = np.zeros(face.shape + (3,), dtype=np.float32)
    hit = index >= 0
    if not hit.any():
        return normal
    yaw = boxes.yaws[index[hit]]
    axis, sign = np.abs(face[hit]), np.sign(face[hit]).astype(np.float64)
    n = np.zeros((len(yaw), 3))
    n[axis == 1] = np.stack([np.cos(yaw), np.sin(yaw), 0 * yaw], -1)[axis == 1]
    n[axis == 2] = np.stack([-np.sin(yaw), np.cos(yaw), 0 * yaw], -1)[axis == 2]
    n[axis == 3] = [0.0, 0.0, 1.0]
    normal[hit] = n * sign[:, None]
    return normal
