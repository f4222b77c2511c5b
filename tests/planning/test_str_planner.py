"""STR behind the planning contract (plan / predict), and frame equivariance of its outputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from perception.planning.motion_features import FeatureConfig
from perception.planning.motion_toy import make_toy_scene
from perception.planning.str_planner import STRPlanner
from perception.registry import MODELS

CFG = FeatureConfig(history_frames=4, history_stride=2, future_steps=20, max_agents=6, max_polylines=10,
                    points_per_polyline=5)


@pytest.fixture(scope="module")
def planner() -> STRPlanner:
    torch.manual_seed(0)
    model = MODELS.build(dict(type="STR", backbone=dict(preset="tiny", max_tokens=64), future_steps=20,
                              history_frames=4, keypoint_times=(2.0, 1.0, 0.5), num_modes=4,
                              context_encoder=dict(type="STRVectorEncoder", hidden_dim=16)))
    return STRPlanner(model, CFG)


def test_plan_and_predict_follow_the_contract(planner: STRPlanner) -> None:
    scene = make_toy_scene(seed=0)
    plan = planner.plan(scene)
    assert plan.shape == (20, 3) and np.isfinite(plan).all()
    trajectories, scores = planner.predict(scene, ["agent_0", "walker"])
    assert trajectories.shape == (2, 4, 20, 2) and scores.shape == (2, 4)
    np.testing.assert_allclose(scores.sum(1), 1.0, rtol=1e-5)
    default, _ = planner.predict(scene)
    assert default.shape[0] == len(scene.focal_track_ids)
    empty, empty_scores = planner.predict(scene, [])
    assert empty.shape == (0, 4, 20, 2) and empty_scores.shape == (0, 4)


def test_outputs_move_with_the_world(planner: STRPlanner) -> None:
    pose = np.array([250.0, -80.0, 1.3])
    a, b = make_toy_scene(seed=5), make_toy_scene(seed=5, pose=tuple(pose))
    c, s = np.cos(pose[2]), np.sin(pose[2])
    rot = np.array([[c, -s], [s, c]])
    plan_a, plan_b = planner.plan(a), planner.plan(b)
    np.testing.assert_allclose(plan_a[:, :2] @ rot.T + pose[:2], plan_b[:, :2], atol=2e-3)
    np.testing.assert_allclose(np.cos(plan_a[:, 2] + pose[2] - plan_b[:, 2]), 1.0, atol=1e-4)
    pred_a, _ = planner.predict(a, ["agent_1"])
    pred_b, _ = planner.predict(b, ["agent_1"])
    np.testing.assert_allclose(pred_a @ rot.T + pose[:2], pred_b, atol=2e-3)


def test_feature_settings_must_match_the_model(planner: STRPlanner) -> None:
    with pytest.raises(ValueError, match="future steps"):
        STRPlanner(planner.model, FeatureConfig(history_frames=4, future_steps=30))
