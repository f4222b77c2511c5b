"""CenterNet's gaussian focal loss on heatmaps (mmdet's ``GaussianFocalLoss`` arguments)."""
from __future__ import annotations

from torch import Tensor, nn

from ...registry import MODELS
from .utils import check_reduction, weight_reduce_loss


def gaussian_focal_loss(pred: Tensor, target: Tensor, alpha: float = 2.0, gamma: float = 4.0,
                        pos_weight: float = 1.0, neg_weight: float = 1.0) -> Tensor:
    """Elementwise focal loss of probabilities ``pred`` against gaussian ``target``
    heatmaps: cells equal to 1 are positives, the rest negatives down-weighted by
    ``(1 - target) ** gamma`` so cells near a centre are barely penalized."""
    eps = 1e-12
    positives = target.eq(1).to(pred.dtype)
    negatives = (1 - target).pow(gamma)
    pos_loss = -(pred + eps).log() * (1 - pred).pow(alpha) * positives
    neg_loss = -(1 - pred + eps).log() * pred.pow(alpha) * negatives
    return pos_weight * pos_loss + neg_weight * neg_loss


@MODELS.register_module()
class GaussianFocalLoss(nn.Module):
    """Gaussian focal loss; ``pred`` must already be probabilities (sigmoid, clipped)."""

    def __init__(self, alpha: float = 2.0, gamma: float = 4.0, reduction: str = "mean",
                 loss_weight: float = 1.0, pos_weight: float = 1.0,
                 neg_weight: float = 1.0) -> None:
        super().__init__()
        self.alpha, self.gamma = alpha, gamma
        self.reduction = check_reduction(reduction)
        self.loss_weight = loss_weight
        self.pos_weight, self.neg_weight = pos_weight, neg_weight

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None,
                avg_factor: float | Tensor | None = None,
                reduction_override: str | None = None) -> Tensor:
        """Weighted, reduced loss (``avg_factor``: usually the number of positives)."""
        if pred.shape != target.shape:
            raise ValueError(f"GaussianFocalLoss: pred {tuple(pred.shape)} and target "
                             f"{tuple(target.shape)} differ")
        loss = gaussian_focal_loss(pred, target, self.alpha, self.gamma, self.pos_weight,
                                   self.neg_weight)
        reduction = reduction_override or self.reduction
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)
