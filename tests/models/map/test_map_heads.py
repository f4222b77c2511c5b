"""MapTR- and MapQR-style heads: output shapes, the optional HRMapNet inputs, the one-to-many
group's isolation, metric predictions, and both heads fitting a small scene."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from perception.models.map import MapHeadInputError
from perception.models.map.base_head import SeedQueries, chamfer_nms
from perception.structures.map_instances import MapInstances

import map_head_testing
from map_head_testing import MAP_RANGE, map_sample, small_head

one_thread = map_head_testing.one_thread


@pytest.fixture(params=["MapTRHead", "MapQRHead"])
def head_kind(request: pytest.FixtureRequest) -> str:
    return request.param


def test_outputs_per_layer_and_normalized(head_kind: str) -> None:
    head = small_head(head_kind).eval()
    out = head(torch.randn(2, 8, 12, 6))
    assert len(out["cls"]) == len(out["pts"]) == 2
    assert out["cls"][-1].shape == (2, 10, 3) and out["pts"][-1].shape == (2, 10, 8, 2)
    assert ((out["pts"][-1] >= 0) & (out["pts"][-1] <= 1)).all()


def test_optional_inputs_are_used_and_checked(head_kind: str) -> None:
    torch.manual_seed(0)
    head = small_head(head_kind).eval()
    bev = torch.randn(1, 8, 12, 6)
    base = head(bev)
    ref = torch.full((1, 10, 8, 2), 0.5)
    with_query = head(bev, query_init=torch.randn(1, 10, 32))
    with_ref = head(bev, ref_init=ref)
    assert not torch.allclose(with_query["cls"][0], base["cls"][0])
    assert not torch.allclose(with_ref["pts"][0], base["pts"][0])
    # zero-initialized regression: the first layer's points start at the given references
    torch.testing.assert_close(with_ref["pts"][0], ref, atol=1e-4, rtol=0)
    with pytest.raises(MapHeadInputError, match="query_init"):
        head(bev, query_init=torch.randn(1, 9, 32))
    with pytest.raises(MapHeadInputError, match="ref_init"):
        head(bev, ref_init=torch.rand(1, 10, 7, 2))
    with pytest.raises(MapHeadInputError, match="bev"):
        head(torch.randn(1, 5, 12, 6))


@pytest.mark.parametrize("head_kind,extra", [("MapTRHead", {}), ("MapTRHead", {"self_attn": "decoupled"}),
                                              ("MapQRHead", {}), ("MapQRHead", {"gather": "max", "regression": "point"})])
def test_one_to_many_queries_train_only_and_isolated(head_kind: str, extra: dict) -> None:
    torch.manual_seed(0)
    head = small_head(head_kind, one_to_many=dict(num_queries=6, repeat=2, weight=0.5), **extra).train()
    bev = torch.randn(1, 8, 12, 6)
    out = head(bev)
    assert out["cls"][-1].shape[1] == 16
    embedding = head.instance_embed if head_kind == "MapTRHead" else head.query_embed
    with torch.no_grad():
        embedding.weight[10:] += 1.0
    changed = head(bev)
    torch.testing.assert_close(changed["pts"][-1][:, :10], out["pts"][-1][:, :10])
    assert not torch.allclose(changed["pts"][-1][:, 10:], out["pts"][-1][:, 10:])
    losses = head.loss(bev, [map_sample()])
    assert {"loss_cls", "loss_pts", "loss_dir", "d0.loss_cls", "o2m.loss_pts", "o2m.d0.loss_dir"} <= set(losses)
    assert head.eval()(bev)["cls"][-1].shape[1] == 10
    refs = head.default_reference_points()
    assert refs.shape == (10, 8, 2)
    torch.testing.assert_close(head(bev)["pts"][0][0], refs, atol=1e-4, rtol=0)  # zero-init regression


@pytest.mark.parametrize("one_to_many", [None, dict(num_queries=6, repeat=2, weight=0.5)])
def test_seed_queries_sit_beside_the_learned_ones(head_kind: str, one_to_many: dict | None) -> None:
    """Seed queries are appended after the learned (and one-to-many) queries, start at their own
    points, share the one-to-one group, and empty slots are never matched or predicted."""
    torch.manual_seed(0)
    head = small_head(head_kind, num_seed_queries=3, one_to_many=one_to_many,
                      test_cfg=dict(max_per_sample=200)).train()
    bev = torch.randn(2, 8, 12, 6)
    ref = torch.rand(2, 3, 8, 2)
    mask = torch.tensor([[True, False, True], [False, False, False]])
    seeds = SeedQueries(torch.randn(2, 3, 32), ref, mask)
    out = head(bev, seeds=seeds)
    learned = 10 + (6 if one_to_many else 0)
    assert out["cls"][-1].shape == (2, learned + 3, 3)
    torch.testing.assert_close(out["pts"][0][:, -3:], ref, atol=1e-4, rtol=0)  # zero-init regression
    assert (out["cls"][-1][~torch.cat([torch.ones(2, learned, dtype=torch.bool), mask], 1)] <= -1e3).all()
    if one_to_many:  # the one-to-many group cannot see the seeds and vice versa
        mask_all = head.group_mask(learned, bev.device, 3)
        assert mask_all[-1, 10:learned].all() and not mask_all[-1, :10].any() and not mask_all[-1, -3:].any()
    losses = head.loss(bev, [map_sample("a"), map_sample("b")], seeds=seeds)
    sum(losses.values()).backward()
    assert head.seed_embed.weight.grad.abs().sum() > 0

    head.eval()
    with torch.no_grad():
        # every valid seed's (query, class) pairs are predicted; empty slots never are
        predicted = head.predict(bev, [map_sample("a"), map_sample("b")], seeds=seeds)
    assert len(predicted[0].pred_map) == (10 + 2) * 3 and len(predicted[1].pred_map) == 10 * 3
    with pytest.raises(MapHeadInputError, match="seeds.ref"):
        head(bev, seeds=SeedQueries(torch.randn(2, 3, 32), torch.rand(2, 3, 7, 2), mask))
    with pytest.raises(MapHeadInputError, match="num_seed_queries=0"):
        small_head(head_kind).eval()(bev, seeds=seeds)
    with pytest.raises(ValueError, match="num_seed_queries"):
        small_head(head_kind, num_seed_queries=-1)


def test_chamfer_nms_drops_same_class_duplicates_only() -> None:
    """Sorted by score: a copy 0.3 m off (same class) goes, the same copy of another class and a
    line 3 m away stay; the reversed copy is a duplicate too (Chamfer ignores direction)."""
    t = torch.linspace(0, 10, 8)
    line = torch.stack([t, torch.zeros(8)], dim=1)
    points = torch.stack([line, line + torch.tensor([0.0, 0.3]), line + torch.tensor([0.0, 3.0]),
                          line.flip(0), line + torch.tensor([0.0, 0.3])])
    labels = torch.tensor([0, 0, 0, 0, 2])
    assert chamfer_nms(points, labels, 1.0).tolist() == [0, 2, 4]
    assert chamfer_nms(points, labels, 0.0).tolist() == [0, 1, 2, 3, 4]
    assert chamfer_nms(points[:0], labels[:0], 1.0).numel() == 0


def test_predict_can_suppress_duplicates(head_kind: str) -> None:
    torch.manual_seed(0)
    bev = torch.randn(1, 8, 12, 6)
    plain = small_head(head_kind, test_cfg=dict(max_per_sample=30)).eval()
    nms = small_head(head_kind, test_cfg=dict(max_per_sample=30, nms_distance=50.0))
    nms.load_state_dict(plain.state_dict())
    nms.eval()
    everything = plain.predict(bev, [map_sample()])[0].pred_map
    pruned = nms.predict(bev, [map_sample()])[0].pred_map
    assert len(everything) == 30 and 1 <= len(pruned) <= 3  # one per class is left at 50 m
    assert len(set(pruned.labels.tolist())) == len(pruned)
    with pytest.raises(ValueError, match="test_cfg"):
        small_head(head_kind, test_cfg=dict(nms=1.0))


def test_predict_gives_metric_top_k_map_instances(head_kind: str) -> None:
    head = small_head(head_kind, test_cfg=dict(max_per_sample=7)).eval()
    samples = head.predict(torch.randn(2, 8, 12, 6), [map_sample("a"), map_sample("b")])
    assert [s.token for s in samples] == ["a", "b"]
    pred = samples[0].pred_map
    assert len(pred) == 7 and pred.points.shape == (7, 8, 2) and np.all(np.diff(pred.scores) <= 0)
    assert (pred.points[..., 0] >= MAP_RANGE[0]).all() and (pred.points[..., 1] <= MAP_RANGE[3]).all()
    np.testing.assert_array_equal(pred.closed, pred.labels == 1)  # ped_crossing is the polygon class
    with pytest.raises(MapHeadInputError, match="samples"):
        head.predict(torch.randn(2, 8, 12, 6), [map_sample()])


def test_loss_handles_empty_ground_truth_and_needs_gt_map(head_kind: str) -> None:
    head = small_head(head_kind)
    empty = map_sample("empty")
    empty.gt_map = MapInstances(np.zeros((0, 8, 2)), [], empty.gt_map.class_names, [])
    losses = head.loss(torch.randn(2, 8, 12, 6), [empty, map_sample()])
    assert all(torch.isfinite(v) for v in losses.values()) and losses["loss_pts"] > 0
    only_empty = head.loss(torch.randn(1, 8, 12, 6), [empty])
    assert only_empty["loss_pts"] == 0 and only_empty["loss_cls"] > 0
    sample = map_sample()
    sample.gt_map = None
    with pytest.raises(ValueError, match="LoadVectorMapGT"):
        head.loss(torch.randn(1, 8, 12, 6), [sample])


@pytest.mark.slow
def test_head_fits_a_small_scene(head_kind: str) -> None:
    """200 AdamW steps on one fixed BEV map: every ground-truth instance is predicted with its
    class, a score above 0.5 and a mean point error under 2 m (untrained: no score above 0.5,
    points ~10 m off)."""
    torch.manual_seed(0)
    head = small_head(head_kind, num_queries=6)
    bev, sample = torch.randn(1, 8, 12, 6), map_sample()
    optimizer = torch.optim.AdamW(head.parameters(), lr=5e-3)
    assert head.eval().predict(bev, [sample])[0].pred_map.scores.max() < 0.5
    head.train()
    for _ in range(200):  # 120 sufficed with AVX-512 kernels, not on a CPU without them
        loss = sum(head.loss(bev, [sample]).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    pred = head.eval().predict(bev, [sample])[0].pred_map
    gt = sample.gt_map
    for points, label, closed in zip(gt.points, gt.labels, gt.closed):
        hits = (pred.labels == label) & (pred.scores > 0.5)
        orders = [points, points[::-1]] + ([np.roll(p, s, 0) for p in (points, points[::-1]) for s in range(8)]
                                          if closed else [])
        errors = [min(np.abs(pred.points[hits] - o).sum(-1).mean(-1).min() for o in orders)] if hits.any() else [np.inf]
        assert min(errors) < 2.0, (label, errors)
