"""BEV map segmentation head (BEVFusion's ``BEVSegmentationHead``).

``BEVGridTransform`` resamples the decoder's BEV map (extent ``input_range``) onto the
segmentation grid (``grid``: ranges and resolution, default +-50 m at 0.5 m) with
``grid_sample``; a few conv-BN-ReLU blocks and a 1x1 conv give one logit per class and cell.
The loss is a per-class sigmoid focal loss (or BCE) against ``DetSample.gt_bev_seg``;
``predict`` puts sigmoid probabilities in ``DetSample.pred_bev_seg``.  Both grids follow the
stack's BEV convention (columns along +x, rows along +y), which is also ``grid_sample``'s
(grid ``x`` indexes W, ``y`` indexes H), so no flip is involved.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...registry import MODELS
from ...structures.det_sample import DetSample
from ...structures.geometry import BEVGrid
from ...structures.bev_seg_classes import BEV_SEG_CLASSES
from .separate_head import ConvModule2d


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Mean sigmoid focal loss (Lin et al. 2017); ``alpha < 0`` disables the class weighting."""
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return loss.mean()


def _as_grid(value: BEVGrid | Mapping[str, Any]) -> BEVGrid:
    if isinstance(value, BEVGrid):
        return value
    cfg = dict(value)
    return BEVGrid(tuple(cfg["x_range"]), tuple(cfg["y_range"]), float(cfg["resolution"]))  # type: ignore[arg-type]


@MODELS.register_module()
class BEVGridTransform(nn.Module):
    """Bilinearly resample a BEV map of extent ``input_range`` onto ``grid``'s cell centres.

    Args:
        input_range: ``((x_min, x_max), (y_min, y_max))`` metres covered by the input map.
        grid: the output :class:`BEVGrid` (or a dict with ``x_range``, ``y_range``, ``resolution``).
    Cells of the output outside the input extent read zeros.
    """

    def __init__(self, input_range: Sequence[Sequence[float]], grid: BEVGrid | Mapping[str, Any]) -> None:
        super().__init__()
        (x_min, x_max), (y_min, y_max) = [tuple(float(v) for v in axis) for axis in input_range]
        if x_max <= x_min or y_max <= y_min:
            raise ValueError(f"BEVGridTransform: input_range must be ((x_min, x_max), (y_min, y_max)), "
                             f"got {input_range}")
        self.grid = _as_grid(grid)
        height, width = self.grid.shape
        xs = self.grid.x_range[0] + (np.arange(width) + 0.5) * self.grid.resolution
        ys = self.grid.y_range[0] + (np.arange(height) + 0.5) * self.grid.resolution
        # grid_sample with align_corners=False: -1 / +1 are the outer edges of the input map.
        u = 2.0 * (xs - x_min) / (x_max - x_min) - 1.0
        v = 2.0 * (ys - y_min) / (y_max - y_min) - 1.0
        sample = np.stack(np.meshgrid(u, v), axis=-1)  # (H, W, 2): x then y
        self.register_buffer("sample_grid", torch.tensor(sample, dtype=torch.float32)[None], persistent=False)

    def forward(self, bev: Tensor) -> Tensor:
        """``(B, C, H_in, W_in)`` -> ``(B, C, H, W)`` on the output grid."""
        if bev.ndim != 4:
            raise ValueError(f"BEVGridTransform: expected (B, C, H, W), got {tuple(bev.shape)}")
        grid = self.sample_grid.to(dtype=bev.dtype).expand(bev.shape[0], -1, -1, -1)
        return F.grid_sample(bev, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@MODELS.register_module()
class BEVSegmentationHead(nn.Module):
    """Per-class BEV map segmentation on a fused BEV feature map (module doc).

    Args:
        in_channels: channels of the BEV features.
        input_range: metres covered by the BEV features ``((x_min, x_max), (y_min, y_max))``.
        grid: segmentation grid (dict with ``x_range``, ``y_range``, ``resolution``).
        classes: class names, one output channel each, in the target's order.
        mid_channels: width of the conv blocks (default ``in_channels``).
        num_convs: number of 3x3 conv-BN-ReLU blocks before the 1x1 classifier.
        loss: ``"focal"`` (BEVFusion's) or ``"bce"``.
        focal_alpha, focal_gamma: focal-loss parameters (BEVFusion: no alpha weighting, gamma 2).
        loss_weight: factor on every class loss.
        init_bias: initial bias of the classifier (``None``: PyTorch's default init).
    """

    def __init__(self, in_channels: int, input_range: Sequence[Sequence[float]] = ((-54.0, 54.0), (-54.0, 54.0)),
                 grid: BEVGrid | Mapping[str, Any] | None = None, classes: Sequence[str] = BEV_SEG_CLASSES,
                 mid_channels: int | None = None, num_convs: int = 2, loss: str = "focal",
                 focal_alpha: float = -1.0, focal_gamma: float = 2.0, loss_weight: float = 1.0,
                 init_bias: float | None = None, norm_cfg: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        if loss not in ("focal", "bce"):
            raise ValueError(f"BEVSegmentationHead: loss must be 'focal' or 'bce', got {loss!r}")
        if not classes:
            raise ValueError("BEVSegmentationHead: classes must not be empty")
        grid = _as_grid(grid or dict(x_range=(-50.0, 50.0), y_range=(-50.0, 50.0), resolution=0.5))
        self.classes = tuple(classes)
        self.loss_type, self.focal_alpha, self.focal_gamma = loss, float(focal_alpha), float(focal_gamma)
        self.loss_weight = float(loss_weight)
        self.transform = BEVGridTransform(input_range, grid)
        mid = int(mid_channels or in_channels)
        norm_cfg = dict(type="BN2d") if norm_cfg is None else dict(norm_cfg)
        blocks = [ConvModule2d(in_channels if i == 0 else mid, mid, 3, norm_cfg=norm_cfg) for i in range(num_convs)]
        self.convs = nn.Sequential(*blocks)
        self.classifier = nn.Conv2d(mid if num_convs else in_channels, len(self.classes), 1)
        if init_bias is not None:
            nn.init.constant_(self.classifier.bias, init_bias)

    @property
    def grid(self) -> BEVGrid:
        return self.transform.grid

    def forward(self, bev: Tensor | Sequence[Tensor]) -> Tensor:
        """Logits ``(B, num_classes, H, W)`` on the segmentation grid."""
        return self.classifier(self.convs(self.transform(_single_map(bev))))

    def targets(self, samples: Sequence[DetSample], like: Tensor) -> Tensor:
        """Stacked ``gt_bev_seg`` as float ``(B, C, H, W)``, checked against the head's grid."""
        expected = (len(self.classes), *self.grid.shape)
        stack = []
        for sample in samples:
            if sample.gt_bev_seg is None:
                raise ValueError(f"BEVSegmentationHead: sample {sample.token} has no gt_bev_seg; add "
                                 "LoadBEVSegmentation to the training pipeline")
            if tuple(sample.gt_bev_seg.shape) != expected:
                raise ValueError(f"BEVSegmentationHead: sample {sample.token} gt_bev_seg has shape "
                                 f"{tuple(sample.gt_bev_seg.shape)}, the head predicts {expected}")
            _check_target_fresh(sample)
            stack.append(sample.gt_bev_seg.to(device=like.device, dtype=like.dtype))
        return torch.stack(stack)

    def loss(self, bev: Tensor | Sequence[Tensor], samples: Sequence[DetSample]) -> dict[str, Tensor]:
        """One loss per class: ``loss_seg_<class>``."""
        logits = self(bev)
        targets = self.targets(samples, logits)
        losses = {}
        for index, name in enumerate(self.classes):
            if self.loss_type == "focal":
                value = sigmoid_focal_loss(logits[:, index], targets[:, index], self.focal_alpha, self.focal_gamma)
            else:
                value = F.binary_cross_entropy_with_logits(logits[:, index], targets[:, index])
            losses[f"loss_seg_{name}"] = value * self.loss_weight
        return losses

    def predict(self, bev: Tensor | Sequence[Tensor], samples: Sequence[DetSample]) -> list[DetSample]:
        """Copies of ``samples`` with ``pred_bev_seg`` = ``(C, H, W)`` sigmoid probabilities."""
        probs = self(bev).sigmoid()
        if probs.shape[0] != len(samples):
            raise ValueError(f"BEVSegmentationHead: {probs.shape[0]} BEV maps for {len(samples)} samples")
        return [dataclasses.replace(sample, pred_bev_seg=prob) for sample, prob in zip(samples, probs)]


def _single_map(bev: Tensor | Sequence[Tensor]) -> Tensor:
    """The one BEV tensor of a tensor or a one-element list (necks return lists)."""
    if isinstance(bev, Tensor):
        return bev
    maps = list(bev)
    if len(maps) != 1:
        raise ValueError(f"BEVSegmentationHead: expected one BEV map, got {len(maps)}")
    return maps[0]


def _check_target_fresh(sample: DetSample) -> None:
    """Raise if an augmentation ran after the target was drawn (both matrices in metainfo)."""
    drawn = sample.metainfo.get("bev_seg_aug_matrix")
    aug = sample.metainfo.get("aug") or {}
    if drawn is None or "lidar_aug_matrix" not in aug:
        return
    if not np.allclose(np.asarray(drawn), np.asarray(aug["lidar_aug_matrix"])):
        raise ValueError(f"sample {sample.token}: a 3-D augmentation ran after LoadBEVSegmentation "
                         f"(flow {aug.get('flow')}); move LoadBEVSegmentation after the augmentations")
