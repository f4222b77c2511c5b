"""MapDetector and the map configs: every configs/maptr and configs/mapqr file builds a
MapDetector whose voxelizer, sparse encoder, BEV range and head agree; the tiny one trains a
step and predicts metric map instances from a random cloud; the ``bev_prior`` hook feeds the
head's optional inputs and receives the predictions."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.registry import DefaultScope
from torch import nn

from perception.config import load_config
from perception.models.map import MapDetector, MapQRHead, MapTRHead
from perception.registry import MODELS

import map_head_testing
from map_head_testing import map_sample

one_thread = map_head_testing.one_thread

CONFIG_ROOT = Path(__file__).resolve().parents[3] / "configs"
# the LiDAR MapDetector configs (the camera / fused ones are BEVFusion models: test_map_bevfusion_configs.py)
CONFIGS = sorted(p for p in [*CONFIG_ROOT.glob("maptr/*.py"), *CONFIG_ROOT.glob("mapqr/*.py")]
                 if "camera" not in p.name and "fusion" not in p.name)
TINY = {"MapTRHead": CONFIG_ROOT / "maptr" / "maptr_tiny_synthetic.py",
        "MapQRHead": CONFIG_ROOT / "mapqr" / "mapqr_tiny_synthetic.py"}


def build(path: Path) -> MapDetector:
    with DefaultScope.overwrite_default_scope("perception"):
        return MODELS.build(load_config(str(path)).model)


def random_batch(batch: int = 2, extent: tuple[float, float] = (30.0, 60.0)) -> tuple[dict, list]:
    gen = torch.Generator().manual_seed(0)
    clouds = []
    for _ in range(batch):
        xyz = (torch.rand(3000, 3, generator=gen) - 0.5) * torch.tensor([*extent, 4.0])
        clouds.append(torch.cat([xyz, torch.rand(3000, 2, generator=gen)], dim=1))
    return {"inputs": {"points": clouds}, "data_samples": [map_sample(f"s{i}", 20) for i in range(batch)]}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_configs_build_with_consistent_geometry(path: Path) -> None:
    cfg = load_config(str(path))
    layer, encoder, head = cfg.model.data_preprocessor.voxel_layer, cfg.model.pts_middle_encoder, cfg.model.map_head
    pcr, size = np.asarray(layer.point_cloud_range), np.asarray(layer.voxel_size)
    grid = np.round((pcr[3:] - pcr[:3]) / size).astype(int)
    assert list(encoder.sparse_shape) == [grid[2] + 1, grid[1], grid[0]]
    assert list(head.bev_range) == list(layer.point_cloud_range)
    x0, y0, x1, y1 = head.map_range
    assert pcr[0] <= x0 and pcr[1] <= y0 and x1 <= pcr[3] and y1 <= pcr[4]
    gt_steps = [s for s in cfg.train_dataloader.dataset.pipeline if s["type"] == "LoadVectorMapGT"]
    assert gt_steps and list(gt_steps[0]["pc_range"]) == list(head.map_range)
    assert gt_steps[0]["num_points"] == head.num_points
    assert cfg.train_dataloader.dataset.with_map
    assert cfg.val_evaluator.type == "VectorMapMetric"
    if "tiny" in path.name:  # the big ones are built in seconds too, but skip the weights here
        model = build(path)
        assert isinstance(model, MapDetector)
        assert isinstance(model.map_head, MapQRHead if "mapqr" in path.name else MapTRHead)


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(TINY))
def test_tiny_detector_trains_a_step_and_predicts(kind: str) -> None:
    torch.manual_seed(0)
    model = build(TINY[kind])
    x0, y0, x1, y1 = model.map_head.map_range
    extent = (x1 - x0, y1 - y0)
    data = model.data_preprocessor(random_batch(extent=extent), True)
    losses = model(**data, mode="loss")
    total = sum(v for k, v in losses.items() if "loss" in k)
    assert torch.isfinite(total)
    total.backward()
    head_grads = [p.grad for p in model.map_head.parameters() if p.grad is not None]
    encoder_grads = [p.grad for p in model.pts_middle_encoder.parameters() if p.grad is not None]
    assert head_grads and encoder_grads and any(g.abs().sum() > 0 for g in encoder_grads)
    model.eval()
    with torch.no_grad():
        out = model(**model.data_preprocessor(random_batch(extent=extent), False), mode="predict")
    pred = out[1].pred_map
    assert len(pred) == 50 and pred.points.shape == (50, 20, 2) and pred.scores is not None
    assert x0 <= pred.points[..., 0].min() and pred.points[..., 0].max() <= x1
    assert y0 <= pred.points[..., 1].min() and pred.points[..., 1].max() <= y1


class RecordingPrior(nn.Module):
    """A stand-in for HRMapNet: fixed reference points and query offsets, records updates."""

    def __init__(self, queries: int, points: int, dims: int) -> None:
        super().__init__()
        self.shape = (queries, points, dims)
        self.updated: list = []

    def forward(self, bev: torch.Tensor, samples: list) -> dict:
        queries, points, dims = self.shape
        return {"query_init": torch.zeros(bev.shape[0], queries, dims),
                "ref_init": torch.full((bev.shape[0], queries, points, 2), 0.25)}

    def update(self, samples: list) -> None:
        self.updated.extend(samples)


def test_bev_prior_hook_feeds_the_head_and_gets_predictions() -> None:
    with DefaultScope.overwrite_default_scope("perception"):
        cfg = load_config(str(TINY["MapQRHead"])).model
        cfg.map_head.update(num_layers=1, num_queries=5)
        prior = RecordingPrior(5, 20, cfg.map_head.embed_dims)
        model = MODELS.build({**cfg, "bev_prior": prior}).eval()
    batch = random_batch(1)
    with torch.no_grad():
        raw = model(**model.data_preprocessor(batch, False), mode="tensor")
        torch.testing.assert_close(raw["pts"][0], torch.full((1, 5, 20, 2), 0.25), atol=1e-4, rtol=0)
        out = model(**model.data_preprocessor(batch, False), mode="predict")
    assert prior.updated and prior.updated[0].pred_map is out[0].pred_map
