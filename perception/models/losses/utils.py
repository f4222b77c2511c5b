"""mmdet's loss reduction: elementwise loss, optional weights, ``avg_factor`` normalization."""
from __future__ import annotations

import torch
from torch import Tensor

REDUCTIONS = ("none", "mean", "sum")


def check_reduction(reduction: str) -> str:
    """``reduction`` if it is one of :data:`REDUCTIONS`, else a ValueError."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def weight_reduce_loss(loss: Tensor, weight: Tensor | None = None, reduction: str = "mean",
                       avg_factor: float | Tensor | None = None) -> Tensor:
    """Apply elementwise ``weight`` then reduce; with ``avg_factor`` a "mean" is
    ``sum / avg_factor`` (mmdet semantics: normalize by e.g. the number of objects)."""
    check_reduction(reduction)
    if weight is not None:
        if weight.shape != loss.shape:
            weight = weight.expand_as(loss)
        loss = loss * weight
    if avg_factor is None:
        return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]
    if reduction == "mean":
        return loss.sum() / (avg_factor + torch.finfo(torch.float32).eps)
    if reduction == "none":
        return loss
    raise ValueError('avg_factor can not be used with reduction="sum"')
