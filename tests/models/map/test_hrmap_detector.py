"""HRMapNetDetector (config-built): loss, predict -> pending map -> finish_pass -> the next pass
sees the prior; the head's default reference points; the pass hook's save/load; the config."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from perception.config import load_config
from perception.models.map.hrmap_detector import HRMapNetDetector, HRMapPassHook, default_reference_points
from perception.models.map.hrmap_transforms import HRMapLocation
from perception.registry import MODELS
from perception.structures import Frame
from perception.structures.det_sample import DetSample
from perception.transforms import PackDetInputs
from perception.structures.geometry import make_transform, yaw_matrix
from perception.structures.map_instances import MapInstances

CONFIG = Path(__file__).resolve().parents[3] / "configs" / "hrmapnet" / "hrmapnet_maptr_tiny_synthetic.py"
CLASSES = ("divider", "ped_crossing", "boundary")


def tiny_model(head_type: str = "MapTRHead", extra_seeds: int | None = None) -> HRMapNetDetector:
    """The config's model with a one-layer head; ``extra_seeds=0`` switches to seeds that replace
    the first learned queries, a number sets the config's extra seed slots."""
    cfg = load_config(CONFIG)
    cfg.model.map_head.update(type=head_type, num_layers=1)
    if extra_seeds == 0:
        cfg.model.map_head.num_seed_queries = 0
        cfg.model.bev_prior.query_init.slots = "replace"
    elif extra_seeds is not None:
        cfg.model.map_head.num_seed_queries = extra_seeds
        cfg.model.bev_prior.query_init.update(slots="extra", max_queries=extra_seeds)
    torch.manual_seed(0)
    return MODELS.build(cfg.model)


def batch(model: HRMapNetDetector, training: bool, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    points = np.concatenate([rng.uniform([-15, -30, -2], [15, 30, 1], (3000, 3)),
                             rng.uniform(0, 1, (3000, 2))], axis=1).astype(np.float32)
    lines = np.stack([np.stack([np.linspace(-12, 12, 20), np.full(20, y)], axis=1) for y in (-8.0, 6.0)])
    sample = DetSample(token="tok", class_names=("car",), lidar2global=make_transform(yaw_matrix(0.4), [50, 20, 0]),
                       gt_boxes=np.zeros((0, 9), np.float32), gt_labels=np.zeros(0, np.int64),
                       metainfo={"location": "town"},
                       gt_map=MapInstances(lines.astype(np.float32), np.array([0, 2]), CLASSES, np.array([False, False])))
    return model.data_preprocessor({"inputs": {"points": [torch.from_numpy(points)]}, "data_samples": [sample]},
                                   training)


@pytest.mark.parametrize("head_type", ["MapTRHead", "MapQRHead"])
def test_default_reference_points_are_the_heads_own(head_type: str) -> None:
    head = tiny_model(head_type).map_head.eval()
    bev = torch.randn(1, head.in_channels, 16, 8)
    refs = default_reference_points(head)
    assert refs.shape == (head.num_queries, head.num_points, 2)
    with torch.no_grad():
        plain = head(bev)
        overridden = head(bev, ref_init=refs[None])
    torch.testing.assert_close(overridden["pts"][-1], plain["pts"][-1])


@pytest.mark.slow
def test_loss_predict_and_passes(tmp_path: Path) -> None:
    model = tiny_model(extra_seeds=0)  # replacing seeds: query_init / ref_init reach the head
    model.train()
    losses = model(**batch(model, True), mode="loss")
    total = sum(v for v in losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert model.bev_prior.aggregation.fuse[-1].weight.grad.abs().sum() > 0
    assert model.bev_prior.query_init.mlp[0].weight.grad is not None

    model.eval()
    seen: list[dict] = []
    head_predict = model.map_head.predict

    def spy(**kwargs):
        seen.append({k: kwargs.get(k) for k in ("query_init", "ref_init")})
        return head_predict(**kwargs)

    model.map_head.predict = spy
    data = batch(model, False)
    with torch.no_grad():
        out = model(**data, mode="predict")
    assert out[0].pred_map is not None and model.global_map.has_pending()
    assert seen[-1]["query_init"].abs().sum() == 0  # first pass: empty map, no seeded query
    model.global_map.locations.clear()            # replace the untrained predictions by the truth
    model.bev_prior.update_with_ground_truth(data["data_samples"])
    hook = HRMapPassHook(save_name="map.npz")
    hook.after_test_epoch(SimpleNamespace(model=model, work_dir=str(tmp_path)))
    assert not model.global_map.has_pending() and (tmp_path / "map.npz").is_file()
    with torch.no_grad():
        model(**data, mode="predict")
    assert seen[-1]["query_init"].abs().sum() > 0  # second pass: queries seeded from the map
    refs = seen[-1]["ref_init"][0]
    defaults = default_reference_points(model.map_head)
    assert not torch.allclose(refs[0], defaults[0]) and torch.allclose(refs[-1], defaults[-1])

    for event in ("before_test_epoch", "before_train"):  # train_prior="map" fine-tuning loads it before training
        other = tiny_model(extra_seeds=0)
        getattr(HRMapPassHook(load_from=str(tmp_path / "map.npz")), event)(SimpleNamespace(model=other))
        np.testing.assert_array_equal(other.global_map.locations["town"].base,
                                      model.global_map.locations["town"].base)


@pytest.mark.parametrize("head_type", ["MapTRHead", "MapQRHead"])
def test_extra_seed_queries_from_the_map_reach_the_head(head_type: str) -> None:
    """``query_init.slots="extra"``: the map's seeds arrive as the head's seed queries (learned
    queries untouched), train end to end, and a GT-drawn map seeds some of them at test time."""
    model = tiny_model(head_type, extra_seeds=8)
    model.train()
    sum(model(**batch(model, True), mode="loss").values()).backward()
    assert model.map_head.seed_embed.weight.grad is not None
    model.eval()
    seen: list = []
    head_predict = model.map_head.predict

    def spy(**kwargs):
        seen.append(kwargs)
        return head_predict(**kwargs)

    model.map_head.predict = spy
    data = batch(model, False)
    with torch.no_grad():
        model(**data, mode="predict")
        assert "query_init" not in seen[-1] and not seen[-1]["seeds"].mask.any()  # empty map
        model.global_map.locations.clear()
        model.bev_prior.update_with_ground_truth(data["data_samples"])
        model.finish_pass()
        out = model(**data, mode="predict")
    assert seen[-1]["seeds"].mask.sum() >= 1 and out[0].pred_map is not None


def test_self_prior_feeds_the_models_own_prediction_back_in_training() -> None:
    """``self_prior=1``: every training sample's prior is the head's own prediction without a
    prior, made without gradients; ``self_prior=0`` asks for none."""
    model = tiny_model()
    model.train()
    model.bev_prior.self_prior = 1.0
    model.bev_prior.update_score_threshold = 0.0  # an untrained head: keep every prediction
    seen: list = []
    crops = model.bev_prior.crops

    def spy(samples, device, own=None):
        seen.append(own)
        return crops(samples, device, own)

    model.bev_prior.crops = spy
    losses = model(**batch(model, True), mode="loss")
    sum(losses.values()).backward()
    blank, used = seen  # the blank pass (prior off), then the prior of the training pass
    assert blank is None and len(used) == 1 and len(used[0]) > 0
    assert model.bev_prior.enabled and model.bev_prior.query_init.mlp[0].weight.grad is not None
    model.bev_prior.self_prior = 0.0
    seen.clear()
    model(**batch(model, True), mode="loss")
    assert seen == [None]


def test_config_wires_the_location_into_the_samples() -> None:
    cfg = load_config(CONFIG)
    pipeline = cfg.test_dataloader.dataset.pipeline
    names = [step["type"] for step in pipeline]
    assert "HRMapLocation" not in names and names[-1] == "PackDetInputs"  # it packs the location itself
    frame = Frame(token="t", timestamp=0.0, dataset="d", points=np.zeros((1, 4), np.float32),
                  point_features=("x", "y", "z", "intensity"), lidar2ego=np.eye(4), ego2global=np.eye(4),
                  class_names=("car",), location="pittsburgh")
    packed = PackDetInputs()({"frame": frame})
    assert packed["data_samples"].metainfo["location"] == "pittsburgh"
    assert cfg.test_dataloader.sampler.round_up is False
    assert any(h["type"] == "HRMapPassHook" for h in cfg.custom_hooks)
    seeding = cfg.model.bev_prior.query_init  # seeds in slots of their own, one per seed
    assert seeding.slots == "extra" and cfg.model.map_head.num_seed_queries == seeding.max_queries
    results = HRMapLocation()({"frame": SimpleNamespace(location="boston-seaport", token="t")})
    assert results["location"] == "boston-seaport"
    with pytest.raises(KeyError, match="no location"):
        HRMapLocation()({"frame": SimpleNamespace(location="", token="t")})
    with pytest.raises(ValueError, match="bev_prior"):
        HRMapNetDetector(**{k: v for k, v in cfg.model.items() if k not in ("type", "bev_prior")})
