"""Baselines: constant-velocity predictor / planner and the MLP planner (features, training, planning)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from perception.evaluation.planning_metrics import evaluate_open_loop
from perception.planning.baselines import (ConstantVelocityPlanner, ConstantVelocityPredictor, MLPPlanner,
                                           planning_features)
from perception.planning.closed_loop_world import synthetic_world, training_scenes
from perception.planning.scene import PlanningScene
from perception.structures.map_elements import AgentHistory

DT = 0.1


def moving_track(track_id: str, start: tuple[float, float], velocity: tuple[float, float], times: np.ndarray,
                 nan_velocity: bool = False) -> AgentHistory:
    states = np.zeros((len(times), 5))
    states[:, :2] = np.asarray(start) + times[:, None] * np.asarray(velocity)
    states[:, 2] = np.arctan2(velocity[1], velocity[0])
    states[:, 3:5] = np.nan if nan_velocity else velocity
    return AgentHistory(track_id, "vehicle", times, states, np.ones(len(times), bool), (4.5, 2.0, 1.6))


def scene_with(ego_velocity=(4.0, 3.0), agents=None, history=10, future=30) -> PlanningScene:
    times = DT * np.arange(-history, future + 1)
    ego = moving_track("ego", (0.0, 0.0), ego_velocity, times)
    return PlanningScene("s", times, history, ego, agents or [], focal_track_ids=[a.track_id for a in agents or []])


def test_constant_velocity_predictor_extrapolates_and_falls_back_to_displacements() -> None:
    times = DT * np.arange(-10, 31)
    agents = [moving_track("a", (5.0, 0.0), (2.0, -1.0), times),
              moving_track("b", (0.0, 9.0), (0.0, 3.0), times, nan_velocity=True)]
    scene = scene_with(agents=agents)
    trajectories, scores = ConstantVelocityPredictor(num_future=30).predict(scene)
    assert trajectories.shape == (2, 1, 30, 2) and scores.shape == (2, 1)
    truth = np.stack([a.states[11:, :2] for a in agents])
    assert np.allclose(trajectories[:, 0], truth, atol=1e-9)
    with pytest.raises(KeyError, match="nope"):
        ConstantVelocityPredictor().predict(scene, ["nope"])


def test_constant_velocity_planner_is_exact_on_straight_motion() -> None:
    scene = scene_with()
    plan = ConstantVelocityPlanner(num_future=30).plan(scene)
    assert plan.shape == (30, 3) and np.allclose(plan[:, 2], np.arctan2(3.0, 4.0))
    metrics = evaluate_open_loop(ConstantVelocityPlanner(), [scene], dt=DT)
    assert metrics["l2_3s"] == pytest.approx(0.0, abs=1e-9)
    stopped = ConstantVelocityPlanner().plan(scene_with(ego_velocity=(0.0, 0.0)))
    assert np.allclose(stopped[:, :2], 0.0) and np.allclose(stopped[:, 2], 0.0)


def rotate_scene(scene: PlanningScene, angle: float, shift: np.ndarray) -> PlanningScene:
    """The same scene rotated by ``angle`` about the origin and shifted."""
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])

    def moved(track: AgentHistory) -> AgentHistory:
        states = track.states.copy()
        states[:, :2] = states[:, :2] @ rot.T + shift
        states[:, 3:5] = states[:, 3:5] @ rot.T
        states[:, 2] += angle
        return dataclasses.replace(track, states=states)

    return dataclasses.replace(scene, ego=moved(scene.ego), agents=[moved(a) for a in scene.agents])


def test_mlp_features_and_plans_are_pose_equivariant() -> None:
    times = DT * np.arange(-10, 31)
    scene = scene_with(agents=[moving_track("a", (8.0, 2.0), (1.0, 0.0), times)])
    torch.manual_seed(0)
    planner = MLPPlanner(history_steps=10, num_agents=4, num_future=30)
    features = planning_features(scene, 10, 4)
    assert features.shape == (10 * 7 + 4 * 9,) and features.dtype == np.float32
    turned = rotate_scene(scene, 1.1, np.array([100.0, -40.0]))
    assert np.allclose(planning_features(turned, 10, 4), features, atol=1e-5)
    plan, plan_turned = planner.plan(scene), planner.plan(turned)
    assert plan.shape == (30, 3) and np.isfinite(plan).all()
    rot = np.array([[np.cos(1.1), -np.sin(1.1)], [np.sin(1.1), np.cos(1.1)]])
    assert np.allclose(plan[:, :2] @ rot.T + [100.0, -40.0], plan_turned[:, :2], atol=1e-3)


@pytest.mark.slow
def test_mlp_planner_learns_to_drive_in_the_synthetic_world() -> None:
    from perception.datasets.synthetic.world import build_town

    town = build_town("synth-town")
    train = [s for k in range(2) for s in training_scenes(synthetic_world(f"mlp-{k}", k, duration_s=7.0, town=town),
                                                          20, 30, 2)]
    torch.manual_seed(0)
    planner = MLPPlanner(history_steps=10, num_agents=8, num_future=30, hidden=128)
    before = evaluate_open_loop(planner, train[::5], dt=DT)["l2_3s"]
    losses = planner.fit(train, epochs=25, lr=2e-3, batch_size=32)
    after = evaluate_open_loop(planner, train[::5], dt=DT)["l2_3s"]
    assert losses[-1] < 0.4 * losses[0]
    assert after < 0.3 * before and after < 2.5, (before, after)
    with pytest.raises(ValueError, match="no scene"):
        MLPPlanner().fit([scene_with(future=0)])


@pytest.mark.slow
def test_planner_benchmark_times_every_planner_per_frame() -> None:
    import argparse

    from perception.benchmarks import planner as bench

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--quick", "--sizes", "tiny", "--scenes", "2", "--repeats", "1"])
    figures = bench.run(args)
    rows = figures["planners"]
    assert {"constant_velocity", "mlp", "str_tiny"} <= set(rows)
    assert all(row["per_frame_ms"] > 0 for row in rows.values())
    assert rows["mlp"]["parameters"] > 0
    assert {row["horizon_steps"] for row in rows.values()} == {bench.PLAN_STEPS}  # every planner: the same 6 s
    report = bench.markdown(figures)
    assert "| str_tiny |" in report and "per frame ms" in report
    with pytest.raises(ValueError, match="presets"):
        bench.run(parser.parse_args(["--sizes", "huge"]))
