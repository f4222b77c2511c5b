"""Closed loop: the kinematic model, the expert replay as a reference, collisions, off-road and progress."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from perception.planning.baselines import ConstantVelocityPlanner
from perception.planning.closed_loop import (ClosedLoopConfig, KinematicLimits, LogReplayPlanner, kinematic_step,
                                             run_closed_loop, summarize, track_plan)
from perception.planning.closed_loop_plot import draw_closed_loop
from perception.planning.closed_loop_world import LoggedAgent, scene_at, synthetic_world
from perception.planning.scene import PlanningScene

CONFIG = ClosedLoopConfig(duration_s=6.0)


@pytest.fixture(scope="module")
def world():
    return synthetic_world("closed-loop-test", 1, duration_s=6.0)


def test_kinematic_step_respects_the_limits() -> None:
    limits = KinematicLimits(max_accel=2.0, max_decel=5.0, max_yaw_rate=0.5, max_speed=10.0)
    state = np.array([0.0, 0.0, 0.0, 9.5])
    fast = kinematic_step(state, 100.0, 100.0, 0.1, limits)
    assert fast[3] == pytest.approx(9.7) and fast[2] == pytest.approx(0.05)
    assert kinematic_step(np.array([0, 0, 0, 0.2]), -100.0, 0.0, 0.1, limits)[3] == 0.0  # no reversing
    assert kinematic_step(np.array([0, 0, 0, 9.9]), 2.0, 0.0, 0.1, limits)[3] == 10.0
    # pure pursuit: a plan to the left turns left, a plan at the current speed keeps it
    plan = np.column_stack([np.arange(1, 31) * 0.5, np.arange(1, 31) * 0.1, np.zeros(30)])
    accel, yaw_rate = track_plan(np.array([0.0, 0.0, 0.0, 5.0]), plan, 0.1, KinematicLimits())
    assert yaw_rate > 0 and abs(accel) < 0.5
    with pytest.raises(ValueError, match="plan"):
        track_plan(np.zeros(4), np.zeros((0, 3)), 0.1, KinematicLimits())


def test_expert_replay_makes_the_expert_progress_without_incidents(world) -> None:
    result = run_closed_loop(world, LogReplayPlanner(world), CONFIG)
    metrics = result.metrics()
    assert metrics["expert_progress_m"] > 10.0
    assert metrics["progress_ratio"] == pytest.approx(1.0, abs=0.05)
    assert metrics["offroad_rate"] == 0.0 and not result.collided
    assert result.states.shape == (61, 5) and result.times[-1] == pytest.approx(6.0)
    # the driven path stays close to the log
    assert np.linalg.norm(result.states[:, :2] - world.ego_log.positions[world.start_index:], axis=1).max() < 1.5


def test_stopping_and_turning_off_the_road_are_measured(world) -> None:
    def stay(scene: PlanningScene) -> np.ndarray:
        here = scene.ego.states[scene.current_index, :3]
        return np.repeat(here[None], 30, 0)

    stopped = run_closed_loop(world, stay, CONFIG).metrics()
    speed = float(np.linalg.norm(world.ego_log.velocities[world.start_index]))
    braking = speed**2 / (2 * CONFIG.limits.max_decel)  # the distance the ego needs to stop
    assert speed > 3.0 and -0.5 < stopped["progress_m"] < braking + 1.5 and stopped["offroad_rate"] == 0.0

    def swerve(scene: PlanningScene) -> np.ndarray:  # hard turn toward the right, 8 m/s
        x, y, yaw = scene.ego.states[scene.current_index, :3]
        headings = yaw - 0.5 * np.arange(1, 31) * 0.1
        steps = 0.8 * np.column_stack([np.cos(headings), np.sin(headings)])
        return np.column_stack([np.array([x, y]) + np.cumsum(steps, 0), headings])

    off = run_closed_loop(world, swerve, CONFIG).metrics()
    assert off["offroad_rate"] > 0.2 and off["route_deviation_m"] > CONFIG.route_tolerance
    assert off["progress_m"] < 0.5 * off["expert_progress_m"]  # leaving the route earns no progress


def test_collisions_with_an_obstacle_on_the_route(world) -> None:
    k = world.start_index + 15
    ahead = world.ego_log.positions[k]
    blocker = LoggedAgent("blocker", "vehicle.car", (4.5, 2.0, 1.6), np.repeat(ahead[None], len(world.times), 0),
                          np.full(len(world.times), world.ego_log.yaws[k]), np.zeros((len(world.times), 2)))
    blocked = dataclasses.replace(world, agents=[*world.agents, blocker])
    result = run_closed_loop(blocked, LogReplayPlanner(blocked), CONFIG)
    assert "blocker" in result.collided_agents and result.collision_steps > 0
    assert 0.0 < result.first_collision_s < 1.6
    summary = summarize([result, run_closed_loop(world, LogReplayPlanner(world), CONFIG)])
    assert summary["collision_rate"] == 0.5 and summary["num_runs"] == 2.0


def test_planner_scene_hides_the_future_and_uses_the_driven_history(world) -> None:
    index = world.start_index + 5
    driven = world.ego_log.states()[: index + 1].copy()
    driven[-1, :2] += 3.0
    scene = scene_at(world, index, 20, 0, driven)
    assert scene.current_index == len(scene.timestamps) - 1 == 20
    assert np.allclose(scene.ego.states[-1, :2], driven[-1, :2])
    assert all(np.linalg.norm(a.states[-1, :2] - driven[-1, :2]) <= 80.0 for a in scene.agents)


def test_constant_velocity_run_and_picture(world, tmp_path: Path) -> None:
    results = {"expert": run_closed_loop(world, LogReplayPlanner(world), CONFIG),
               "constant velocity": run_closed_loop(world, ConstantVelocityPlanner(), CONFIG)}
    metrics = results["constant velocity"].metrics()
    assert all(np.isfinite(v) for v in metrics.values())
    path = draw_closed_loop(tmp_path / "closed_loop.png", world, results)
    assert path.stat().st_size > 20_000

