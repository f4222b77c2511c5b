"""Permutation-equivalent Hungarian matching of predicted point sets to map ground truth.

A polyline read forwards or backwards is the same element, and a polygon is the same read
from any vertex in either direction (MapTR's *permutation-equivalent modeling*).  Every
ground-truth instance is expanded once into all its equivalent orderings
(:func:`equivalent_permutations`: ``2P`` index rows, of which 2 are valid for an open
polyline and all ``2P`` for a closed polygon); the point cost of a prediction against an
instance is the smallest L1 distance over its valid orderings, and the loss later uses the
ordering that achieved it.  The assignment itself is ``scipy.optimize.linear_sum_assignment``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor


def equivalent_permutations(num_points: int, device: torch.device | None = None) -> Tensor:
    """``(2P, P)`` index rows: rows ``0..P-1`` are the cyclic shifts ``k -> (k + s) % P``,
    rows ``P..2P-1`` the reversed shifts ``k -> (s - k) % P``.  Row ``0`` is the identity and
    row ``2P - 1`` the plain reversal ``k -> P - 1 - k``."""
    k = torch.arange(num_points, device=device)
    shifts = torch.arange(num_points, device=device)[:, None]
    forward = (k[None] + shifts) % num_points
    backward = (shifts - k[None]) % num_points
    return torch.cat([forward, backward], dim=0)


def permutation_mask(closed: Tensor, num_points: int) -> Tensor:
    """``(M, 2P)`` bool: which rows of :func:`equivalent_permutations` are orderings of each
    instance (all for polygons; identity and reversal for polylines)."""
    mask = torch.zeros(closed.shape[0], 2 * num_points, dtype=torch.bool, device=closed.device)
    mask[:, 0] = True
    mask[:, 2 * num_points - 1] = True
    mask[closed.bool()] = True
    return mask


def permuted_targets(points: Tensor, closed: Tensor) -> tuple[Tensor, Tensor]:
    """``(M, 2P, P, 2)`` every ordering of the ``(M, P, 2)`` targets and the ``(M, 2P)`` mask of
    the valid ones."""
    num_points = points.shape[1]
    perms = equivalent_permutations(num_points, points.device)
    return points[:, perms], permutation_mask(closed, num_points)


def focal_cost(logits: Tensor, labels: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """``(N, M)`` focal classification cost (Deformable DETR's) of ``(N, C)`` logits for the
    ``(M,)`` target labels."""
    prob = logits.sigmoid()
    eps = 1e-8
    neg = (1 - alpha) * prob.pow(gamma) * -(1 - prob + eps).log()
    pos = alpha * (1 - prob).pow(gamma) * -(prob + eps).log()
    return (pos - neg)[:, labels]


def point_cost(pred: Tensor, targets: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """``(N, M)`` mean-L1 cost of ``(N, P, 2)`` predictions against the best valid ordering of
    each target (``targets`` ``(M, 2P, P, 2)``, ``valid`` ``(M, 2P)``), and the ``(N, M)``
    index of that ordering."""
    num, num_gt, orders = pred.shape[0], targets.shape[0], targets.shape[1]
    flat_pred = pred.reshape(num, -1)
    flat_gt = targets.reshape(num_gt * orders, -1)
    cost = torch.cdist(flat_pred, flat_gt, p=1).reshape(num, num_gt, orders) / flat_pred.shape[1]
    cost = cost.masked_fill(~valid[None], float("inf"))
    best, order = cost.min(dim=2)
    return best, order


@dataclass
class MatchResult:
    """Matched pairs of one sample: prediction indices, target indices, and for each pair
    the target's points in the ordering closest to the prediction ``(K, P, 2)``."""

    pred_index: Tensor
    gt_index: Tensor
    gt_points: Tensor


class PermutationHungarianMatcher:
    """Hungarian assignment with cost ``cls_weight * focal + pts_weight * L1`` (module doc).

    Costs are computed on normalized coordinates; a prediction can match one target and a
    target one prediction.  ``match`` gets the ground truth already repeated for one-to-many
    matching (the head does that)."""

    def __init__(self, cls_weight: float = 2.0, pts_weight: float = 5.0, alpha: float = 0.25,
                 gamma: float = 2.0) -> None:
        self.cls_weight, self.pts_weight = cls_weight, pts_weight
        self.alpha, self.gamma = alpha, gamma

    @torch.no_grad()
    def match(self, logits: Tensor, points: Tensor, gt_labels: Tensor, gt_points: Tensor,
              gt_closed: Tensor) -> MatchResult:
        """Assign ``(N, C)`` / ``(N, P, 2)`` predictions to ``(M,)`` / ``(M, P, 2)`` targets."""
        if gt_points.shape[1:] != points.shape[1:]:
            raise ValueError(f"matcher: targets {tuple(gt_points.shape)} and predictions "
                             f"{tuple(points.shape)} must have the same points per instance")
        empty = torch.zeros(0, dtype=torch.long, device=points.device)
        if gt_labels.numel() == 0:
            return MatchResult(empty, empty, gt_points[:0])
        targets, valid = permuted_targets(gt_points, gt_closed)
        pts_cost, order = point_cost(points.float(), targets.float(), valid)
        cost = self.cls_weight * focal_cost(logits.float(), gt_labels, self.alpha, self.gamma) \
            + self.pts_weight * pts_cost
        rows, cols = linear_sum_assignment(cost.cpu().numpy())
        pred_index = torch.as_tensor(np.asarray(rows), dtype=torch.long, device=points.device)
        gt_index = torch.as_tensor(np.asarray(cols), dtype=torch.long, device=points.device)
        best = order[pred_index, gt_index]
        return MatchResult(pred_index, gt_index, targets[gt_index, best])
