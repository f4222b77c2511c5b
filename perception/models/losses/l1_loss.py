"""L1 regression loss (mmdet's ``L1Loss`` arguments)."""
from __future__ import annotations

from torch import Tensor, nn

from ...registry import MODELS
from .utils import check_reduction, weight_reduce_loss


@MODELS.register_module()
class L1Loss(nn.Module):
    """``|pred - target|`` with elementwise weights and mmdet's ``avg_factor`` reduction.

    Entries with zero weight are dropped before the difference, so a NaN target there (an
    unknown velocity) contributes nothing instead of poisoning the sum with ``NaN * 0``.
    """

    def __init__(self, reduction: str = "mean", loss_weight: float = 1.0) -> None:
        super().__init__()
        self.reduction = check_reduction(reduction)
        self.loss_weight = loss_weight

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None,
                avg_factor: float | Tensor | None = None,
                reduction_override: str | None = None) -> Tensor:
        """Weighted, reduced loss."""
        if pred.shape != target.shape:
            raise ValueError(f"L1Loss: pred {tuple(pred.shape)} and target "
                             f"{tuple(target.shape)} differ")
        if weight is not None:
            target = target.where(weight.expand_as(target) != 0, pred.detach())
        loss = (pred - target).abs()
        reduction = reduction_override or self.reduction
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)
