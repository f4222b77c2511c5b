"""A small greedy nearest-centre tracker that gives boxes stable ids across frames.

A stand-in for the planning layer's tracker: boxes of the same class whose world-frame
centres lie within ``max_distance`` metres of a live track keep its id; tracks unseen for
``max_age`` frames are forgotten.  Any callable ``(boxes, lidar2global) -> boxes`` with
``track_ids`` filled can replace it in :class:`~perception.bridge.stack.DetectorStack`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..structures import Boxes3D, apply_transform


@dataclass
class _Track:
    track_id: int
    label: int
    center: np.ndarray
    age: int = 0


@dataclass
class GreedyTracker:
    """Associates boxes frame to frame by world-frame centre distance, class by class."""

    max_distance: float = 2.5
    max_age: int = 3
    _tracks: list[_Track] = field(default_factory=list)
    _next_id: int = 1

    def __call__(self, boxes: Boxes3D, lidar2global: np.ndarray) -> Boxes3D:
        centers = apply_transform(np.asarray(lidar2global, dtype=np.float64), boxes.centers)[:, :2] \
            if len(boxes) else np.zeros((0, 2))
        order = np.argsort(-boxes.scores) if boxes.scores is not None else np.arange(len(boxes))
        old_centers = np.array([t.center[:2] for t in self._tracks]).reshape(-1, 2)
        old_labels = np.array([t.label for t in self._tracks], dtype=np.int64)
        distance = np.linalg.norm(centers[:, None, :] - old_centers[None, :, :], axis=-1)
        distance[boxes.labels[:, None] != old_labels[None, :]] = np.inf
        taken = np.zeros(len(self._tracks), dtype=bool)
        ids = [""] * len(boxes)
        for index in order:  # highest score first picks its nearest free track
            row = np.where(taken, np.inf, distance[index])
            best = int(np.argmin(row)) if len(row) else -1
            if best >= 0 and row[best] <= self.max_distance:
                taken[best] = True
                track = self._tracks[best]
                track.center, track.age = centers[index], -1
            else:
                track = _Track(self._next_id, int(boxes.labels[index]), centers[index], age=-1)
                self._next_id += 1
                self._tracks.append(track)
            ids[index] = str(track.track_id)
        for track in self._tracks:
            track.age += 1
        self._tracks = [t for t in self._tracks if t.age <= self.max_age]
        return Boxes3D(boxes.data, boxes.labels, ids, boxes.num_lidar_pts, boxes.scores)
