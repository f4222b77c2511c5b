"""Multi-object tracking by detection: per-frame 3D boxes -> tracks with ids -> agent histories.

Each frame the tracks are predicted forward with a constant-velocity model, matched to the
frame's detections (moved to the world frame) by the Hungarian algorithm
(``scipy.optimize.linear_sum_assignment``) on centre distance with class gating (a pair of
different classes, or further apart than the class's gate, never matches), then updated
with the matched boxes.  Unmatched detections start tentative tracks, confirmed after
``min_hits`` matches; a track unmatched for more than ``max_age`` frames is deleted.  The
result feeds the planner: :meth:`MultiObjectTracker.histories` gives
:class:`AgentHistory` tracks on a timeline and :func:`build_planning_scene` a
:class:`PlanningScene` with the ego from the frames' poses.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..structures import Boxes3D
from ..structures.geometry import wrap_angle, yaw_of_rotation
from ..structures.map_elements import AgentHistory, MapElement
from .scene import PlanningScene

UNMATCHABLE = 1e6
TIME_TOLERANCE = 1e-3
"""Seconds within which a track record counts as being at a timeline timestamp."""


class TrackerError(ValueError):
    """Raised for detections, poses or timestamps the tracker cannot use."""


@dataclass(frozen=True)
class TrackerConfig:
    """Association gates (m, per class with a default), track life cycle and velocity smoothing.

    ``velocity_gain`` blends a new velocity measurement (the detection's own velocity when
    finite, else the displacement over the elapsed time) into the track's velocity."""

    gate: float = 2.5
    class_gates: Mapping[str, float] = field(default_factory=lambda: {"pedestrian": 1.5, "bus": 4.0, "truck": 4.0,
                                                                      "trailer": 4.0})
    min_hits: int = 2
    max_age: int = 2
    score_threshold: float = 0.0
    velocity_gain: float = 0.7
    use_detection_velocity: bool = True

    def gate_of(self, category: str) -> float:
        return float(self.class_gates.get(category, self.gate))


@dataclass
class Track:
    """One track: ``state`` is ``x, y, yaw, vx, vy`` (world), ``records`` its matched states by time."""

    track_id: str
    category: str
    state: np.ndarray
    size: tuple[float, float, float]
    last_time: float
    hits: int = 1
    misses: int = 0
    records: dict[float, np.ndarray] = field(default_factory=dict)

    def predicted(self, time: float) -> np.ndarray:
        """The constant-velocity state at ``time``."""
        dt = time - self.last_time
        state = self.state.copy()
        state[:2] += dt * state[3:5]
        return state


class MultiObjectTracker:
    """Hungarian centre-distance tracker with a constant-velocity model (module doc); call
    :meth:`update` once per frame, in time order."""

    def __init__(self, config: TrackerConfig = TrackerConfig(), id_prefix: str = "track") -> None:
        if config.min_hits < 1 or config.max_age < 0:
            raise TrackerError(f"min_hits must be >= 1 and max_age >= 0, got {config.min_hits}, {config.max_age}")
        self.config = config
        self.id_prefix = id_prefix
        self.tracks: list[Track] = []
        self.finished: list[Track] = []
        self.times: list[float] = []
        self._next_id = 0

    def _new_track(self, detection: np.ndarray, category: str, size: tuple[float, float, float], time: float) -> None:
        track_id = f"{self.id_prefix}-{self._next_id:05d}"
        self._next_id += 1
        state = detection.copy()
        state[3:5] = np.where(np.isfinite(state[3:5]), state[3:5], 0.0) if self.config.use_detection_velocity else 0.0
        track = Track(track_id, category, state, size, time)
        track.records[time] = state.copy()
        self.tracks.append(track)

    def _associate(self, predicted: np.ndarray, categories: list[str], det_xy: np.ndarray,
                   det_categories: list[str]) -> list[tuple[int, int]]:
        if not len(predicted) or not len(det_xy):
            return []
        distance = np.linalg.norm(predicted[:, None, :2] - det_xy[None, :, :2], axis=-1)
        gates = np.array([self.config.gate_of(c) for c in det_categories])
        same = np.array(categories)[:, None] == np.array(det_categories)[None, :]
        allowed = same & (distance <= gates[None, :])
        cost = np.where(allowed, distance, UNMATCHABLE)
        rows, cols = linear_sum_assignment(cost)
        return [(int(r), int(c)) for r, c in zip(rows, cols) if allowed[r, c]]

    def update(self, boxes: Boxes3D, lidar2global: np.ndarray, class_names: Sequence[str],
               timestamp: float) -> list[Track]:
        """Track one frame's detections (LiDAR frame) at ``timestamp`` seconds.

        Returns the confirmed tracks matched in this frame."""
        lidar2global = np.asarray(lidar2global, dtype=np.float64)
        if lidar2global.shape != (4, 4):
            raise TrackerError(f"lidar2global must be (4, 4), got {lidar2global.shape}")
        if self.times and timestamp <= self.times[-1]:
            raise TrackerError(f"timestamps must increase: {timestamp} after {self.times[-1]}")
        if len(boxes) and (boxes.labels.min() < 0 or boxes.labels.max() >= len(class_names)):
            raise TrackerError(f"box labels {sorted(set(boxes.labels.tolist()))} outside the {len(class_names)} "
                               f"class names")
        self.times.append(float(timestamp))
        if boxes.scores is not None:
            boxes = boxes[boxes.scores >= self.config.score_threshold]
        world = boxes.transform(lidar2global)
        det = np.concatenate([world.data[:, :2], world.data[:, 6:9]], axis=1)  # x, y, yaw, vx, vy
        det_categories = [class_names[int(label)] for label in world.labels]
        predicted = np.array([t.predicted(timestamp) for t in self.tracks]).reshape(-1, 5)
        matches = self._associate(predicted, [t.category for t in self.tracks], det, det_categories)
        matched_tracks, matched_dets = {r for r, _ in matches}, {c for _, c in matches}
        updated = []
        for r, c in matches:
            track = self.tracks[r]
            self._correct(track, det[c], tuple(world.data[c, 3:6]), timestamp)
            updated.append(track)
        for index, track in enumerate(self.tracks):
            if index not in matched_tracks:
                track.misses += 1
        alive = [t for t in self.tracks if t.misses <= self.config.max_age]
        self.finished += [t for t in self.tracks if t.misses > self.config.max_age and t.hits >= self.config.min_hits]
        self.tracks = alive
        for c in range(len(det)):
            if c not in matched_dets:
                self._new_track(det[c], det_categories[c], tuple(world.data[c, 3:6]), timestamp)
        return [t for t in updated if t.hits >= self.config.min_hits]

    def _correct(self, track: Track, detection: np.ndarray, size: tuple[float, float, float], time: float) -> None:
        dt = time - track.last_time
        measured = detection[3:5]
        if not (self.config.use_detection_velocity and np.isfinite(measured).all()):
            measured = (detection[:2] - track.state[:2]) / max(dt, 1e-6)
        gain = self.config.velocity_gain if track.hits > 1 else 1.0
        state = detection.copy()
        state[3:5] = gain * measured + (1 - gain) * track.state[3:5]
        state[2] = float(wrap_angle(state[2]))
        track.state, track.size, track.last_time = state, size, time
        track.hits += 1
        track.misses = 0
        track.records[time] = state.copy()

    def confirmed(self, include_finished: bool = True) -> list[Track]:
        """Tracks matched at least ``min_hits`` times (live ones, and ended ones when asked)."""
        live = [t for t in self.tracks if t.hits >= self.config.min_hits]
        return (self.finished + live) if include_finished else live

    def histories(self, timestamps: Sequence[float] | None = None, include_finished: bool = True
                  ) -> list[AgentHistory]:
        """Confirmed tracks as :class:`AgentHistory` on ``timestamps`` (default: every frame so far);
        a step is valid where the track was matched at that time."""
        times = np.asarray(self.times if timestamps is None else timestamps, dtype=np.float64)
        out = []
        for track in self.confirmed(include_finished):
            states, valid = np.zeros((len(times), 5)), np.zeros(len(times), dtype=bool)
            record_times = np.array(sorted(track.records))
            for k, time in enumerate(times):
                nearest = record_times[np.abs(record_times - time).argmin()]
                if abs(nearest - time) <= TIME_TOLERANCE:
                    states[k], valid[k] = track.records[float(nearest)], True
            if valid.any():
                out.append(AgentHistory(track.track_id, track.category, times, states, valid, track.size))
        return out


def ego_history(poses: Sequence[np.ndarray], timestamps: Sequence[float], track_id: str = "ego") -> AgentHistory:
    """Ego states from ``ego2global`` poses: position, yaw, finite-difference velocity."""
    poses = [np.asarray(p, dtype=np.float64) for p in poses]
    times = np.asarray(timestamps, dtype=np.float64)
    if len(poses) != len(times) or not len(poses):
        raise TrackerError(f"{len(poses)} poses for {len(times)} timestamps (need the same, at least one)")
    xy = np.array([p[:2, 3] for p in poses])
    yaw = np.array([yaw_of_rotation(p[:3, :3]) for p in poses])
    velocity = np.gradient(xy, times, axis=0) if len(times) > 1 else np.zeros((1, 2))
    states = np.concatenate([xy, yaw[:, None], velocity], axis=1)
    return AgentHistory(track_id, "vehicle", times, states, np.ones(len(times), dtype=bool))


def build_planning_scene(tracker: MultiObjectTracker, ego2global: Sequence[np.ndarray], scene_id: str = "tracked",
                         map_elements: Sequence[MapElement] = (), city: str = "",
                         max_distance: float | None = None, history_steps: int | None = None) -> PlanningScene:
    """A :class:`PlanningScene` whose "now" is the tracker's latest frame.

    ``ego2global`` holds one pose per tracked frame (or per frame of the last
    ``history_steps + 1`` when given, the window the scene keeps); agents are the confirmed
    tracks seen in the window (only those within ``max_distance`` metres of the ego now when given)."""
    if not tracker.times:
        raise TrackerError("build_planning_scene: the tracker has seen no frame")
    times = np.asarray(tracker.times)
    if history_steps is not None:
        times = times[-(history_steps + 1):]
    poses = list(ego2global)[-len(times):]
    ego = ego_history(poses, times)
    agents = [a for a in tracker.histories(times) if a.valid.any()]
    if max_distance is not None:
        here = ego.states[-1, :2]
        agents = [a for a in agents
                  if np.linalg.norm(a.states[a.valid][-1, :2] - here) <= max_distance]
    return PlanningScene(scene_id, times, len(times) - 1, ego, agents, list(map_elements), [], city)
