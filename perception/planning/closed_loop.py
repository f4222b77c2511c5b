"""Closed-loop evaluation in the synthetic world: a planner drives the ego for N seconds.

Every step (the world's 10 Hz) the planner sees a :class:`PlanningScene` built from the
simulated ego's own history and the other agents' log up to now (their future is hidden),
returns a plan, and a pure-pursuit controller turns the plan into acceleration and yaw rate
for a kinematic unicycle with acceleration, deceleration, yaw-rate and speed limits.  The
other agents are log-replayed (non-reactive), as in nuPlan's "closed-loop, non-reactive
agents" setting: they do not yield to an ego that leaves the expert's path or falls behind.

Reported per run (:class:`ClosedLoopResult`): progress (m along the expert's route from the
start to the furthest point reached while within ``route_tolerance`` of it: leaving the route
earns nothing), the ratio to the expert's progress, the largest distance from the route, collisions (steps and distinct
agents whose box overlaps the ego box, first collision time) and the off-road rate (fraction
of steps with an ego corner outside the drivable area).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from shapely.geometry import LineString, Point
from tqdm import tqdm

from ..evaluation.planning_metrics import EgoSpec, box_corners, boxes_overlap, ego_boxes, footprint_of
from .closed_loop_world import ClosedLoopWorld, offroad_mask, scene_at
from .scene import PlanningScene

Planner = Callable[[PlanningScene], np.ndarray]


@dataclass(frozen=True)
class KinematicLimits:
    """Unicycle limits and the controller's look-ahead along the plan."""

    max_accel: float = 3.0
    max_decel: float = 7.0
    max_yaw_rate: float = 1.0
    max_speed: float = 20.0
    lookahead_s: float = 0.6


@dataclass(frozen=True)
class ClosedLoopConfig:
    """Run length (s), history given to the planner (steps), ego footprint and dynamics; progress
    only counts while the ego is within ``route_tolerance`` metres of the route."""

    duration_s: float = 8.0
    history_steps: int = 20
    ego: EgoSpec = EgoSpec()
    limits: KinematicLimits = KinematicLimits()
    offroad_tolerance: float = 0.1
    route_tolerance: float = 3.5


@dataclass
class ClosedLoopResult:
    """One run: the driven ego states ``(T, 5)`` (x, y, yaw, v, yaw_rate), the metrics and the plans."""

    world: str
    times: np.ndarray
    states: np.ndarray
    progress_m: float
    expert_progress_m: float
    collision_steps: int
    collided_agents: list[str]
    first_collision_s: float | None
    offroad_rate: float
    route_deviation_m: float = 0.0
    plans: list[np.ndarray] = field(default_factory=list)

    @property
    def collided(self) -> bool:
        return bool(self.collided_agents)

    def metrics(self) -> dict[str, float]:
        """JSON-safe figures of this run."""
        ratio = self.progress_m / self.expert_progress_m if self.expert_progress_m > 1e-3 else float("nan")
        return {"progress_m": self.progress_m, "expert_progress_m": self.expert_progress_m,
                "progress_ratio": ratio, "collided": float(self.collided),
                "collision_steps": float(self.collision_steps), "collided_agents": float(len(self.collided_agents)),
                "offroad_rate": self.offroad_rate, "route_deviation_m": self.route_deviation_m}


def kinematic_step(state: np.ndarray, accel: float, yaw_rate: float, dt: float,
                   limits: KinematicLimits) -> np.ndarray:
    """One unicycle step of ``state`` = x, y, yaw, v (commands clipped to the limits)."""
    accel = float(np.clip(accel, -limits.max_decel, limits.max_accel))
    yaw_rate = float(np.clip(yaw_rate, -limits.max_yaw_rate, limits.max_yaw_rate))
    x, y, yaw, v = state
    v_new = float(np.clip(v + accel * dt, 0.0, limits.max_speed))
    v_mid = 0.5 * (v + v_new)
    yaw_mid = yaw + 0.5 * yaw_rate * dt
    return np.array([x + v_mid * np.cos(yaw_mid) * dt, y + v_mid * np.sin(yaw_mid) * dt, yaw + yaw_rate * dt, v_new])


def track_plan(state: np.ndarray, plan: np.ndarray, dt: float, limits: KinematicLimits) -> tuple[float, float]:
    """Pure pursuit on ``plan`` ``(T, >=2)``: acceleration toward the plan's speed over the look-ahead
    and the yaw rate that arcs to the look-ahead point."""
    plan = np.asarray(plan, dtype=np.float64)
    if plan.ndim != 2 or plan.shape[1] < 2 or not len(plan) or not np.isfinite(plan[:, :2]).all():
        raise ValueError(f"a plan must be a finite (T>0, 3) array of x, y, yaw; got shape {plan.shape}")
    x, y, yaw, v = state
    k = int(np.clip(round(limits.lookahead_s / dt) - 1, 0, len(plan) - 1))
    path = np.concatenate([[[x, y]], plan[: k + 1, :2]])
    target_speed = np.linalg.norm(np.diff(path, axis=0), axis=1).sum() / ((k + 1) * dt)
    accel = (target_speed - v) / max(dt * 2, 1e-6)
    offset = plan[k, :2] - (x, y)
    distance = float(np.linalg.norm(offset))
    if distance < 0.2:
        return accel, 0.0
    alpha = np.arctan2(offset[1], offset[0]) - yaw
    curvature = 2.0 * np.sin(alpha) / distance
    return accel, float(max(v, target_speed) * curvature)


def _station(route: LineString, xy: np.ndarray) -> float:
    return float(route.project(Point(float(xy[0]), float(xy[1]))))


def run_closed_loop(world: ClosedLoopWorld, planner: Planner | object, config: ClosedLoopConfig = ClosedLoopConfig(),
                    keep_plans: bool = False, progress: bool = False) -> ClosedLoopResult:
    """Drive ``planner`` (``plan(scene)`` method or callable) in ``world`` for ``config.duration_s``."""
    plan_fn = planner.plan if hasattr(planner, "plan") else planner
    dt, start = world.dt, world.start_index
    steps = min(int(round(config.duration_s / dt)), len(world.times) - 1 - start)
    if steps < 1:
        raise ValueError(f"world {world.name}: no time left for a closed-loop run after step {start}")
    logged = world.ego_log.states()
    history = logged[: start + 1].copy()  # x, y, yaw, vx, vy
    state = np.array([*logged[start, :3], float(np.linalg.norm(logged[start, 3:5]))])
    driven, plans = [np.array([*state, 0.0])], []
    for index in tqdm(range(start, start + steps), desc=f"closed loop {world.name}", disable=not progress):
        scene = scene_at(world, index, config.history_steps, 0, history)
        plan = np.asarray(plan_fn(scene), dtype=np.float64)
        if keep_plans:
            plans.append(plan)
        accel, yaw_rate = track_plan(state, plan, dt, config.limits)
        state = kinematic_step(state, accel, yaw_rate, dt, config.limits)
        yaw_rate = float(np.clip(yaw_rate, -config.limits.max_yaw_rate, config.limits.max_yaw_rate))
        driven.append(np.array([*state, yaw_rate]))
        velocity = state[3] * np.array([np.cos(state[2]), np.sin(state[2])])
        history = np.concatenate([history, [[state[0], state[1], state[2], *velocity]]])
    states = np.stack(driven)
    return _score(world, states, start, config, plans)


def _score(world: ClosedLoopWorld, states: np.ndarray, start: int, config: ClosedLoopConfig,
           plans: list[np.ndarray]) -> ClosedLoopResult:
    indices = np.arange(start, start + len(states))
    boxes = ego_boxes(states[:, :3], config.ego)
    agent_states = world.agent_states()[:, indices]  # (N, T, 5)
    footprints = np.array([footprint_of(a.category, a.size) for a in world.agents]).reshape(-1, 2)
    collided, collision_steps, first = [], 0, None
    for k in range(1, len(states)):  # step 0 is the logged start
        others = np.concatenate([agent_states[:, k, :2], footprints, agent_states[:, k, 2:3]], axis=1)
        hits = np.flatnonzero(boxes_overlap(boxes[k:k + 1], others)[0])
        if len(hits):
            collision_steps += 1
            first = first if first is not None else float(world.times[indices[k]] - world.times[start])
            collided += [world.agents[i].track_id for i in hits if world.agents[i].track_id not in collided]
    offroad = offroad_mask(world, box_corners(boxes[1:]), config.offroad_tolerance)
    route = LineString(world.route)
    expert_end = world.ego_log.positions[indices[-1]]
    stations = np.array([_station(route, xy) for xy in states[:, :2]])
    deviation = np.array([route.distance(Point(float(x), float(y))) for x, y in states[:, :2]])
    on_route = deviation <= config.route_tolerance
    on_route[0] = True
    return ClosedLoopResult(
        world.name, world.times[indices] - world.times[start], states,
        progress_m=float(stations[on_route].max() - stations[0]),
        expert_progress_m=_station(route, expert_end) - stations[0],
        collision_steps=collision_steps, collided_agents=collided, first_collision_s=first,
        offroad_rate=float(offroad.mean()), route_deviation_m=float(deviation.max()), plans=plans)


def summarize(results: Sequence[ClosedLoopResult]) -> dict[str, float]:
    """Mean figures over runs: progress, progress ratio, collision rate (runs with any), off-road rate."""
    if not results:
        raise ValueError("summarize: no closed-loop results")
    rows = [r.metrics() for r in results]
    out = {key: float(np.nanmean([row[key] for row in rows])) for key in rows[0]}
    out["collision_rate"] = out.pop("collided")
    out["num_runs"] = float(len(results))
    return out


class LogReplayPlanner:
    """The expert: the world's logged ego future from now (an upper reference for the metrics)."""

    def __init__(self, world: ClosedLoopWorld, num_future: int = 30) -> None:
        self.world, self.num_future = world, num_future
        self._times = world.times

    def plan(self, scene: PlanningScene) -> np.ndarray:
        now = int(np.argmin(np.abs(self._times - scene.timestamps[scene.current_index])))
        future = self.world.ego_log.states()[now + 1: now + 1 + self.num_future, :3]
        if len(future) < self.num_future:
            pad = np.repeat(future[-1:] if len(future) else self.world.ego_log.states()[now:now + 1, :3],
                            self.num_future - len(future), 0)
            future = np.concatenate([future, pad])
        return future
