"""Losses of the stack (registered in MODELS under mmdet's names)."""
from .gaussian_focal_loss import GaussianFocalLoss, gaussian_focal_loss
from .l1_loss import L1Loss
from .utils import weight_reduce_loss

__all__ = ["GaussianFocalLoss", "L1Loss", "gaussian_focal_loss", "weight_reduce_loss"]
