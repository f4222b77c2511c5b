"""Permutation-equivalent matching and the map losses: every equivalent ordering is found, the
Hungarian assignment undoes a shuffle of the instances, and the losses vanish exactly when the
prediction is an equivalent ordering of the target."""
from __future__ import annotations

import torch

from perception.models.map.losses import direction_loss, map_losses, sigmoid_focal_loss
from perception.models.map.matching import (PermutationHungarianMatcher, equivalent_permutations,
                                            permuted_targets, point_cost)


def brute_force_orders(num_points: int, closed: bool) -> set[tuple[int, ...]]:
    """Every reading of a point sequence as the same element, built by hand."""
    base = list(range(num_points))
    if not closed:
        return {tuple(base), tuple(reversed(base))}
    shifts = [base[s:] + base[:s] for s in range(num_points)]
    return {tuple(o) for s in shifts for o in (s, list(reversed(s)))}


def test_equivalent_permutations_cover_polylines_and_polygons() -> None:
    for num_points in (3, 5, 8):
        perms = equivalent_permutations(num_points)
        assert perms.shape == (2 * num_points, num_points)
        assert all(sorted(row.tolist()) == list(range(num_points)) for row in perms)
        points = torch.arange(num_points, dtype=torch.float32)[None, :, None].repeat(2, 1, 2)
        targets, valid = permuted_targets(points, torch.tensor([False, True]))
        for index, closed in ((0, False), (1, True)):
            found = {tuple(int(v) for v in targets[index, k, :, 0]) for k in range(2 * num_points)
                     if valid[index, k]}
            assert found == brute_force_orders(num_points, closed)


def test_point_cost_is_zero_for_any_equivalent_ordering() -> None:
    gen = torch.Generator().manual_seed(0)
    gt = torch.rand(2, 6, 2, generator=gen)
    closed = torch.tensor([False, True])
    targets, valid = permuted_targets(gt, closed)
    reversed_line = gt[0].flip(0)
    shifted_reversed_polygon = torch.roll(gt[1], 2, dims=0).flip(0)
    shifted_line = torch.roll(gt[0], 2, dims=0)  # not an equivalent ordering of a polyline
    cost, _ = point_cost(torch.stack([reversed_line, shifted_reversed_polygon, shifted_line]), targets, valid)
    assert cost[0, 0] < 1e-6 and cost[1, 1] < 1e-6
    assert cost[2, 0] > 1e-2


def test_hungarian_matcher_undoes_a_shuffle_and_returns_the_best_ordering() -> None:
    gen = torch.Generator().manual_seed(1)
    gt_points = torch.rand(4, 5, 2, generator=gen)
    gt_labels = torch.tensor([0, 2, 1, 0])
    gt_closed = torch.tensor([False, False, True, False])
    order = torch.tensor([5, 2, 0, 7])  # query index of each target
    preds = torch.rand(8, 5, 2, generator=gen)
    logits = torch.full((8, 3), -3.0)
    preds[order[0]] = gt_points[0].flip(0)
    preds[order[1]] = gt_points[1]
    preds[order[2]] = torch.roll(gt_points[2], 3, dims=0)
    preds[order[3]] = gt_points[3].flip(0)
    logits[order, gt_labels] = 3.0
    match = PermutationHungarianMatcher().match(logits, preds, gt_labels, gt_points, gt_closed)
    assert dict(zip(match.gt_index.tolist(), match.pred_index.tolist())) == dict(enumerate(order.tolist()))
    torch.testing.assert_close(match.gt_points, preds[match.pred_index])


def test_matcher_without_ground_truth_matches_nothing() -> None:
    match = PermutationHungarianMatcher().match(torch.zeros(4, 3), torch.rand(4, 5, 2),
                                                torch.zeros(0, dtype=torch.long), torch.zeros(0, 5, 2),
                                                torch.zeros(0, dtype=torch.bool))
    assert match.pred_index.numel() == 0 and match.gt_points.shape == (0, 5, 2)


def test_losses_vanish_only_for_the_matched_ordering() -> None:
    gen = torch.Generator().manual_seed(2)
    target = torch.rand(1, 6, 2, generator=gen)
    scale = torch.tensor([30.0, 60.0])
    closed = torch.tensor([False])
    assert direction_loss(target, target, closed, scale) < 1e-5
    assert direction_loss(target.flip(1), target, closed, scale) > 1.0  # every edge reversed
    logits = torch.tensor([[5.0, -5.0, -5.0], [-5.0, -5.0, -5.0]])
    labels = torch.tensor([0, -1])
    points = torch.cat([target, torch.rand(1, 6, 2, generator=gen)])
    weights = {"cls": 1.0, "pts": 1.0, "dir": 1.0}
    losses = map_losses(logits, points, labels, torch.tensor([0]), target, closed, 1.0, scale, weights)
    assert losses["loss_pts"] < 1e-6 and losses["loss_dir"] < 1e-5 and losses["loss_cls"] < 0.01
    worse = map_losses(logits, points, labels, torch.tensor([1]), target, closed, 1.0, scale, weights)
    assert worse["loss_pts"] > 0.05


def test_sigmoid_focal_loss_down_weights_easy_examples() -> None:
    targets = torch.tensor([1.0, 1.0, 0.0, 0.0])
    loss = sigmoid_focal_loss(torch.tensor([4.0, -4.0, -4.0, 4.0]), targets)
    assert loss[0] < loss[1] / 100 and loss[2] < loss[3] / 100
    assert (loss >= 0).all()
