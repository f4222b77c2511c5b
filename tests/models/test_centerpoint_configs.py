"""Every configs/centerpoint/*.py builds its model with a consistent geometry (voxelizer, sparse
shape, head grid and box coder agree), and the full configs run end to end on real data with
random weights (perception.apis.init_model + inference_detector), giving well-formed boxes:
the nuScenes one on the real keyframe, the AV2 one on the real AV2 log's last sweep + 1 earlier
sweep (~5 s and ~10 s with one thread here)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from perception.apis import inference_detector, init_model
from perception.benchmarks.detector_inputs import av2_sweep, nuscenes_keyframe, random_frame
from perception.config import load_config
from perception.models.detectors import CenterPoint
from perception.registry import MODELS
from perception.structures import Boxes3D, Frame

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "centerpoint"
CONFIGS = sorted(CONFIG_DIR.glob("*.py"))
NUSCENES = CONFIG_DIR / "centerpoint_voxel0075_second_secfpn_10sweeps_nuscenes.py"
AV2 = CONFIG_DIR / "centerpoint_voxel01_second_secfpn_av2.py"
TINY = CONFIG_DIR / "centerpoint_tiny_synthetic.py"


@pytest.fixture(autouse=True)
def one_thread():
    """On the busy shared 2-core box, 2 OpenMP threads run these models up to 4x slower than
    1: each parallel region waits for whichever thread another job has descheduled."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def task_classes(cfg: Config) -> list[str]:
    return [name for task in cfg.model.pts_bbox_head.tasks for name in task["class_names"]]


def grid_of(cfg: Config) -> np.ndarray:
    """(x, y, z) cells of the voxelizer's range."""
    layer = cfg.model.data_preprocessor.voxel_layer
    pcr, size = np.asarray(layer.point_cloud_range), np.asarray(layer.voxel_size)
    return np.round((pcr[3:] - pcr[:3]) / size).astype(int)


def check_geometry(cfg: Config) -> None:
    """The voxelizer, sparse encoder, head targets / decoding and box coder share one grid."""
    model, layer = cfg.model, cfg.model.data_preprocessor.voxel_layer
    pcr, size = list(layer.point_cloud_range), list(layer.voxel_size)
    grid = grid_of(cfg)
    assert list(model.pts_middle_encoder.sparse_shape) == [grid[2] + 1, grid[1], grid[0]]
    train, test, coder = model.train_cfg.pts, model.test_cfg.pts, model.pts_bbox_head.bbox_coder
    assert list(train.grid_size) == grid.tolist()
    assert list(train.voxel_size) == size and list(train.point_cloud_range) == pcr
    for part in (test, coder):
        assert list(part["voxel_size"]) == size[:2] and list(part["pc_range"]) == pcr[:2]
    osf = train.out_size_factor
    assert test.out_size_factor == coder.out_size_factor == osf and (grid[:2] % osf == 0).all()
    assert model.pts_bbox_head.in_channels == sum(model.pts_neck.out_channels)
    features = cfg.test_dataloader.dataset.pipeline[-2]["features"]
    encoder = model.pts_middle_encoder
    assert model.pts_voxel_encoder.num_features == encoder.in_channels == len(features)
    assert cfg.test_dataloader.dataset.pipeline[-1]["type"] == "PackDetInputs"
    if cfg.get("class_names") is not None:  # the tasks cover the data set's classes exactly once
        assert sorted(task_classes(cfg)) == sorted(cfg.class_names)
    assert len(set(task_classes(cfg))) == len(task_classes(cfg))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_builds_with_consistent_geometry(path: Path) -> None:
    cfg = load_config(path)
    check_geometry(cfg)
    with DefaultScope.overwrite_default_scope("perception"):
        model = MODELS.build(cfg.model)
    assert isinstance(model, CenterPoint)
    assert model.pts_middle_encoder.sparseconv_backend == "native"
    head = model.pts_bbox_head
    tasks = cfg.model.pts_bbox_head.tasks
    assert [list(names) for names in head.class_names] == [t["class_names"] for t in tasks]
    assert sum(p.numel() for p in model.parameters()) > 1e5


def heatmap_shapes(model: torch.nn.Module) -> tuple[list[tuple[int, ...]], Any]:
    """Records the heatmap shape of every task while the returned hook handle is alive."""
    shapes: list[tuple[int, ...]] = []

    def hook(_module: Any, _inputs: Any, outputs: Any) -> None:
        shapes[:] = [tuple(task["heatmap"].shape) for task in outputs]
    return shapes, model.pts_bbox_head.register_forward_hook(hook)


def check_prediction(model: torch.nn.Module, frame: Frame, pred: Boxes3D,
                     shapes: list[tuple[int, ...]]) -> None:
    """Well-formed boxes of a random-weight CenterPoint (the issue's smoke test)."""
    cfg, test = model.cfg, model.cfg.model.test_cfg.pts
    tasks = cfg.model.pts_bbox_head.tasks
    grid = grid_of(cfg)
    osf = test.out_size_factor
    assert shapes == [(1, t["num_class"], grid[1] // osf, grid[0] // osf) for t in tasks]
    n = len(pred)
    assert 0 < n <= test.max_per_img and n <= len(tasks) * test.post_max_size
    assert pred.data.shape == (n, 9) and np.isfinite(pred.data).all()
    scores = np.asarray(pred.scores)
    assert scores.shape == (n,) and (scores >= test.score_threshold).all() and (scores <= 1).all()
    labels = np.asarray(pred.labels)
    assert labels.min() >= 0 and labels.max() < len(frame.class_names)
    assert {frame.class_names[i] for i in labels} <= set(task_classes(cfg))
    limit = np.asarray(test.post_center_limit_range)
    assert (pred.data[:, :3] >= limit[:3]).all() and (pred.data[:, :3] <= limit[3:]).all()
    assert (pred.data[:, 3:6] > 0).all()  # sizes are exp() of the regression
    assert (pred.data[:, 6] >= -np.pi).all() and (pred.data[:, 6] < np.pi).all()


def run_inference(config: Path, frame: Frame) -> None:
    torch.manual_seed(0)
    model = init_model(config)
    assert not model.training
    shapes, handle = heatmap_shapes(model)
    try:
        pred = inference_detector(model, frame)
    finally:
        handle.remove()
    check_prediction(model, frame, pred, shapes)


def test_tiny_config_predicts_on_random_points() -> None:
    cfg = load_config(TINY)
    frame = random_frame(2000, cfg.point_cloud_range).frame
    run_inference(TINY, dataclasses.replace(frame, class_names=tuple(cfg.class_names)))


@pytest.mark.slow
@pytest.mark.real_data
def test_full_nuscenes_config_on_the_real_keyframe(nuscenes_keyframe_dir: Path) -> None:
    frame = nuscenes_keyframe(nuscenes_keyframe_dir).frame
    assert len(frame.points) == 34688 and not frame.feature("time_lag").any()  # no sweeps
    run_inference(NUSCENES, frame)


@pytest.mark.slow
@pytest.mark.real_data
def test_av2_config_on_the_real_log(av2_sensor_log_dir: Path) -> None:
    frame = av2_sweep(av2_sensor_log_dir).frame
    lag = frame.feature("time_lag")
    assert frame.dataset == "av2" and lag.min() == 0 and 0.05 < lag.max() < 0.15  # + 1 sweep
    assert len(frame.points) > 190_000
    run_inference(AV2, frame)
