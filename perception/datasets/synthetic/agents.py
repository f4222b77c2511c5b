"""Traffic of one scene: spawns the ego, vehicles of every class and pedestrians, schedules
the traffic lights around the ego's arrival, runs :class:`.traffic.TrafficSim`, and returns
every agent's trajectory (velocities are finite differences of the positions)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import polyline as pl
from .catalog import KINDS, attribute_of, jittered_size, track_id
from .routes import Route, crossing_intervals, lane_route, predecessors, walk_route
from .kerbside import place_kerbside
from .traffic import LightSchedule, Mover, TrafficSim
from .types import EgoRoute, ObjectState
from .world import ARM_ANGLES, Town

ROUTE_MARGIN = 120.0
ALL_RED_S, GREEN_S = 3.0, 8.0
MOVING_KINDS = ("car", "truck", "bus", "motorcycle", "bicycle")
KIND_WEIGHTS = np.array([0.62, 0.1, 0.06, 0.08, 0.14])


@dataclass
class Trajectory:
    """An agent's states at the simulation times: positions ``(T, 2)``, yaws ``(T,)``."""

    track_id: str
    category: str
    size: np.ndarray
    positions: np.ndarray
    yaws: np.ndarray

    def state(self, index: int, velocities: np.ndarray) -> ObjectState:
        """The :class:`ObjectState` at time ``index`` given ``(T, 2)`` velocities."""
        velocity = velocities[index]
        center = np.array([*self.positions[index], self.size[2] / 2])
        attribute = attribute_of(self.category, float(np.linalg.norm(velocity)), parked=False)
        return ObjectState(self.track_id, self.category, center, self.size, float(self.yaws[index]),
                           velocity.copy(), attribute)


@dataclass
class TrafficResult:
    """The simulated scene: times, the ego's path, moving agents and static objects."""

    times: np.ndarray
    ego: Trajectory
    movers: list[Trajectory]
    statics: list[ObjectState]
    ego_route: EgoRoute | None = None


def _ego_route(town: Town, rng: np.random.Generator, approach: float, length: float,
               choice: EgoRoute | None = None) -> tuple[EgoRoute, Route]:
    """A route that reaches a stop line ``approach`` metres after its start, then turns;
    ``choice`` replays a recorded one (a revisit) instead of drawing a new one."""
    if choice is not None:
        unknown = [lane for lane in choice.lanes if lane not in town.lanes]
        if not choice.lanes:
            raise ValueError(f"ego route {choice} names no lanes")
        if unknown:
            raise ValueError(f"ego route {choice} names lanes {town.road_map.location} does not have: {unknown}")
        route = lane_route(town, list(choice.lanes), choice.start, length, rng)
        return EgoRoute(choice.arm, tuple(route.lane_ids), choice.start), route
    arm = list(ARM_ANGLES)[int(rng.integers(4))]
    n = town.spec.lanes_per_direction
    move = ["left", "right", "straight"][int(rng.choice(3, p=[0.4, 0.4, 0.2]))]
    lane_index = {"left": 0, "right": n - 1, "straight": int(rng.integers(n))}[move]
    in_lane = f"{arm}_in_{lane_index}"
    arms = list(ARM_ANGLES)
    k = arms.index(arm)
    target = {"straight": arms[(k + 2) % 4], "left": arms[(k + 3) % 4], "right": arms[(k + 1) % 4]}[move]
    stop = town.stop_offsets[in_lane][1]
    lanes = [in_lane, f"J_{arm}{target}_{lane_index}", f"{target}_out_{lane_index}"]
    start = stop - approach
    preds = predecessors(town)
    while start < 0:
        lanes.insert(0, preds[lanes[0]][0])
        start += pl.cumulative_length(town.lanes[lanes[0]].centerline)[-1]
    route = lane_route(town, lanes, start, length, rng)
    return EgoRoute(arm, tuple(route.lane_ids), float(start)), route


def _schedule(ego_arm: str, ego_green_end: float, t0: float, t1: float) -> LightSchedule:
    """Ego's arm green from the start until ``ego_green_end``, then the arms in turn."""
    arms = list(ARM_ANGLES)
    phases = [(ego_arm, t0 - 1.0, ego_green_end)]
    k, t = arms.index(ego_arm), ego_green_end + ALL_RED_S
    while t < t1:
        k = (k + 1) % 4
        phases.append((arms[k], t, t + GREEN_S))
        t += GREEN_S + ALL_RED_S
    return LightSchedule(phases)


def _spawn_vehicles(town: Town, rng: np.random.Generator, density: float, ego_xy: np.ndarray, ego_arm: str,
                    lights: LightSchedule, t0: float, length: float, key: tuple) -> list[Mover]:
    """Vehicles along every non-junction lane, ``density`` per 100 m on average; each moving
    kind appears at least once, placed first on the junction arm lanes nearest the ego (not
    beside it: big vehicles driving along with the ego would hide the kerb all the time)."""
    movers: list[Mover] = []
    pending = ["bus", "truck", "motorcycle", "bicycle"]
    n = town.spec.lanes_per_direction
    def nearness(lane_id: str) -> tuple[bool, float, str]:
        gap = np.linalg.norm(town.lanes[lane_id].centerline - ego_xy, axis=1).min()
        beside = lane_id.startswith(f"{ego_arm}_in_")
        return lane_id.split("_")[0] not in ARM_ANGLES or beside, round(float(gap), 3), lane_id

    lane_ids = sorted((i for i, lane in town.lanes.items() if not lane.is_intersection), key=nearness)
    for lane_id in lane_ids:
        lane = town.lanes[lane_id]
        outer = lane_id.endswith(f"_{n - 1}")
        lane_len = pl.cumulative_length(lane.centerline)[-1]
        if lane_id in town.stop_offsets:  # never spawn past a stop line
            lane_len = town.stop_offsets[lane_id][1]
        station = rng.uniform(2.0, 100.0 / density)
        while True:
            kind = next((k for k in pending if outer or k != "bicycle"), None)
            if kind is None:
                kind = MOVING_KINDS[int(rng.choice(len(MOVING_KINDS), p=KIND_WEIGHTS))]
                kind = "car" if kind == "bicycle" and not outer else kind
            size = jittered_size(kind, rng)
            center = station + size[0] / 2
            if center + size[0] / 2 > lane_len - 1.0:
                break
            route = lane_route(town, [lane_id], center, length, rng)
            xy = route.line[np.searchsorted(route.cum, 0.0)]
            if np.linalg.norm(xy - ego_xy) > 14.0:
                if kind in pending:
                    pending.remove(kind)
                spec = KINDS[kind]
                desired = spec.speed * rng.uniform(0.85, 1.1)
                stopped = any(0 < st < 45 and lights.green_until(arm, t0) is None for st, arm, _ in route.stops)
                movers.append(Mover(track_id(*key, "vehicle", len(movers)), spec.category, size, route,
                                    desired, spec.accel, 0.0 if stopped else 0.8 * min(desired, lane.speed_limit)))
            station += size[0] + 8.0 + rng.exponential(100.0 / density)
    return movers


def _spawn_walkers(town: Town, rng: np.random.Generator, count: int, key: tuple) -> list[Mover]:
    """Pedestrians: half cross an arm at its zebra crossing, the rest walk or stand."""
    walkers = []
    keys = sorted(town.sidewalk_lines)
    for k in range(count):
        speed = KINDS["pedestrian"].speed * rng.uniform(0.8, 1.15)
        if k % 2 == 0:
            crossing = town.crossings[int(rng.integers(len(town.crossings)))]
            here, there = f"{crossing.arm}:right", f"{crossing.arm}:left"
            if rng.uniform() < 0.5:
                here, there = there, here
            near = town.sidewalk_lines[here][: int(rng.uniform(4, 40))][::-1]
            far = town.sidewalk_lines[there][:80]
            across = crossing.path if here.endswith("right") else crossing.path[::-1]
            line = np.concatenate([near, across, far])
        else:
            line = town.sidewalk_lines[keys[int(rng.integers(len(keys)))]]
            start = int(rng.integers(0, max(len(line) - 60, 1)))
            line = line[start:] if rng.uniform() < 0.5 else line[: len(line) - start][::-1]
            speed = 0.0 if rng.uniform() < 0.3 else speed
        route = walk_route(line, rng.uniform(-1.0, 1.0))
        route.crossings = crossing_intervals(town, route.line, route.cum) if k % 2 == 0 else []
        walkers.append(Mover(track_id(*key, "pedestrian", k), KINDS["pedestrian"].category,
                             jittered_size("pedestrian", rng), route, speed, 1.0, speed))
    return walkers


def simulate_traffic(town: Town, rng: np.random.Generator, times: np.ndarray, arrival: float,
                     key: tuple, vehicle_density: float = 2.0, pedestrian_count: int = 24,
                     ego_size: tuple[float, float, float] = (4.08, 1.73, 1.56),
                     keyframe_times: np.ndarray | None = None, ego_route: EgoRoute | None = None,
                     ) -> TrafficResult:
    """Simulate ``times`` (seconds, uniform step); the ego reaches its stop line near ``arrival``.

    ``ego_route`` makes the ego drive a recorded route (:attr:`TrafficResult.ego_route` of
    another scene) instead of a random one; everything else is drawn from ``rng`` as usual.

    Kerbside objects are laid out near the ego's positions at ``keyframe_times`` (default:
    every 0.5 s from 0 to the end of ``times``), where the annotated keyframes are.
    """
    dt = float(times[1] - times[0])
    length = KINDS["car"].speed * 1.3 * (times[-1] - times[0]) + ROUTE_MARGIN
    ego_speed = 8.0
    chosen, route = _ego_route(town, rng, ego_speed * (arrival - times[0]), length, ego_route)
    lights = _schedule(chosen.arm, arrival + 6.0, float(times[0]), float(times[-1]))
    ego = Mover(track_id(*key, "ego"), "vehicle.car", np.asarray(ego_size), route, 10.0, 1.5, ego_speed)
    vehicles = _spawn_vehicles(town, rng, vehicle_density, route.line[np.searchsorted(route.cum, 0.0)],
                               chosen.arm, lights, float(times[0]), length, key)
    walkers = _spawn_walkers(town, rng, pedestrian_count, key)
    sim = TrafficSim([ego, *vehicles], walkers, lights, len(town.crossings), dt)
    vpos, vyaw, wpos, wyaw = sim.run(times)
    trajectories = [Trajectory(m.track_id, m.category, m.size, vpos[:, i], vyaw[:, i])
                    for i, m in enumerate([ego, *vehicles])]
    trajectories += [Trajectory(m.track_id, m.category, m.size, wpos[:, i], wyaw[:, i])
                     for i, m in enumerate(walkers)]
    if keyframe_times is None:
        keyframe_times = np.arange(0.0, float(times[-1]) + 1e-9, 0.5)
    focus = np.stack([np.interp(keyframe_times, times, trajectories[0].positions[:, k]) for k in range(2)], 1)
    statics = town.statics + place_kerbside(town, rng, key, focus)
    return TrafficResult(times, trajectories[0], trajectories[1:], statics, chosen)
