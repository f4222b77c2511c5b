"""Vectorized map instances: the one format map ground truth, map heads and the map metric share.

Each instance is a fixed number of 2D points in the BEV plane of the LiDAR frame (the frame the
BEV features live in, see :mod:`.conventions`), with a class and, for predictions, a score.
``closed`` marks polygons (the first point is not repeated at the end); polylines are open.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class MapInstancesError(ValueError):
    """Raised for map instances with inconsistent shapes or labels."""


@dataclass
class MapInstances:
    """``points`` ``(M, P, 2)`` float32 (x, y in metres); ``labels`` ``(M,)`` int64 into
    ``class_names``; ``closed`` ``(M,)`` bool; ``scores`` ``(M,)`` float32 or None (ground truth)."""

    points: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    closed: np.ndarray
    scores: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.class_names = tuple(self.class_names)
        self.points = np.asarray(self.points, dtype=np.float32)
        if self.points.size == 0:
            self.points = self.points.reshape(0, self.points.shape[1] if self.points.ndim == 3 else 0, 2)
        if self.points.ndim != 3 or self.points.shape[2] != 2:
            raise MapInstancesError(f"MapInstances.points must be (M, P, 2), got {self.points.shape}")
        count = self.points.shape[0]
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        self.closed = np.asarray(self.closed, dtype=bool).reshape(-1)
        if self.labels.shape != (count,) or self.closed.shape != (count,):
            raise MapInstancesError(f"MapInstances: {count} instances but labels {self.labels.shape} "
                                    f"and closed {self.closed.shape}")
        if count and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise MapInstancesError(f"MapInstances: labels must index {len(self.class_names)} classes "
                                    f"{self.class_names}, got range [{self.labels.min()}, {self.labels.max()}]")
        if self.scores is not None:
            self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
            if self.scores.shape != (count,):
                raise MapInstancesError(f"MapInstances: {count} instances but scores {self.scores.shape}")

    def __len__(self) -> int:
        return int(self.points.shape[0])

    def select(self, mask: np.ndarray) -> "MapInstances":
        """The instances where ``mask`` (bool ``(M,)`` or indices) holds."""
        return MapInstances(self.points[mask], self.labels[mask], self.class_names, self.closed[mask],
                            None if self.scores is None else self.scores[mask])
