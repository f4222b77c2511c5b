"""nuScenes-style open-loop planning metrics: L2 error at 1/2/3 s and ego collision rate.

Conventions (chosen once, here):

* **L2** (``l2_{t}s``): the ST-P3 convention used by most nuScenes planning papers (ST-P3,
  VAD, UniAD's table "avg."): the mean over all future steps up to ``t`` of the Euclidean
  distance between planned and ground-truth ego positions.  ``l2_at_{t}s`` is the other
  convention (the error at the step ``t`` alone, UniAD's per-horizon numbers).
* **Collision** (``collision_{t}s``): ST-P3 style as well: the per-step collision rate
  (fraction of scenes whose ego box overlaps a ground-truth agent box at that step)
  averaged over the steps up to ``t``; ``collision_any_{t}s`` is the fraction of scenes
  with a collision at any step up to ``t``.  The ego box is ``EgoSpec`` placed at the
  planned pose (positions are the rear-axle reference point of ``PlanningScene.ego``,
  the box centre is ``rear_axle_to_center`` ahead along the planned yaw); agent boxes are
  the ground-truth states at the same future step.  An agent whose ``size`` is unknown
  (zeros, as in Argoverse 2 motion data) gets its category's typical footprint.

Plans are ``(T_future, 3)`` (x, y, yaw) in the world frame at ``scene.dt`` steps after the
current index, the contract of every planner in :mod:`perception.planning`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np

from ..planning.scene import PlanningScene


class PlanningMetricError(ValueError):
    """Raised for plans or ground truth of the wrong shape."""


@dataclass(frozen=True)
class EgoSpec:
    """Ego footprint: length, width (m) and the box centre's offset ahead of the reference point."""

    length: float = 4.08
    width: float = 1.73
    rear_axle_to_center: float = 1.1


DEFAULT_FOOTPRINTS: dict[str, tuple[float, float]] = {
    "vehicle": (4.6, 1.95), "car": (4.6, 1.95), "bus": (11.0, 2.95), "truck": (6.9, 2.5),
    "pedestrian": (0.73, 0.67), "cyclist": (1.75, 0.62), "bicycle": (1.75, 0.62),
    "motorcyclist": (2.1, 0.8), "motorcycle": (2.1, 0.8), "riderless_bicycle": (1.75, 0.62),
}
"""Typical (length, width) by category (AV2 object types and nuScenes class names)."""
FALLBACK_FOOTPRINT = (1.0, 1.0)


def footprint_of(category: str, size: Sequence[float]) -> tuple[float, float]:
    """``(length, width)`` of an agent: its own size when known, else the category default."""
    if len(size) >= 2 and size[0] > 0 and size[1] > 0:
        return float(size[0]), float(size[1])
    name = category.lower()
    for key in (name, name.split(".")[-1], name.split(".")[0]):
        if key in DEFAULT_FOOTPRINTS:
            return DEFAULT_FOOTPRINTS[key]
    if name.startswith("vehicle"):
        return DEFAULT_FOOTPRINTS["vehicle"]
    if name.startswith("human"):
        return DEFAULT_FOOTPRINTS["pedestrian"]
    return FALLBACK_FOOTPRINT


def box_corners(boxes: np.ndarray) -> np.ndarray:
    """``(..., 4, 2)`` corners of BEV boxes ``(..., 5)`` as ``x, y, l, w, yaw`` (CCW from front-left)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.shape[-1] != 5:
        raise PlanningMetricError(f"boxes must be (..., 5) x, y, l, w, yaw; got {boxes.shape}")
    unit = np.array([[0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5], [0.5, -0.5]])
    local = unit * boxes[..., None, 2:4]
    cos, sin = np.cos(boxes[..., 4])[..., None], np.sin(boxes[..., 4])[..., None]
    x = local[..., 0] * cos - local[..., 1] * sin + boxes[..., None, 0]
    y = local[..., 0] * sin + local[..., 1] * cos + boxes[..., None, 1]
    return np.stack([x, y], axis=-1)


def boxes_overlap(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """``(N, M)`` bool: do rotated rectangles ``(N, 5)`` and ``(M, 5)`` overlap (separating-axis test)?

    Touching edges do not count as overlap."""
    corners_a, corners_b = box_corners(np.reshape(boxes_a, (-1, 5))), box_corners(np.reshape(boxes_b, (-1, 5)))
    if len(corners_a) == 0 or len(corners_b) == 0:
        return np.zeros((len(corners_a), len(corners_b)), dtype=bool)
    ca, cb = corners_a[:, None], corners_b[None]  # (N, 1, 4, 2), (1, M, 4, 2)
    separated = np.zeros((len(corners_a), len(corners_b)), dtype=bool)
    for corners in (ca, cb):
        for k in range(2):
            edge = corners[..., k + 1, :] - corners[..., k, :]
            axis = np.stack([-edge[..., 1], edge[..., 0]], axis=-1)[..., None, :]  # (.., 1, 2)
            proj_a, proj_b = (ca * axis).sum(-1), (cb * axis).sum(-1)
            separated |= (proj_a.max(-1) <= proj_b.min(-1)) | (proj_b.max(-1) <= proj_a.min(-1))
    return ~separated


def ego_boxes(poses: np.ndarray, ego: EgoSpec) -> np.ndarray:
    """``(T, 5)`` ego boxes at reference poses ``(T, 3)`` (x, y, yaw)."""
    poses = np.asarray(poses, dtype=np.float64).reshape(-1, 3)
    centre = poses[:, :2] + ego.rear_axle_to_center * np.stack([np.cos(poses[:, 2]), np.sin(poses[:, 2])], 1)
    size = np.broadcast_to([ego.length, ego.width], (len(poses), 2))
    return np.concatenate([centre, size, poses[:, 2:3]], axis=1)


def agent_boxes_at(scene: PlanningScene, index: int) -> np.ndarray:
    """``(N, 5)`` boxes of the agents valid at timestep ``index`` of ``scene``."""
    rows = []
    for agent in scene.agents:
        if agent.valid[index]:
            length, width = footprint_of(agent.category, agent.size)
            x, y, yaw = agent.states[index, :3]
            rows.append((x, y, length, width, yaw))
    return np.asarray(rows, dtype=np.float64).reshape(-1, 5)


def future_ground_truth(scene: PlanningScene, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth ego positions ``(steps, 2)`` after the current index and their validity."""
    positions, valid = np.zeros((steps, 2)), np.zeros(steps, dtype=bool)
    start = scene.current_index + 1
    available = max(0, min(steps, len(scene.timestamps) - start))
    positions[:available] = scene.ego.states[start:start + available, :2]
    valid[:available] = scene.ego.valid[start:start + available]
    return positions, valid


def _check_plan(plan: np.ndarray, scene_id: str) -> np.ndarray:
    plan = np.asarray(plan, dtype=np.float64)
    if plan.ndim != 2 or plan.shape[1] not in (2, 3) or not len(plan):
        raise PlanningMetricError(f"scene {scene_id}: a plan must be (T_future>0, 3) x, y, yaw; got {plan.shape}")
    if not np.isfinite(plan).all():
        raise PlanningMetricError(f"scene {scene_id}: the plan has non-finite values")
    if plan.shape[1] == 2:  # yaw from the direction of travel
        delta = np.diff(plan, axis=0, prepend=plan[:1])
        delta[0] = delta[1] if len(plan) > 1 else (1.0, 0.0)
        plan = np.concatenate([plan, np.arctan2(delta[:, 1], delta[:, 0])[:, None]], axis=1)
    return plan


def scene_errors(plan: np.ndarray, scene: PlanningScene, ego: EgoSpec = EgoSpec()
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-step L2 error ``(T,)``, collision flags ``(T,)`` and GT validity ``(T,)`` of one plan."""
    plan = _check_plan(plan, scene.scene_id)
    steps = len(plan)
    truth, valid = future_ground_truth(scene, steps)
    l2 = np.linalg.norm(plan[:, :2] - truth, axis=1)
    collide = np.zeros(steps, dtype=bool)
    boxes = ego_boxes(plan, ego)
    start = scene.current_index + 1
    count = max(0, min(steps, len(scene.timestamps) - start))
    if count and scene.agents:
        states = np.stack([a.states[start:start + count] for a in scene.agents])  # (N, K, 5)
        present = np.stack([a.valid[start:start + count] for a in scene.agents])
        size = np.array([footprint_of(a.category, a.size) for a in scene.agents])
        for k in range(count):
            rows = present[:, k]
            others = np.concatenate([states[rows, k, :2], size[rows], states[rows, k, 2:3]], axis=1)
            collide[k] = bool(boxes_overlap(boxes[k:k + 1], others).any())
    return l2, collide, valid


@dataclass
class OpenLoopAccumulator:
    """Collects per-scene errors; :meth:`summary` gives the metrics at ``horizons_s``."""

    dt: float
    horizons_s: tuple[float, ...] = (1.0, 2.0, 3.0)
    ego: EgoSpec = EgoSpec()

    def __post_init__(self) -> None:
        if self.dt <= 0:
            raise PlanningMetricError(f"dt must be positive, got {self.dt}")
        self._l2: list[np.ndarray] = []
        self._collide: list[np.ndarray] = []
        self._valid: list[np.ndarray] = []

    def add(self, plan: np.ndarray, scene: PlanningScene) -> None:
        """Score one plan against the scene's ground-truth future."""
        if scene.dt > 0 and abs(scene.dt - self.dt) > 1e-3:
            raise PlanningMetricError(f"scene {scene.scene_id}: dt {scene.dt:.3f} s, the evaluator expects {self.dt}")
        l2, collide, valid = scene_errors(plan, scene, self.ego)
        self._l2.append(l2)
        self._collide.append(collide)
        self._valid.append(valid)

    def summary(self) -> dict[str, float]:
        """``l2_{t}s``, ``l2_at_{t}s``, ``collision_{t}s``, ``collision_any_{t}s`` and ``num_scenes``."""
        out: dict[str, float] = {"num_scenes": float(len(self._l2))}
        for horizon in self.horizons_s:
            steps = int(round(horizon / self.dt))
            key = f"{horizon:g}s"
            rows = [(l2[:steps], c[:steps], v[:steps]) for l2, c, v in zip(self._l2, self._collide, self._valid)
                    if len(l2) >= steps and v[:steps].all()]
            if not rows:
                for name in ("l2", "l2_at", "collision", "collision_any"):
                    out[f"{name}_{key}"] = float("nan")
                continue
            l2 = np.stack([r[0] for r in rows])
            collide = np.stack([r[1] for r in rows])
            out[f"l2_{key}"] = float(l2.mean())
            out[f"l2_at_{key}"] = float(l2[:, -1].mean())
            out[f"collision_{key}"] = float(collide.mean())
            out[f"collision_any_{key}"] = float(collide.any(axis=1).mean())
        return out


def evaluate_open_loop(planner: Callable[[PlanningScene], np.ndarray] | object, scenes: Iterable[PlanningScene],
                       dt: float = 0.1, horizons_s: tuple[float, ...] = (1.0, 2.0, 3.0),
                       ego: EgoSpec = EgoSpec()) -> dict[str, float]:
    """Open-loop metrics of ``planner`` (an object with ``plan(scene)`` or a callable) on ``scenes``.

    Only scenes whose ground-truth future covers a horizon count for that horizon."""
    plan_fn = planner.plan if hasattr(planner, "plan") else planner
    accumulator = OpenLoopAccumulator(dt, horizons_s, ego)
    for scene in scenes:
        accumulator.add(plan_fn(scene), scene)
    return accumulator.summary()
