"""HRMapNet's consumers of the prior: BEV aggregation, query initialization, the HRMapPrior module."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from perception.models.map.hrmap_aggregation import HRMapBEVAggregation
from perception.models.map.hrmap_prior import HRMapLocationError, HRMapPrior, fragment_instances, sample_pose
from perception.models.map.geometry import resample_polyline
from perception.models.map.hrmap_query_init import HRMapQueryInit
from perception.structures.det_sample import DetSample
from perception.structures.geometry import make_transform, yaw_matrix
from perception.structures.map_instances import MapInstances

CLASSES = ("divider", "ped_crossing", "boundary")
MAP_RANGE = (-15.0, -30.0, 15.0, 30.0)


def make_sample(token: str, x: float, y: float, yaw: float, gt: MapInstances | None = None,
                location: str | None = "town") -> DetSample:
    meta = {} if location is None else {"location": location}
    return DetSample(token=token, class_names=("car",), lidar2global=make_transform(yaw_matrix(yaw), [x, y, 0]),
                     gt_boxes=np.zeros((0, 9), np.float32), gt_labels=np.zeros(0, np.int64), metainfo=meta,
                     gt_map=gt)


def divider_at_y(y: float, score: float | None = None) -> MapInstances:
    points = np.stack([np.linspace(-12, 12, 20), np.full(20, y)], axis=1)[None].astype(np.float32)
    return MapInstances(points, np.array([0]), CLASSES, np.array([False]),
                        None if score is None else np.array([score]))


def test_aggregation_starts_as_identity_and_checks_shapes() -> None:
    module = HRMapBEVAggregation(bev_channels=16, prior_channels=3)
    bev, prior = torch.randn(2, 16, 20, 10), torch.rand(2, 3, 200, 100)
    torch.testing.assert_close(module(bev, prior), bev)  # zero-initialized last conv
    torch.nn.init.normal_(module.fuse[-1].weight)
    changed = module(bev, prior)
    assert changed.shape == bev.shape and not torch.allclose(changed, bev)
    assert not torch.allclose(module(bev, torch.zeros_like(prior)), changed)  # the prior matters
    with pytest.raises(ValueError, match="prior must be"):
        module(bev, torch.rand(2, 2, 20, 10))


def test_query_init_seeds_queries_on_confident_lines_along_their_direction() -> None:
    module = HRMapQueryInit(num_classes=3, embed_dims=32, num_queries=10, num_points=5, map_range=MAP_RANGE,
                            max_queries=4, score_threshold=0.5, segment_length=4.0)
    prior = torch.zeros(1, 3, 200, 100)  # 0.3 m cells: rows along y, columns along x
    prior[0, 2, 150, 20:34] = 0.9        # a short boundary along x at row 150 (y = 15.15 m)
    prior[0, 0, 40:120, 70] = 0.7        # a divider along y at column 70 (x = 6.15 m)
    out = module(prior)
    assert out["query_init"].shape == (1, 10, 32) and out["ref_init"].shape == (1, 10, 5, 2)
    mask = out["mask"][0]
    assert mask[:4].all() and not mask[4:].any()
    scores, labels, centres, theta = module.select(prior)
    assert set(labels[0].tolist()) == {0, 2} and scores[0, 0] == pytest.approx(0.9)
    cells = centres[0] * torch.tensor([100.0, 200.0])
    gaps = (cells[:, None] - cells[None]).abs().amax(-1) + 9 * torch.eye(4)
    assert gaps.min() > 4.5  # peaks of a plateau are spread by the NMS window (> kernel // 2 cells)
    for k in range(4):
        refs = out["ref_init"][0, k] * torch.tensor([30.0, 60.0]) + torch.tensor([-15.0, -30.0])
        span = refs[-1] - refs[0]
        assert span.norm() == pytest.approx(4.0, abs=0.05)
        if labels[0, k] == 2:   # along x
            assert abs(span[1]) < 0.2 and refs[:, 1].mean() == pytest.approx(15.15, abs=0.01)
        else:                   # along y
            assert abs(span[0]) < 0.2 and refs[:, 0].mean() == pytest.approx(6.15, abs=0.01)
    assert out["query_init"][0, 4:].abs().sum() == 0
    defaults = torch.full((10, 5, 2), 0.25)
    filled = HRMapQueryInit.fill(out["ref_init"], out["mask"], defaults)
    assert torch.equal(filled[0, 4:], defaults[4:]) and torch.equal(filled[0, :4], out["ref_init"][0, :4])
    assert not module(torch.zeros(1, 3, 200, 100))["mask"].any()


def test_extra_seed_slots_are_their_own_and_empty_ones_sit_at_the_centre() -> None:
    """``slots="extra"``: ``max_queries`` seeds of their own (may exceed the learned queries),
    empty slots at the map centre with a zero embedding; HRMapPrior hands them to the head as
    ``seeds``."""
    module = HRMapQueryInit(num_classes=3, embed_dims=32, num_queries=10, num_points=5, map_range=MAP_RANGE,
                            max_queries=12, score_threshold=0.5, slots="extra")
    prior = torch.zeros(2, 3, 200, 100)
    prior[0, 0, 40:120, 70] = 0.7
    out = module(prior)
    assert out["query_init"].shape == (2, 12, 32) and out["ref_init"].shape == (2, 12, 5, 2)
    assert out["mask"][0].sum() >= 1 and not out["mask"][1].any()
    assert torch.equal(out["ref_init"][1], torch.full((12, 5, 2), 0.5)) and out["query_init"][1].abs().sum() == 0
    seeded = out["ref_init"][0, out["mask"][0]] * torch.tensor([30.0, 60.0]) + torch.tensor([-15.0, -30.0])
    assert torch.allclose(seeded[..., 0], torch.tensor(6.15), atol=0.01)
    with pytest.raises(ValueError, match="slots"):
        HRMapQueryInit(num_classes=3, embed_dims=32, num_queries=10, num_points=5, map_range=MAP_RANGE, slots="x")

    hr_prior = make_prior(query_init=dict(embed_dims=16, num_queries=6, num_points=4, max_queries=3, slots="extra"))
    hr_prior.eval()
    sample = make_sample("a", 0.0, 0.0, 0.0)
    handed = hr_prior(torch.randn(1, 8, 120, 60), [sample])
    assert set(handed) == {"bev", "seeds"} and handed["seeds"].query.shape == (1, 3, 16)


def make_prior(**overrides) -> HRMapPrior:
    options = dict(class_names=CLASSES, bev_channels=8, map_range=MAP_RANGE, resolution=0.5,
                   aggregation=dict(prior_embed=8), query_init=dict(embed_dims=16, num_queries=6, num_points=4,
                                                                   max_queries=3))
    options.update(overrides)
    return HRMapPrior(**options)


def test_prior_records_predictions_and_feeds_them_to_the_next_pass() -> None:
    prior = make_prior()
    prior.eval()
    first = make_sample("a", 100.0, 50.0, 0.3)
    assert prior.crops([first], torch.device("cpu"))[1].abs().sum() == 0  # empty map
    first.pred_map = divider_at_y(5.0, score=0.9)
    prior.update([first])
    assert prior.crops([first], torch.device("cpu"))[1].abs().sum() == 0  # pending until committed
    prior.global_map.commit()
    second = make_sample("b", 100.0, 50.0, 0.3)
    _, mapped = prior.crops([second], torch.device("cpu"))
    row = int((5.0 + 30.0) / 0.5)
    # the 2-cell line resampled into the rotated world grid and back: blurred, but in place
    assert mapped[0, 0, row - 1:row + 1, 20:40].amax(0).min() > 0.6
    assert mapped[0, 0, row - 1:row + 1].max() <= 0.9 + 1e-6 and mapped[0, 1:].max() == 0
    assert mapped[0, 0, :row - 4].max() == 0 and mapped[0, 0, row + 4:].max() == 0
    out = prior(torch.randn(1, 8, 24, 12), [second], default_refs=torch.full((6, 4, 2), 0.5))
    assert set(out) == {"bev", "query_init", "ref_init"} and out["ref_init"].shape == (1, 6, 4, 2)
    assert out["query_init"][0, 0].abs().sum() > 0
    assert prior(torch.randn(1, 8, 24, 12), [second]).keys() == {"bev", "query_init"}
    prior.enabled = False  # the "without historical map" evaluation of the same weights
    assert prior.crops([second], torch.device("cpu"))[1].abs().sum() == 0
    prior.enabled = True
    with pytest.raises(HRMapLocationError, match="HRMapLocation"):
        prior.crops([make_sample("c", 0, 0, 0, location=None)], torch.device("cpu"))


def test_training_prior_is_corrupted_ground_truth() -> None:
    prior = make_prior(drop_prob=0.0, instance_drop=0.0, min_confidence=0.6, shift=0.0)
    prior.train()
    sample = make_sample("a", 0, 0, 0, gt=divider_at_y(-10.0))
    _, mapped = prior.crops([sample], torch.device("cpu"))
    row = int((-10.0 + 30.0) / 0.5)
    assert 0.6 <= float(mapped[0, 0, row, 30]) <= 1.0
    assert mapped[0, 0, row + 6, 30] == 0
    prior.drop_prob = 1.0
    assert prior.crops([sample], torch.device("cpu"))[1].abs().sum() == 0
    prior.update([sample])  # no-op while training
    assert not prior.global_map.locations


def test_map_training_prior_reads_the_global_map_and_drops_some_samples() -> None:
    """``train_prior="map"``: the crop of the global map (e.g. the model's own predictions over
    the train drives), replaced by zeros for a ``drop_prob`` share of the samples."""
    prior = make_prior(train_prior="map", drop_prob=0.0)
    sample = make_sample("a", 0, 0, 0, gt=divider_at_y(-10.0))
    prior.update_with_ground_truth([sample])
    prior.global_map.commit()
    prior.train()
    _, mapped = prior.crops([sample], torch.device("cpu"))
    row = int((-10.0 + 30.0) / 0.5)
    assert float(mapped[0, 0, row, 30]) > 0.9 and mapped[0, 0, row + 6, 30] == 0
    prior.drop_prob = 0.5
    np.random.seed(1)
    filled = [float(prior.crops([sample], torch.device("cpu"))[1].sum()) for _ in range(40)]
    assert 5 < sum(f == 0 for f in filled) < 35 and max(filled) == float(mapped.sum())


def test_self_prior_uses_the_models_own_prediction_drawn_like_a_map_update() -> None:
    """In training, a sample with its own prediction gets it as the prior (instances below
    ``update_score_threshold`` left out, scores as cell values); at test time ``own`` is ignored."""
    prior = make_prior(self_prior=1.0, update_score_threshold=0.3, drop_prob=0.0, instance_drop=0.0)
    sample = make_sample("a", 0, 0, 0, gt=divider_at_y(-10.0))
    lines = np.stack([divider_at_y(y).points[0] for y in (-10.0, 12.0)])
    own = MapInstances(lines, np.array([0, 2]), CLASSES, np.zeros(2, bool), np.array([0.8, 0.2], np.float32))
    prior.train()
    assert prior.self_prior_draws(4).all()
    _, mapped = prior.crops([sample], torch.device("cpu"), own=[own])
    row, far_row = int((-10.0 + 30.0) / 0.5), int((12.0 + 30.0) / 0.5)
    assert abs(float(mapped[0, 0, row, 30]) - 0.8) < 1e-6   # the confident divider, at its score
    assert mapped[0, 2].sum() == 0 and mapped[0, 0, far_row].sum() == 0  # 0.2 < 0.3: left out
    _, from_gt = prior.crops([sample], torch.device("cpu"), own=[None])  # not drawn: the ground-truth prior
    assert from_gt.sum() > 0
    prior.eval()
    assert not prior.self_prior_draws(4).any()
    assert prior.crops([sample], torch.device("cpu"), own=[own])[1].sum() == 0  # empty global map
    with pytest.raises(ValueError, match="self_prior"):
        make_prior(self_prior=1.5)


def test_training_prior_can_look_like_a_predicted_map() -> None:
    """Spurious elements put prior cells away from every real element; jitter crumples lines."""
    clean = make_prior(drop_prob=0.0, instance_drop=0.0, min_confidence=1.0, shift=0.0)
    clean.train()
    sample = make_sample("a", 0, 0, 0, gt=divider_at_y(-10.0))
    _, reference = clean.crops([sample], torch.device("cpu"))
    row = int((-10.0 + 30.0) / 0.5)
    far_from_gt = np.ones(reference.shape[-2], bool)
    far_from_gt[row - 4:row + 5] = False
    assert reference[0, 0, far_from_gt].sum() == 0

    np.random.seed(0)
    spurious = make_prior(drop_prob=0.0, instance_drop=0.0, min_confidence=1.0, shift=0.0, false_instances=4.0)
    spurious.train()
    crops = [spurious.crops([sample], torch.device("cpu"))[1] for _ in range(5)]
    assert any(float(c[0, 0, far_from_gt].sum()) > 0 for c in crops)  # divider-shaped false positives
    assert all(torch.equal(c[0, 1:], torch.zeros_like(c[0, 1:])) for c in crops)  # copies keep the class

    jittery = make_prior(drop_prob=0.0, instance_drop=0.0, min_confidence=1.0, shift=0.0, jitter=0.8)
    jittery.train()
    crumpled = jittery.crops([sample], torch.device("cpu"))[1]
    assert not torch.equal(crumpled, reference)
    assert crumpled[0, 0, row - 8:row + 9].sum() > 0.8 * crumpled[0, 0].sum()  # still near the divider
    for name in ("jitter", "false_instances", "false_offset"):
        with pytest.raises(ValueError, match=name):
            make_prior(**{name: -1.0})


def test_fragments_break_elements_into_open_pieces_with_gaps() -> None:
    """A 24 m divider and a 4 x 4 m crossing cut by gaps of exactly 2 m: every piece lies on the
    original element, is open, keeps its class, and together they miss 2-6 m of its length."""
    divider = divider_at_y(5.0)
    square = np.array([[0, 0], [4, 0], [4, 4], [0, 4]], np.float32)
    crossing = resample_polyline(square, 20, True)
    points = np.stack([divider.points[0], crossing])
    labels, closed = np.array([0, 1]), np.array([False, True])
    np.random.seed(0)
    for _ in range(20):
        pieces, piece_labels, piece_closed = fragment_instances(points, labels, closed, 1.0, (2.0, 2.0))
        assert not piece_closed.any() and pieces.shape[1:] == (20, 2)
        lines = pieces[piece_labels == 0]
        assert len(lines) >= 1 and np.allclose(lines[..., 1], 5.0, atol=1e-4)
        covered = sum(float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum()) for p in lines)
        assert 24.0 - 6.0 - 0.5 <= covered <= 24.0 - 2.0 + 0.5  # 1-3 gaps of 2 m (they may overlap / clip)
        ring = pieces[piece_labels == 1]
        on_edge = np.minimum(np.minimum(np.abs(ring[..., 0]), np.abs(ring[..., 0] - 4)),
                             np.minimum(np.abs(ring[..., 1]), np.abs(ring[..., 1] - 4)))
        assert np.all(on_edge < 1e-3)
    same = fragment_instances(points, labels, closed, 0.0, (2.0, 2.0))
    assert np.array_equal(same[0], points) and np.array_equal(same[2], closed)
    empty = fragment_instances(points[:0], labels[:0], closed[:0], 1.0, (2.0, 2.0))
    assert empty[0].shape == (0, 20, 2)


def test_fragmented_training_prior_has_more_components() -> None:
    """``fragment=1`` splits the prior's lines into several connected pieces; bad options are refused."""
    sample = make_sample("a", 0, 0, 0, gt=divider_at_y(-10.0))
    np.random.seed(1)
    whole = make_prior(drop_prob=0.0, instance_drop=0.0, min_confidence=1.0, shift=0.0)
    broken = make_prior(drop_prob=0.0, instance_drop=0.0, min_confidence=1.0, shift=0.0, fragment=1.0,
                        fragment_gap=(3.0, 3.0))
    whole.train()
    broken.train()
    count = lambda raster: ndimage.label(raster[0, 0].numpy() > 0)[1]  # noqa: E731
    assert count(whole.crops([sample], torch.device("cpu"))[1]) == 1
    assert max(count(broken.crops([sample], torch.device("cpu"))[1]) for _ in range(5)) >= 2
    with pytest.raises(ValueError, match="fragment"):
        make_prior(fragment=2.0)
    with pytest.raises(ValueError, match="fragment_gap"):
        make_prior(fragment_gap=(3.0, 1.0))


def test_instance_drop_can_vary_per_sample() -> None:
    """A (low, high) instance_drop draws each sample's completeness: some priors keep every
    element, others almost none."""
    gt = MapInstances(np.stack([divider_at_y(y).points[0] for y in np.linspace(-25, 25, 12)]),
                      np.zeros(12, np.int64), CLASSES, np.zeros(12, bool))
    sample = make_sample("a", 0, 0, 0, gt=gt)
    prior = make_prior(drop_prob=0.0, instance_drop=(0.0, 1.0), min_confidence=1.0, shift=0.0)
    prior.train()
    np.random.seed(3)
    filled = [float((prior.crops([sample], torch.device("cpu"))[1][0, 0] > 0).sum()) for _ in range(30)]
    assert max(filled) > 3 * min(filled)
    for bad in ((0.5, 0.2), (0.0, 1.5), (0.1, 0.2, 0.3)):
        with pytest.raises(ValueError, match="instance_drop"):
            make_prior(instance_drop=bad)


def test_augmented_samples_use_the_augmented_pose() -> None:
    sample = make_sample("a", 10.0, 0.0, 0.0)
    flip = np.diag([1.0, -1.0, 1.0, 1.0])
    rotate = make_transform(yaw_matrix(math.pi / 2), [0, 0, 0])
    sample.metainfo["aug"] = {"lidar_aug_matrix": rotate @ flip}
    pose = sample_pose(sample)
    # an augmented point p_aug comes from p = inv(aug) @ p_aug; the world point is lidar2global @ p
    point_aug = np.array([1.0, 2.0, 0.0, 1.0])
    expected = sample.lidar2global @ np.linalg.inv(rotate @ flip) @ point_aug
    np.testing.assert_allclose(pose @ point_aug, expected)


def test_component_queries_span_whole_elements() -> None:
    module = HRMapQueryInit(num_classes=3, embed_dims=16, num_queries=8, num_points=5, map_range=MAP_RANGE,
                            max_queries=4, mode="components", closed_labels=[1], min_cells=8)
    prior = torch.zeros(1, 3, 200, 100)  # 0.3 m cells
    prior[0, 0, 20:180, 30:32] = 0.9     # divider along y at x = -5.7 m, y in [-24, 24]
    prior[0, 1, 100:120, 60:80] = 0.8    # a pedestrian crossing, x in [3, 9], y in [0, 6]
    prior[0, 2, 5:7, 5:7] = 0.95         # 4 cells: below min_cells, ignored
    out = module(prior)
    assert out["mask"][0].tolist() == [True, True] + [False] * 6
    metres = out["ref_init"][0] * torch.tensor([30.0, 60.0]) + torch.tensor([-15.0, -30.0])
    divider, crossing = metres[0], metres[1]
    torch.testing.assert_close(divider[:, 0], torch.full((5,), -5.7), atol=0.01, rtol=0)
    assert divider[0, 1] < -22 and divider[-1, 1] > 22 and (divider[1:, 1] > divider[:-1, 1]).all()
    assert crossing[:, 0].min() < 3.5 and crossing[:, 0].max() > 8.5
    assert crossing[:, 1].min() < 0.5 and crossing[:, 1].max() > 5.5
    with pytest.raises(ValueError, match="mode"):
        HRMapQueryInit(num_classes=3, embed_dims=16, num_queries=8, num_points=5, map_range=MAP_RANGE, mode="x")
