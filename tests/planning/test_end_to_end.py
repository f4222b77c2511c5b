"""End-to-end: synthetic frames -> detector (+ map head) -> tracker -> planner -> BEV PNG."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from perception.planning.baselines import ConstantVelocityPlanner
from perception.planning.end_to_end import (EndToEndPipeline, GroundTruthDetector, default_planner,
                                            detector_from_model, draw_end_to_end, map_instances_to_world,
                                            synthetic_frames)
from perception.structures import Boxes3D
from perception.structures.map_instances import MapInstances

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "centerpoint" / "centerpoint_tiny_synthetic.py"


@pytest.fixture(scope="module")
def frames():
    return synthetic_frames("e2e-test", 0, duration_s=1.0, num_beams=16, azimuth_steps=512)


def test_ground_truth_chain_tracks_agents_and_plans_ahead_of_the_ego(frames, tmp_path: Path) -> None:
    assert len(frames) == 10 and np.allclose(np.diff([f.timestamp for f in frames]), 0.1)
    assert frames[0].point_features[-1] == "time_lag" and len(frames[0].boxes) > 10
    pipeline = EndToEndPipeline(GroundTruthDetector(position_noise=0.1, miss_rate=0.05, seed=0),
                                ConstantVelocityPlanner(num_future=30), history_steps=6)
    results = pipeline.run(frames)
    last = results[-1]
    assert last.plan.shape == (30, 3) and np.isfinite(last.plan).all()
    assert len(last.scene.timestamps) == 7 and last.scene.current_index == 6
    # most ground-truth objects within 50 m are tracked, each by one confirmed track
    lidar_xy = last.frame.boxes.centers[:, :2]
    near = np.linalg.norm(lidar_xy, axis=1) < 50.0
    assert len(last.scene.agents) >= 0.8 * near.sum()
    # the plan starts where the ego is and continues the ego's motion
    ego = last.scene.ego.states[-1]
    assert np.linalg.norm(last.plan[0, :2] - ego[:2]) < np.linalg.norm(ego[3:5]) * 0.1 + 0.5
    heading = np.array([np.cos(ego[2]), np.sin(ego[2])])
    assert (last.plan[-1, :2] - ego[:2]) @ heading > 0.0 or np.linalg.norm(ego[3:5]) < 0.5
    path = draw_end_to_end(tmp_path / "e2e.png", last)
    assert path.stat().st_size > 30_000


@pytest.mark.slow
def test_random_weight_centerpoint_and_a_map_head_run_through(frames) -> None:
    torch.manual_seed(0)
    from perception.apis import init_model

    model = init_model(TINY)
    calls = []

    def map_head(frame):
        calls.append(frame.token)
        points = np.array([[[0.0, 0.0], [10.0, 0.0]], [[0.0, 5.0], [0.0, 15.0]]], np.float32)
        return MapInstances(points, np.array([0, 2]), ("divider", "ped_crossing", "boundary"),
                            np.array([False, False]), np.array([0.9, 0.8], np.float32))

    pipeline = EndToEndPipeline(detector_from_model(model), map_head=map_head)
    results = pipeline.run(frames[:2])
    assert calls == [frames[0].token, frames[1].token]
    last = results[-1]
    assert isinstance(last.detections, Boxes3D) and last.plan.shape == (30, 3)
    assert [e.category for e in last.scene.map_elements] == ["divider", "boundary"]
    world = map_instances_to_world(map_head(frames[1]), frames[1].lidar2global)
    assert np.allclose(world[0].points[0], frames[1].lidar2global[:2, 3])


def test_planner_choice_and_errors() -> None:
    assert isinstance(default_planner(), ConstantVelocityPlanner)

    class Model:
        def plan(self, scene):
            return np.zeros((5, 3))

    model = Model()
    assert default_planner(model) is model
    with pytest.raises(TypeError, match="plan"):
        default_planner(object())


def test_detection_names_agree_with_the_nuscenes_devkit() -> None:
    from nuscenes.eval.detection.utils import category_to_detection_name

    from perception.planning.end_to_end import DETECTION_NAMES

    for category, name in DETECTION_NAMES.items():
        assert category_to_detection_name(category) == name
    assert category_to_detection_name("static.building") is None and "static.building" not in DETECTION_NAMES


def test_str_plans_from_tracks_and_a_map_head(frames) -> None:
    """Detections -> tracker -> STR (random weights): the scene STR encodes holds the tracks,
    the kept lane centrelines and the map head's elements; the plan spans STR's 6 s horizon."""
    from perception.models.planning import STR
    from perception.planning.motion_features import encode_target
    from perception.planning.str_planner import STRPlanner

    torch.manual_seed(0)
    model = STR(backbone=dict(preset="tiny", max_tokens=256),
                context_encoder=dict(type="STRVectorEncoder", hidden_dim=32), future_steps=60, history_frames=10, keypoint_times=(6.0, 4.0, 2.0, 1.0, 0.5))
    planner = STRPlanner(model, dict(history_frames=10, history_stride=2, future_steps=60, max_agents=16))

    def map_head(frame):
        points = np.array([[[0.0, 0.0], [10.0, 0.0]], [[0.0, 5.0], [0.0, 15.0]]], np.float32)
        return MapInstances(points, np.array([0, 2]), ("divider", "ped_crossing", "boundary"),
                            np.array([False, False]), np.array([0.9, 0.8], np.float32))

    pipeline = EndToEndPipeline(GroundTruthDetector(position_noise=0.1, seed=0), planner, map_head=map_head,
                                history_steps=20, base_map_categories=("lane_centerline",))
    results = pipeline.run(frames[:6])
    last = results[-1]
    assert last.plan.shape == (60, 3) and np.isfinite(last.plan).all()
    categories = {e.category for e in last.scene.map_elements}
    assert categories == {"lane_centerline", "divider", "boundary"}
    lanes = [e for e in frames[5].map_elements if e.category == "lane_centerline"]
    assert len(last.scene.map_elements) == len(lanes) + 2
    features = encode_target(last.scene, last.scene.ego.track_id, planner.config)
    assert features["agent_mask"].sum() == min(16, len(last.scene.agents)) > 5
    assert features["polyline_mask"].any() and features["target_states"][-1, 6] == 1.0
    assert features["target_states"][:, 6].sum() == 3  # 0.5 s of tracked history: 0, 2 and 4 steps back
