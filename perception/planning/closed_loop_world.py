"""A synthetic-world scene for planning: logged agents, the ego's route, drivable area, map.

:func:`synthetic_world` runs the synthetic traffic simulation
(:func:`perception.datasets.synthetic.agents.simulate_traffic`, no sensors, so it takes a
fraction of a second) and keeps its 10 Hz log: every moving agent and every movable static
object (parked cars, cones, barriers; scenery such as buildings is left out, the drivable
area covers it).  The ego's logged trajectory is the expert; its route (lane centrelines) is
what closed-loop progress is measured along.  :func:`scene_at` cuts a
:class:`PlanningScene` at any step (history from the log or from a simulated ego), and
:func:`training_scenes` slides a window over the log for training and open-loop metrics.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import Polygon

from ..datasets.synthetic.types import RoadMap
from ..structures.map_elements import AgentHistory, MapElement
from .scene import PlanningScene

EGO_SIZE = (4.08, 1.73, 1.56)
SIM_DT = 0.05


@dataclass
class LoggedAgent:
    """One agent's log: positions ``(T, 2)``, yaws ``(T,)``, velocities ``(T, 2)`` at the world's times."""

    track_id: str
    category: str
    size: tuple[float, float, float]
    positions: np.ndarray
    yaws: np.ndarray
    velocities: np.ndarray

    def states(self) -> np.ndarray:
        """``(T, 5)`` as x, y, yaw, vx, vy."""
        return np.concatenate([self.positions, self.yaws[:, None], self.velocities], axis=1)


@dataclass
class ClosedLoopWorld:
    """Times ``(T,)`` at ``dt`` (``times[start_index]`` = 0 is when control begins), the expert ego
    log, the other agents, the ego route ``(K, 2)``, the drivable area and the map."""

    name: str
    times: np.ndarray
    start_index: int
    ego_log: LoggedAgent
    agents: list[LoggedAgent]
    route: np.ndarray
    drivable: Polygon
    map_elements: list[MapElement] = field(default_factory=list)
    location: str = ""

    @property
    def dt(self) -> float:
        return float(self.times[1] - self.times[0])

    def agent_states(self) -> np.ndarray:
        """``(N, T, 5)`` states of every agent."""
        return np.stack([a.states() for a in self.agents]) if self.agents else np.zeros((0, len(self.times), 5))


def road_map_elements(road_map: RoadMap) -> list[MapElement]:
    """The synthetic road map as world-frame :class:`MapElement`\\ s (lane centrelines, dividers,
    road boundaries, crossings, drivable segments)."""
    elements = [MapElement("lane_centerline", lane.centerline, False, f"lane/{lane.lane_id}")
                for lane in road_map.lanes]
    elements += [MapElement("divider", line, False, f"divider/{k}", {"kind": kind})
                 for k, (line, kind) in enumerate(road_map.dividers)]
    elements += [MapElement("boundary", ring, True, f"boundary/{k}") for k, ring in enumerate(road_map.boundaries)]
    elements += [MapElement("ped_crossing", poly, True, f"ped_crossing/{k}")
                 for k, poly in enumerate(road_map.ped_crossings)]
    elements += [MapElement("drivable_area", poly, True, f"drivable_area/{k}")
                 for k, (poly, _) in enumerate(road_map.road_segments)]
    return elements


def _town(location: str):  # -> Town; building a town takes seconds, callers may pass one in
    from ..datasets.synthetic.world import build_town

    return build_town(location)


def synthetic_world(name: str, seed: int, location: str = "synth-town", duration_s: float = 10.0,
                    history_s: float = 2.0, dt: float = 0.1, vehicle_density: float = 2.0,
                    pedestrian_count: int = 24, town: object | None = None) -> ClosedLoopWorld:
    """Simulate a seeded scene: ``history_s`` of log before control starts, ``duration_s`` after.

    ``town`` (from :func:`perception.datasets.synthetic.world.build_town`) can be shared
    between calls of one location to save its build time."""
    from ..datasets.synthetic.agents import simulate_traffic

    if duration_s <= 0 or history_s < 0:
        raise ValueError(f"synthetic_world({name}): duration_s must be > 0 and history_s >= 0, "
                         f"got {duration_s}, {history_s}")
    stride = int(round(dt / SIM_DT))
    if stride < 1 or abs(stride * SIM_DT - dt) > 1e-9:
        raise ValueError(f"synthetic_world({name}): dt must be a multiple of {SIM_DT} s, got {dt}")
    town = town if town is not None else _town(location)
    history_steps, future_steps = int(round(history_s / dt)), int(round(duration_s / dt))
    sim_times = np.arange(-(history_steps + 20) * stride, (future_steps + 1) * stride) * SIM_DT
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode())]))
    traffic = simulate_traffic(town, rng, sim_times, arrival=0.3 * duration_s, key=(name, seed),
                               vehicle_density=vehicle_density, pedestrian_count=pedestrian_count,
                               ego_size=EGO_SIZE)
    keep = slice(20 * stride, None, stride)
    times = sim_times[keep]

    def logged(traj) -> LoggedAgent:
        velocity = np.gradient(traj.positions, SIM_DT, axis=0)[keep]
        return LoggedAgent(traj.track_id, traj.category, tuple(float(s) for s in traj.size),
                           traj.positions[keep].copy(), traj.yaws[keep].copy(), velocity)

    agents = [logged(m) for m in traffic.movers]
    for obj in traffic.statics:
        if obj.category.startswith("static."):
            continue
        agents.append(LoggedAgent(obj.track_id, obj.category, tuple(float(s) for s in obj.size),
                                  np.repeat(obj.center[None, :2], len(times), 0), np.full(len(times), obj.yaw),
                                  np.zeros((len(times), 2))))
    ego_log = logged(traffic.ego)
    return ClosedLoopWorld(name, times, history_steps, ego_log, agents, _route_of(ego_log),
                           town.drivable, road_map_elements(town.road_map), location)


def _route_of(ego: LoggedAgent) -> np.ndarray:
    """The ego's route: its logged positions, continued straight 50 m past the last one."""
    positions = ego.positions
    heading = np.array([np.cos(ego.yaws[-1]), np.sin(ego.yaws[-1])])
    tail = positions[-1] + np.arange(1, 51)[:, None] * heading
    line = np.concatenate([positions, tail])
    keep = np.concatenate([[True], np.linalg.norm(np.diff(line, axis=0), axis=1) > 1e-3])
    return line[keep]


def scene_at(world: ClosedLoopWorld, index: int, history_steps: int = 20, future_steps: int = 0,
             ego_states: np.ndarray | None = None, radius: float = 80.0) -> PlanningScene:
    """The :class:`PlanningScene` at ``world.times[index]``: ``history_steps`` of past,
    ``future_steps`` of logged future (for training / open-loop metrics; 0 in closed loop).

    ``ego_states`` ``(index + 1, 5)`` replaces the logged ego up to ``index`` (the simulated ego
    in closed loop).  Agents within ``radius`` metres of the ego now are kept."""
    first = max(0, index - history_steps)
    last = min(len(world.times) - 1, index + future_steps)
    window = slice(first, last + 1)
    times = world.times[window]
    ego = world.ego_log.states()
    if ego_states is not None:
        ego = ego.copy()
        ego[: index + 1] = ego_states[: index + 1]
        ego[index + 1:] = np.nan  # the logged future is not the simulated ego's
    ego_valid = np.isfinite(ego[window]).all(axis=1)
    ego_track = AgentHistory("ego", "vehicle.car", times, np.nan_to_num(ego[window]), ego_valid, EGO_SIZE)
    here = ego[index, :2]
    agents = []
    for agent in world.agents:
        if np.linalg.norm(agent.positions[index] - here) > radius:
            continue
        agents.append(AgentHistory(agent.track_id, agent.category, times, agent.states()[window],
                                   np.ones(len(times), dtype=bool), agent.size))
    return PlanningScene(f"{world.name}@{index}", times, index - first, ego_track, agents, world.map_elements,
                         [], world.location)


def training_scenes(world: ClosedLoopWorld, history_steps: int = 20, future_steps: int = 30, stride: int = 5
                    ) -> list[PlanningScene]:
    """Scenes every ``stride`` steps of the log with full history and future."""
    return [scene_at(world, index, history_steps, future_steps)
            for index in range(history_steps, len(world.times) - future_steps, stride)]


def offroad_mask(world: ClosedLoopWorld, corners: np.ndarray, tolerance: float = 0.1) -> np.ndarray:
    """``(T,)`` bool: is any of the ``(T, 4, 2)`` box corners outside the drivable area (beyond ``tolerance`` m)?"""
    area = world.drivable.buffer(tolerance) if tolerance > 0 else world.drivable
    inside = shapely.contains_xy(area, corners[..., 0].ravel(), corners[..., 1].ravel()).reshape(corners.shape[:-1])
    return ~inside.all(axis=-1)
