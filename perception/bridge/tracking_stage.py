"""The bridge's tracking stage: the planning layer's tracker, fed one live frame at a time.

:class:`BridgeTracker` wraps :class:`~perception.planning.tracker.MultiObjectTracker` (Hungarian
association, constant-velocity model) so that

* every published box carries the id of the track it updated or started (tentative tracks
  included: the id stays when the track is confirmed);
* a replay that loops, jumps to another scene or goes back in time starts a fresh tracker
  (ids of a new epoch get a new prefix, so old ids are never reused);
* state stays bounded on a bridge that runs for hours: only the last ``history_steps + 1``
  frames (the window the planner sees) of timeline, records and ego poses are kept;
* :meth:`BridgeTracker.scene` builds the :class:`PlanningScene` for the planner from the
  track histories and the ego poses seen so far (:func:`build_planning_scene`).
"""
from __future__ import annotations

from collections import deque
from typing import Sequence

import numpy as np

from ..planning.scene import PlanningScene
from ..planning.tracker import TIME_TOLERANCE, MultiObjectTracker, TrackerConfig, build_planning_scene
from ..structures import Boxes3D, Frame

MATCH_TOLERANCE_M = 1e-4
"""A track updated this frame sits exactly on its detection (world frame); this absorbs float noise."""


class BridgeTracker:
    """Live tracking with stable ids and a bounded planning window (module doc)."""

    def __init__(self, config: TrackerConfig = TrackerConfig(), history_steps: int = 20,
                 max_distance: float | None = 80.0, max_gap_s: float = 2.0, id_prefix: str = "t") -> None:
        if history_steps < 0:
            raise ValueError(f"history_steps must be >= 0, got {history_steps}")
        self.config, self.history_steps = config, int(history_steps)
        self.max_distance, self.max_gap_s, self.id_prefix = max_distance, float(max_gap_s), id_prefix
        self.epoch = -1
        self.resets = 0
        self._scene_name = ""
        self.reset()

    def reset(self) -> None:
        """Forget every track and pose (a new sequence starts)."""
        self.epoch += 1
        prefix = self.id_prefix if self.epoch == 0 else f"{self.id_prefix}{self.epoch}"
        self.tracker = MultiObjectTracker(self.config, id_prefix=prefix)
        self.poses: deque[np.ndarray] = deque(maxlen=self.history_steps + 1)

    def _starts_new_sequence(self, frame: Frame) -> bool:
        times = self.tracker.times
        if not times:
            return False
        gap = frame.timestamp - times[-1]
        return gap <= 0 or gap > self.max_gap_s or (frame.scene or "") != self._scene_name

    def __call__(self, frame: Frame, boxes: Boxes3D, class_names: Sequence[str]) -> Boxes3D:
        """Track ``boxes`` (LiDAR frame of ``frame``); returns them with ``track_ids`` filled."""
        if self._starts_new_sequence(frame):
            self.resets += 1
            self.reset()
        self._scene_name = frame.scene or ""
        lidar2global = np.asarray(frame.lidar2global, dtype=np.float64)
        self.tracker.update(boxes, lidar2global, class_names, frame.timestamp)
        self.poses.append(np.asarray(frame.ego2global, dtype=np.float64))
        ids = self._ids_of(boxes, lidar2global, frame.timestamp)
        self._prune()
        return Boxes3D(boxes.data, boxes.labels, ids, boxes.num_lidar_pts, boxes.scores)

    def _ids_of(self, boxes: Boxes3D, lidar2global: np.ndarray, timestamp: float) -> list[str]:
        """The id of the track each box updated or started at ``timestamp`` ("" when none did)."""
        ids = [""] * len(boxes)
        touched = [t for t in self.tracker.tracks if abs(t.last_time - timestamp) <= TIME_TOLERANCE]
        if not len(boxes) or not touched:
            return ids
        world_xy = boxes.transform(lidar2global).data[:, :2]
        track_xy = np.array([t.state[:2] for t in touched])
        distance = np.linalg.norm(world_xy[:, None, :] - track_xy[None, :, :], axis=-1)
        taken = np.zeros(len(touched), dtype=bool)
        for index in range(len(boxes)):
            row = np.where(taken, np.inf, distance[index])
            best = int(np.argmin(row))
            if row[best] <= MATCH_TOLERANCE_M:
                taken[best] = True
                ids[index] = touched[best].track_id
        return ids

    def _prune(self) -> None:
        """Keep the timeline, finished tracks and records of the planning window only."""
        tracker = self.tracker
        del tracker.times[:-(self.history_steps + 1)]
        start = tracker.times[0] - TIME_TOLERANCE
        tracker.finished = [t for t in tracker.finished if t.last_time >= start]
        for track in [*tracker.tracks, *tracker.finished]:
            stale = [time for time in track.records if time < start and time != track.last_time]
            for time in stale:
                del track.records[time]

    def scene(self, frame: Frame) -> PlanningScene:
        """The planning scene at ``frame`` (the last tracked one): ego from the poses seen so far,
        agents from the confirmed tracks, the frame's map elements (world frame)."""
        return build_planning_scene(self.tracker, list(self.poses), frame.token, frame.map_elements,
                                    frame.location, self.max_distance, self.history_steps)
