"""Fixed-size tensors of one prediction/planning target of a :class:`PlanningScene`, in the
target's frame at "now" (origin at its position, x along its heading).

What the STR context encoder reads (all float32 numpy, padded to fixed sizes so a batch is a
plain stack):

* ``target_states`` ``(H+1, 7)`` the target's past frames (oldest first, "now" last) as
  ``x, y, cos(yaw), sin(yaw), vx, vy, valid``; ``target_actions`` ``(H, 3)`` the step from each
  frame to the next (``dx, dy, dyaw``) -- the interleaved state / action tokens;
* ``agents`` ``(N, H+1, 7)`` the ``max_agents`` other tracks nearest at "now" (the ego is one of
  them when the target is another agent), ``agent_types`` ``(N,)`` int, ``agent_mask`` ``(N,)``;
* ``polylines`` ``(M, P, 4)`` map pieces (``x, y, dx, dy`` per point), ``polyline_types``,
  ``polyline_mask``: pieces of at most ``piece_length`` m resampled to ``P`` points, the
  ``max_polylines`` nearest;
* ``target_type`` int, ``is_ego`` float; ``future`` ``(F, 3)`` ``x, y, yaw`` and
  ``future_valid`` ``(F,)`` (the training target), ``origin`` ``(3,)`` world ``x, y, yaw``;
* optionally ``raster`` ``(C, S, S)``: the same context drawn on a BEV grid
  (:func:`rasterize`), for the raster encoder.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..structures.geometry import wrap_angle
from ..structures.map_elements import AgentHistory, MapElement
from .scene import PlanningScene

AGENT_TYPES: tuple[str, ...] = ("vehicle", "pedestrian", "cyclist", "bus", "other")
"""Target / agent type vocabulary (AV2 object types folded into these)."""
_TYPE_OF = {"vehicle": 0, "pedestrian": 1, "cyclist": 2, "motorcyclist": 2, "riderless_bicycle": 2, "bus": 3,
            # nuScenes detection classes (tracks built from detections, perception/planning/tracker.py)
            "car": 0, "truck": 0, "construction_vehicle": 0, "trailer": 0, "bicycle": 2, "motorcycle": 2}
POLYLINE_TYPES: tuple[str, ...] = ("lane_centerline", "divider", "boundary", "ped_crossing")
"""Map categories the encoder reads (drivable-area polygons are covered by ``boundary``)."""
STATE_DIM = 7
ACTION_DIM = 3
POINT_DIM = 4


class MotionFeatureError(ValueError):
    """A target or a feature setting does not fit the scene."""


@dataclass(frozen=True)
class FeatureConfig:
    """Sizes of the encoded context; the defaults fit AV2 (10 Hz, 5 s history, 6 s future)."""

    history_frames: int = 10
    history_stride: int = 2
    future_steps: int = 60
    max_agents: int = 32
    max_polylines: int = 64
    points_per_polyline: int = 10
    piece_length: float = 20.0
    raster_size: int = 0
    raster_resolution: float = 1.0
    raster_channels: tuple[str, ...] = field(default=("lane_centerline", "divider", "boundary", "ped_crossing",
                                                      "agents_now", "agents_past", "target_past"))

    def __post_init__(self) -> None:
        for name in ("history_frames", "history_stride", "future_steps", "max_agents", "max_polylines",
                     "points_per_polyline"):
            if int(getattr(self, name)) < 1:
                raise MotionFeatureError(f"FeatureConfig.{name} must be >= 1, got {getattr(self, name)}")

    @property
    def history_span(self) -> int:
        """Steps between the oldest history frame and "now"."""
        return self.history_frames * self.history_stride


def type_index(category: str) -> int:
    """Index of an object type in :data:`AGENT_TYPES`."""
    return _TYPE_OF.get(category, len(AGENT_TYPES) - 1)


def world_to_local(origin: np.ndarray) -> np.ndarray:
    """2x3 matrix mapping world ``x, y`` to the frame at ``origin = (x, y, yaw)``."""
    c, s = np.cos(origin[2]), np.sin(origin[2])
    rot = np.array([[c, s], [-s, c]])
    return np.concatenate([rot, -rot @ origin[:2, None]], axis=1)


def to_local_xy(points: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """World ``(..., 2)`` points in the frame at ``origin``."""
    m = world_to_local(origin)
    return points @ m[:, :2].T + m[:, 2]


def to_world_xy(points: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Points ``(..., 2)`` of the frame at ``origin`` in the world frame."""
    c, s = np.cos(origin[2]), np.sin(origin[2])
    rot = np.array([[c, -s], [s, c]])
    return points @ rot.T + origin[:2]


def map_pieces(elements: list[MapElement], config: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """World-frame map pieces ``(Q, P, 2)`` and their type indices ``(Q,)``: each element cut
    into pieces of at most ``piece_length`` m, each resampled to ``points_per_polyline``."""
    pieces, types = [], []
    count = config.points_per_polyline
    for element in elements:
        if element.category not in POLYLINE_TYPES:
            continue
        points = element.points[:, :2]
        if element.closed:
            points = np.concatenate([points, points[:1]])
        seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
        arc = np.concatenate([[0.0], np.cumsum(seg)])
        total = float(arc[-1])
        if total <= 1e-6:
            continue
        num = max(1, int(np.ceil(total / config.piece_length - 1e-6)))  # exact multiples: no sliver piece
        for k in range(num):
            s = np.linspace(total * k / num, total * (k + 1) / num, count)
            pieces.append(np.stack([np.interp(s, arc, points[:, 0]), np.interp(s, arc, points[:, 1])], axis=1))
            types.append(POLYLINE_TYPES.index(element.category))
    if not pieces:
        return np.zeros((0, count, 2)), np.zeros(0, dtype=np.int64)
    return np.stack(pieces), np.asarray(types, dtype=np.int64)


def _frames(now: int, config: FeatureConfig) -> np.ndarray:
    """Scene step indices of the history frames (oldest first, ``now`` last; may be negative)."""
    return now - config.history_stride * np.arange(config.history_frames, -1, -1)


def _track_states(states: np.ndarray, valid: np.ndarray, frames: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """``(A, len(frames), 7)`` local states of tracks ``states`` ``(A, T, 5)`` / ``valid``
    ``(A, T)``; zeros where invalid or outside the scene."""
    steps = states.shape[1]
    inside = (frames >= 0) & (frames < steps)
    idx = np.clip(frames, 0, steps - 1)
    ok = inside[None] & valid[:, idx]
    picked = states[:, idx]
    out = np.zeros(picked.shape[:2] + (STATE_DIM,), dtype=np.float64)
    yaw = picked[..., 2] - origin[2]
    c, s = np.cos(origin[2]), np.sin(origin[2])
    out[..., :2] = to_local_xy(picked[..., :2], origin)
    out[..., 2], out[..., 3] = np.cos(yaw), np.sin(yaw)
    out[..., 4:6] = np.nan_to_num(picked[..., 3:5]) @ np.array([[c, -s], [s, c]])  # world -> local rotation
    out[..., 6] = 1.0
    out[~ok] = 0.0
    return out


def target_track(scene: PlanningScene, track_id: str) -> AgentHistory:
    """The ego (``track_id == "ego"`` or the ego's id) or an agent of the scene."""
    if track_id in ("ego", scene.ego.track_id):
        return scene.ego
    return scene.agent(track_id)


def encode_target(scene: PlanningScene, track_id: str, config: FeatureConfig, now: int | None = None,
                  pieces: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The feature dict (module doc) of one target at step ``now`` (default: the scene's)."""
    now = scene.current_index if now is None else int(now)
    target = target_track(scene, track_id)
    if not 0 <= now < len(scene.timestamps) or not target.valid[now]:
        raise MotionFeatureError(f"scene {scene.scene_id}: track {track_id!r} has no valid state at step {now}")
    origin = target.states[now, :3].copy()
    frames = _frames(now, config)
    target_states = _track_states(target.states[None], target.valid[None], frames, origin)[0]
    yaw = np.arctan2(target_states[:, 3], target_states[:, 2])
    actions = np.zeros((config.history_frames, ACTION_DIM))
    both = (target_states[1:, 6] > 0) & (target_states[:-1, 6] > 0)
    actions[:, :2] = target_states[1:, :2] - target_states[:-1, :2]
    actions[:, 2] = wrap_angle(yaw[1:] - yaw[:-1])
    actions[~both] = 0.0
    # other tracks: the ego is an agent of every non-ego target
    others = [a for a in [scene.ego, *scene.agents] if a is not target]
    agents = np.zeros((config.max_agents, config.history_frames + 1, STATE_DIM))
    agent_types = np.zeros(config.max_agents, dtype=np.int64)
    agent_mask = np.zeros(config.max_agents, dtype=bool)
    if others:
        local = _track_states(np.stack([a.states for a in others]), np.stack([a.valid for a in others]), frames,
                              origin)
        seen = local[..., 6] > 0
        last = local.shape[1] - 1 - np.argmax(seen[:, ::-1], axis=1)  # last valid frame of each track
        dist = np.hypot(*local[np.arange(len(local)), last, :2].T)
        dist[~seen.any(axis=1)] = np.inf
        order = [i for i in np.argsort(dist, kind="stable")[: config.max_agents] if np.isfinite(dist[i])]
        count = len(order)
        agents[:count], agent_mask[:count] = local[order], True
        agent_types[:count] = [type_index(others[i].category) for i in order]
    # map pieces nearest to the target
    world_pieces, piece_types = pieces if pieces is not None else map_pieces(scene.map_elements, config)
    polylines = np.zeros((config.max_polylines, config.points_per_polyline, POINT_DIM))
    polyline_types = np.zeros(config.max_polylines, dtype=np.int64)
    polyline_mask = np.zeros(config.max_polylines, dtype=bool)
    if len(world_pieces):
        local = to_local_xy(world_pieces, origin)
        order = np.argsort(np.linalg.norm(local, axis=-1).min(axis=1))[: config.max_polylines]
        chosen = local[order]
        direction = np.diff(chosen, axis=1, append=chosen[:, -1:] + (chosen[:, -1:] - chosen[:, -2:-1]))
        polylines[: len(order), :, :2], polylines[: len(order), :, 2:] = chosen, direction
        polyline_types[: len(order)], polyline_mask[: len(order)] = piece_types[order], True
    # ground-truth future (zeros / invalid past the scene's end)
    future = np.zeros((config.future_steps, 3))
    steps = now + 1 + np.arange(config.future_steps)
    inside = steps < len(scene.timestamps)
    idx = np.clip(steps, 0, len(scene.timestamps) - 1)
    future_valid = inside & target.valid[idx]
    future[:, :2] = to_local_xy(target.states[idx, :2], origin)
    future[:, 2] = wrap_angle(target.states[idx, 2] - origin[2])
    future[~future_valid] = 0.0
    out = dict(target_states=target_states, target_actions=actions, agents=agents, agent_types=agent_types,
               agent_mask=agent_mask, polylines=polylines, polyline_types=polyline_types,
               polyline_mask=polyline_mask, target_type=np.int64(type_index(target.category)),
               is_ego=np.float32(target is scene.ego), future=future, future_valid=future_valid, origin=origin)
    if config.raster_size > 0:
        out["raster"] = rasterize(out, config)
    return {k: (v.astype(np.float32) if isinstance(v, np.ndarray) and v.dtype == np.float64 else v)
            for k, v in out.items()}


def rasterize(features: dict[str, np.ndarray], config: FeatureConfig) -> np.ndarray:
    """A ``(C, S, S)`` BEV raster of the encoded context (row i along +y, column j along +x, the
    target at the centre): map categories, agents now / in the past, the target's past."""
    size, res = config.raster_size, config.raster_resolution
    raster = np.zeros((len(config.raster_channels), size, size), dtype=np.float32)

    def draw(channel: str, xy: np.ndarray, value: float = 1.0) -> None:
        if channel not in config.raster_channels or not len(xy):
            return
        col = np.floor(xy[:, 0] / res + size / 2).astype(np.int64)
        row = np.floor(xy[:, 1] / res + size / 2).astype(np.int64)
        keep = (col >= 0) & (col < size) & (row >= 0) & (row < size)
        c = config.raster_channels.index(channel)
        raster[c, row[keep], col[keep]] = np.maximum(raster[c, row[keep], col[keep]], value)

    for polyline, kind, keep in zip(features["polylines"], features["polyline_types"], features["polyline_mask"]):
        if keep:
            t = np.linspace(0.0, 1.0, 4 * config.points_per_polyline)
            s = np.linspace(0.0, 1.0, len(polyline))
            dense = np.stack([np.interp(t, s, polyline[:, 0]), np.interp(t, s, polyline[:, 1])], axis=1)
            draw(POLYLINE_TYPES[int(kind)], dense)
    frames = config.history_frames + 1
    for agent, keep in zip(features["agents"], features["agent_mask"]):
        if keep:
            valid = agent[:, 6] > 0
            if valid[-1]:
                draw("agents_now", agent[-1:, :2])
            ages = np.flatnonzero(valid[:-1])
            for a in ages:
                draw("agents_past", agent[a: a + 1, :2], (a + 1) / frames)
    target = features["target_states"]
    draw("target_past", target[target[:, 6] > 0, :2])
    return raster
