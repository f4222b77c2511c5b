"""Losses of the vector-map heads (MapTR's set): sigmoid focal classification, point L1 and
edge-direction cosine, all on matched pairs from :mod:`.matching`.

Points are in normalized ``[0, 1]`` coordinates of the map range; the direction loss compares
edge vectors in metres (the normalization would otherwise skew angles when the range is not
square).  Polygons have a closing edge, polylines do not.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Elementwise sigmoid focal loss (Lin et al.) of logits against ``{0, 1}`` targets."""
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return alpha_t * ce * (1 - p_t).pow(gamma)


def edge_vectors(points: Tensor, closed: Tensor) -> tuple[Tensor, Tensor]:
    """``(K, P, 2)`` edge vectors of ``(K, P, 2)`` point sets (edge ``i`` from point ``i`` to
    ``i + 1``, the last one closing the polygon) and the ``(K, P)`` mask of real edges (the
    closing edge of a polyline is not one)."""
    edges = torch.roll(points, shifts=-1, dims=1) - points
    mask = torch.ones(points.shape[:2], dtype=torch.bool, device=points.device)
    mask[:, -1] = closed.bool()
    return edges, mask


def direction_loss(pred: Tensor, target: Tensor, closed: Tensor, scale: Tensor) -> Tensor:
    """Sum over real edges of ``1 - cos`` between predicted and target edge vectors; points are
    normalized and ``scale`` ``(2,)`` (the range's extent in metres) makes the edges metric."""
    pred_edges, mask = edge_vectors(pred * scale, closed)
    target_edges, _ = edge_vectors(target * scale, closed)
    cosine = F.cosine_similarity(pred_edges, target_edges, dim=-1, eps=1e-6)
    return ((1 - cosine) * mask).sum()


def map_losses(logits: Tensor, points: Tensor, labels: Tensor, matched_pred: Tensor,
               matched_points: Tensor, matched_closed: Tensor, num_targets: float, scale: Tensor,
               weights: dict[str, float], alpha: float = 0.25, gamma: float = 2.0) -> dict[str, Tensor]:
    """Losses of one decoder layer over the batch.

    ``logits`` ``(N, C)`` and ``points`` ``(N, P, 2)`` are every query of the batch flattened;
    ``labels`` ``(N,)`` holds the matched class or ``-1`` (background); ``matched_pred`` indexes
    the matched rows of ``points`` whose targets (best ordering) are ``matched_points``.  All
    three losses are divided by ``num_targets`` (the matched count, at least 1); the point loss
    is additionally averaged over the points of an instance.
    """
    onehot = torch.zeros_like(logits)
    positive = labels >= 0
    onehot[positive, labels[positive]] = 1.0
    norm = max(float(num_targets), 1.0)
    loss_cls = sigmoid_focal_loss(logits, onehot, alpha, gamma).sum() / norm
    if matched_pred.numel() == 0:
        zero = points.sum() * 0.0
        return {"loss_cls": weights["cls"] * loss_cls, "loss_pts": zero, "loss_dir": zero}
    pred = points[matched_pred]
    loss_pts = F.l1_loss(pred, matched_points, reduction="none").sum(-1).mean(-1).sum() / norm
    loss_dir = direction_loss(pred, matched_points, matched_closed, scale) / norm
    return {"loss_cls": weights["cls"] * loss_cls, "loss_pts": weights["pts"] * loss_pts,
            "loss_dir": weights["dir"] * loss_dir}
