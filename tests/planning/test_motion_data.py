"""AV2 motion-forecasting scenarios -> PlanningScene and the registered torch dataset (real sample)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from perception.planning.motion_data import MotionDataError, list_scenarios, load_av2_scenario
from perception.planning.motion_dataset import MotionForecastingDataset, MotionSample, motion_collate
from perception.registry import DATASETS, FUNCTIONS

pytestmark = pytest.mark.real_data
FEATURES = dict(history_frames=10, history_stride=2, future_steps=60, max_agents=16, max_polylines=32)


@pytest.fixture(scope="module")
def scene(av2_motion_scenario_dir: Path):
    return load_av2_scenario(av2_motion_scenario_dir)


def test_real_scenario_as_planning_scene(scene, av2_motion_scenario_dir: Path) -> None:
    from av2.datasets.motion_forecasting.scenario_serialization import load_argoverse_scenario_parquet

    raw = load_argoverse_scenario_parquet(next(av2_motion_scenario_dir.glob("scenario_*.parquet")))
    assert len(scene.timestamps) == 110 and scene.current_index == 49 and abs(scene.dt - 0.1) < 1e-6
    assert scene.ego.track_id == "AV" and scene.ego.valid.all()
    assert scene.focal_track_ids[0] == raw.focal_track_id
    assert len(scene.agents) == len(raw.tracks) - 1
    # states are the parquet's, on the scenario's step grid
    track = next(t for t in raw.tracks if t.track_id == raw.focal_track_id)
    focal = scene.agent(raw.focal_track_id)
    first = track.object_states[0]
    np.testing.assert_allclose(focal.states[first.timestep, :3], [*first.position, first.heading])
    assert focal.valid.sum() == len(track.object_states)
    categories = {e.category for e in scene.map_elements}
    assert {"lane_centerline", "divider", "ped_crossing"} <= categories
    ego_now = scene.ego.states[scene.current_index, :2]
    nearest = min(np.linalg.norm(e.points[:, :2] - ego_now, axis=1).min() for e in scene.map_elements
                  if e.category == "lane_centerline")
    assert nearest < 5.0  # the AV drives on a lane of its own map


@pytest.mark.slow
def test_dataset_items_and_collate(av2_motion_scenario_dir: Path) -> None:
    root = av2_motion_scenario_dir.parent.parent
    assert DATASETS.get("MotionForecastingDataset") is MotionForecastingDataset
    assert FUNCTIONS.get("motion_collate") is motion_collate
    ds = DATASETS.build(dict(type="MotionForecastingDataset", data_root=str(root), split="val",
                             targets=["ego", "scored"], feature_cfg=FEATURES, now_offsets=[0, -20]))
    scene = ds.scenes[0]
    assert len(ds) == 2 * (1 + len(scene.focal_track_ids))
    item = ds[1]
    sample = item["data_samples"]
    assert isinstance(sample, MotionSample) and not sample.is_ego and sample.track_id == scene.focal_track_ids[0]
    # the ground truth goes back to the world frame exactly
    track = scene.agent(sample.track_id)
    np.testing.assert_allclose(sample.gt_future, track.states[50:110, :2], atol=1e-3)
    assert item["inputs"]["polyline_mask"].sum() == 32 and item["inputs"]["agent_mask"].sum() > 5
    batch = motion_collate([ds[i] for i in range(3)])
    assert batch["inputs"]["agents"].shape == (3, 16, 11, 7) and batch["inputs"]["future"].shape == (3, 60, 3)
    assert batch["inputs"]["target_type"].dtype == torch.int64 and len(batch["data_samples"]) == 3
    assert ds[0]["data_samples"].is_ego and ds[0]["inputs"]["is_ego"] == 1.0


def test_errors_name_the_problem(tmp_path: Path, av2_motion_scenario_dir: Path) -> None:
    with pytest.raises(MotionDataError, match="not found"):
        list_scenarios(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MotionDataError, match="no scenario_"):
        load_av2_scenario(tmp_path / "empty")
    with pytest.raises(ValueError, match="targets"):
        MotionForecastingDataset(str(av2_motion_scenario_dir.parent.parent), "val", targets=["everyone"])
    with pytest.raises(ValueError, match="now_offsets"):
        MotionForecastingDataset(str(av2_motion_scenario_dir.parent.parent), "val", now_offsets=[5])
    with pytest.raises(ValueError, match="ego_repeat"):
        MotionForecastingDataset(str(av2_motion_scenario_dir.parent.parent), "val", ego_repeat=0)


def test_ego_repeat_lists_each_planning_target_again(av2_motion_scenario_dir: Path) -> None:
    root = str(av2_motion_scenario_dir.parent.parent)
    once = MotionForecastingDataset(root, "val", targets=["ego", "scored"], now_offsets=[0, -20])
    thrice = MotionForecastingDataset(root, "val", targets=["ego", "scored"], now_offsets=[0, -20], ego_repeat=3)
    ego = [row for row in thrice.index if row[1] == thrice.scenes[0].ego.track_id]
    assert len(thrice) == len(once) + 2 * 2 and len(ego) == 3 * 2
    assert sorted(set(thrice.index)) == sorted(once.index)  # the same targets, the ego ones listed 3 times
