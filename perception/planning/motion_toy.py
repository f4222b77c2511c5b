"""Small hand-made :class:`PlanningScene`\\ s (straight lanes, constant speeds) for tests and demos.

The ego drives along +x on the lane ``y = 0``; agents drive on lanes ``y = +-3.5 m`` (and one
walks beside the road) at constant, seeded speeds, optionally slowing down in the future
(``braking``) so a constant-velocity guess is wrong.  The map holds the lane centerlines and
the dividers between them.  Everything can be rotated / translated as a whole (``pose``) to
test frame invariance.
"""
from __future__ import annotations

import numpy as np

from ..structures.map_elements import AgentHistory, MapElement
from .scene import PlanningScene


def _track(track_id: str, category: str, times: np.ndarray, start: np.ndarray, velocity: np.ndarray,
           brake_from: int | None, pose: np.ndarray) -> AgentHistory:
    steps = len(times)
    speed_scale = np.ones(steps)
    if brake_from is not None:
        speed_scale[brake_from:] = np.clip(1.0 - 0.1 * np.arange(1, steps - brake_from + 1), 0.0, 1.0)
    dt = float(times[1] - times[0])
    vel = velocity[None] * speed_scale[:, None]
    xy = start[None] + np.concatenate([[[0.0, 0.0]], np.cumsum(vel[:-1] * dt, axis=0)])
    yaw = np.full(steps, np.arctan2(velocity[1], velocity[0]) if np.linalg.norm(velocity) > 0 else 0.0)
    c, s = np.cos(pose[2]), np.sin(pose[2])
    rot = np.array([[c, -s], [s, c]])
    states = np.concatenate([xy @ rot.T + pose[:2], (yaw + pose[2])[:, None], vel @ rot.T], axis=1)
    return AgentHistory(track_id, category, times, states, np.ones(steps, dtype=bool), (4.5, 2.0, 1.6))


def make_toy_scene(seed: int = 0, steps: int = 110, now: int = 49, num_agents: int = 5, braking: bool = False,
                   pose: tuple[float, float, float] = (0.0, 0.0, 0.0), dt: float = 0.1) -> PlanningScene:
    """A seeded straight-road scene (module doc); ``pose`` = world ``x, y, yaw`` of the road frame."""
    rng = np.random.default_rng(seed)
    pose_arr = np.asarray(pose, dtype=np.float64)
    times = np.arange(steps) * dt
    brake = now + 5 if braking else None
    ego = _track("AV", "vehicle", times, np.array([0.0, 0.0]), np.array([8.0 + rng.uniform(-1, 1), 0.0]), brake,
                 pose_arr)
    agents = []
    for i in range(num_agents):
        lane = (-3.5, 3.5)[i % 2]
        direction = 1.0 if lane < 0 or i % 3 else -1.0
        start = np.array([rng.uniform(-30, 30) - direction * 20, lane])
        velocity = np.array([direction * rng.uniform(4, 12), 0.0])
        agents.append(_track(f"agent_{i}", "vehicle", times, start, velocity, brake if i == 0 else None, pose_arr))
    agents.append(_track("walker", "pedestrian", times, np.array([-10.0, 7.0]), np.array([1.3, 0.0]), None, pose_arr))
    c, s = np.cos(pose_arr[2]), np.sin(pose_arr[2])
    rot = np.array([[c, -s], [s, c]])
    xs = np.linspace(-150.0, 150.0, 61)
    elements = []
    for y, kind in ((0.0, "lane_centerline"), (3.5, "lane_centerline"), (-3.5, "lane_centerline"),
                    (1.75, "divider"), (-1.75, "divider"), (5.25, "boundary"), (-5.25, "boundary")):
        points = np.stack([xs, np.full_like(xs, y)], axis=1) @ rot.T + pose_arr[:2]
        elements.append(MapElement(kind, points, False, f"{kind}/{y:+.2f}"))
    return PlanningScene(f"toy-{seed}", times, now, ego, agents, elements, ["agent_0", "agent_1"], "toy-town")
