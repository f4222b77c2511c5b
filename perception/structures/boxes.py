"""3D boxes with velocity, labels and track ids (conventions in :mod:`.conventions`)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .geometry import wrap_angle

BOX_DIM = 9
"""Columns of :attr:`Boxes3D.data`: x, y, z (gravity centre), l, w, h, yaw, vx, vy."""


@dataclass
class Boxes3D:
    """``N`` boxes in one frame: ``data`` is ``(N, 9)`` float64, the rest are per-box arrays.

    ``labels`` index the frame's ``class_names``; ``track_ids`` are stable instance ids
    (nuScenes instance tokens, AV2 track uuids); ``num_lidar_pts`` is -1 where unknown;
    ``scores`` is set for predictions and ``None`` for ground truth.
    """

    data: np.ndarray
    labels: np.ndarray
    track_ids: list[str] = field(default_factory=list)
    num_lidar_pts: np.ndarray | None = None
    scores: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.data = np.asarray(self.data, dtype=np.float64).reshape(-1, BOX_DIM)
        count = len(self.data)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if len(self.labels) != count:
            raise ValueError(f"Boxes3D: {count} boxes but {len(self.labels)} labels")
        if not self.track_ids:
            self.track_ids = [""] * count
        if len(self.track_ids) != count:
            raise ValueError(f"Boxes3D: {count} boxes but {len(self.track_ids)} track ids")
        if self.num_lidar_pts is None:
            self.num_lidar_pts = np.full(count, -1, dtype=np.int64)
        self.num_lidar_pts = np.asarray(self.num_lidar_pts, dtype=np.int64).reshape(-1)
        if self.scores is not None:
            self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
            if len(self.scores) != count:
                raise ValueError(f"Boxes3D: {count} boxes but {len(self.scores)} scores")

    @classmethod
    def empty(cls) -> "Boxes3D":
        """No boxes."""
        return cls(np.zeros((0, BOX_DIM)), np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: np.ndarray | slice | list[int]) -> "Boxes3D":
        """Select boxes with a boolean mask, an index array or a slice."""
        indices = np.arange(len(self))[index]
        return Boxes3D(
            self.data[indices],
            self.labels[indices],
            [self.track_ids[i] for i in np.atleast_1d(indices)],
            self.num_lidar_pts[indices],
            None if self.scores is None else self.scores[indices],
        )

    @property
    def centers(self) -> np.ndarray:
        """``(N, 3)`` gravity centres."""
        return self.data[:, :3]

    @property
    def sizes(self) -> np.ndarray:
        """``(N, 3)`` as ``(l, w, h)``."""
        return self.data[:, 3:6]

    @property
    def yaws(self) -> np.ndarray:
        """``(N,)`` headings."""
        return self.data[:, 6]

    @property
    def velocities(self) -> np.ndarray:
        """``(N, 2)`` planar velocities."""
        return self.data[:, 7:9]

    def bottom_centers(self) -> np.ndarray:
        """``(N, 3)`` centres of the bottom faces (mmdetection3d's LiDAR-box origin)."""
        bottom = self.centers.copy()
        bottom[:, 2] -= self.sizes[:, 2] / 2
        return bottom

    def corners(self) -> np.ndarray:
        """``(N, 8, 3)`` corners; the first four are the bottom face, counter-clockwise from
        front-left seen from above, the last four the top face in the same order."""
        unit = np.array(
            [[0.5, 0.5, -0.5], [-0.5, 0.5, -0.5], [-0.5, -0.5, -0.5], [0.5, -0.5, -0.5]]
        )
        unit = np.concatenate([unit, unit * [1, 1, -1]], axis=0)
        local = unit[None] * self.sizes[:, None, :]
        cos, sin = np.cos(self.yaws)[:, None], np.sin(self.yaws)[:, None]
        x = local[..., 0] * cos - local[..., 1] * sin
        y = local[..., 0] * sin + local[..., 1] * cos
        return np.stack([x, y, local[..., 2]], axis=-1) + self.centers[:, None, :]

    def transform(self, transform: np.ndarray) -> "Boxes3D":
        """Boxes expressed in another frame: ``transform`` maps this frame to the new one.

        The rotation is assumed to be (close to) a rotation about z, as between LiDAR, ego
        and world frames; centres use the full transform.
        """
        transform = np.asarray(transform, dtype=np.float64)
        rotation = transform[:3, :3]
        data = self.data.copy()
        data[:, :3] = self.centers @ rotation.T + transform[:3, 3]
        heading = np.stack([np.cos(self.yaws), np.sin(self.yaws), np.zeros(len(self))], axis=1)
        heading = heading @ rotation.T
        data[:, 6] = wrap_angle(np.arctan2(heading[:, 1], heading[:, 0]))
        velocity = np.concatenate([self.velocities, np.zeros((len(self), 1))], axis=1)
        data[:, 7:9] = (velocity @ rotation.T)[:, :2]
        return Boxes3D(data, self.labels.copy(), list(self.track_ids), self.num_lidar_pts.copy(),
                       None if self.scores is None else self.scores.copy())

    def points_in_boxes(self, points: np.ndarray) -> np.ndarray:
        """``(N_points, N_boxes)`` boolean mask of points (first 3 columns) inside each box."""
        xyz = np.asarray(points)[:, :3].astype(np.float64)
        offset = xyz[:, None, :] - self.centers[None, :, :]
        cos, sin = np.cos(self.yaws)[None], np.sin(self.yaws)[None]
        local_x = offset[..., 0] * cos + offset[..., 1] * sin
        local_y = -offset[..., 0] * sin + offset[..., 1] * cos
        half = self.sizes[None] / 2
        return (
            (np.abs(local_x) <= half[..., 0])
            & (np.abs(local_y) <= half[..., 1])
            & (np.abs(offset[..., 2]) <= half[..., 2])
        )

    def points_in_any_box(self, points: np.ndarray, cell: float = 1.0, chunk: int = 32768) -> np.ndarray:
        """``(N_points,)`` bool: points inside at least one box; equals ``points_in_boxes(points).any(1)``.

        A BEV grid of ``cell`` metres marks the cells each box's axis-aligned footprint
        touches; only points in marked cells go through the exact test, so a 300k-point
        sweep with ~60 pasted objects costs a few milliseconds instead of ~150.
        """
        xyz = np.asarray(points)[:, :3]
        inside = np.zeros(len(xyz), dtype=bool)
        if len(self) == 0 or len(xyz) == 0:
            return inside
        radius = np.hypot(self.sizes[:, 0], self.sizes[:, 1]) / 2 + 1e-6
        low = self.centers[:, :2] - radius[:, None]
        high = self.centers[:, :2] + radius[:, None]
        origin, extent = low.min(axis=0), high.max(axis=0)
        shape = np.maximum(np.ceil((extent - origin) / cell).astype(np.int64), 1) + 1
        grid = np.zeros(tuple(shape), dtype=bool)
        first = np.floor((low - origin) / cell).astype(np.int64)
        last = np.floor((high - origin) / cell).astype(np.int64)
        for (x0, y0), (x1, y1) in zip(first, last):
            grid[x0:x1 + 1, y0:y1 + 1] = True
        with np.errstate(invalid="ignore"):
            cells = np.floor((xyz[:, :2] - origin) / cell)
        in_range = np.isfinite(cells).all(axis=1) & (cells >= 0).all(axis=1) & (cells < shape).all(axis=1)
        candidates = np.flatnonzero(in_range)
        ix = cells[candidates].astype(np.int64)
        candidates = candidates[grid[ix[:, 0], ix[:, 1]]]
        for start in range(0, len(candidates), chunk):
            rows = candidates[start:start + chunk]
            inside[rows] = self.points_in_boxes(xyz[rows]).any(axis=1)
        return inside

    def count_points(self, points: np.ndarray, chunk: int = 65536) -> np.ndarray:
        """Number of points inside each box, computed in chunks to bound memory."""
        counts = np.zeros(len(self), dtype=np.int64)
        for start in range(0, len(points), chunk):
            counts += self.points_in_boxes(points[start : start + chunk]).sum(axis=0)
        return counts
