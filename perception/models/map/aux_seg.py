"""Auxiliary BEV segmentation of the map ground truth (MapTRv2's dense auxiliary loss).

The Hungarian-matched point losses reach the BEV encoder only through the few cells the
matched queries sample, so early in training the encoder learns slowly where map elements
are.  This module predicts every class's rasterized ground truth (lines and polygon outlines
drawn ``half_width`` metres thick, :func:`.hrmap_rasterize.rasterize_instances`) on the BEV map
itself with a small conv branch and a sigmoid focal loss: a dense signal on every cell.
Training only; inference ignores it.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from ...structures.det_sample import DetSample
from ...structures.geometry import BEVGrid
from .hrmap_rasterize import rasterize_instances
from .losses import sigmoid_focal_loss


class AuxSegInputError(ValueError):
    """Raised for a BEV map whose cells are not square over ``bev_range``."""


class MapAuxSegmentation(nn.Module):
    """``loss(bev, samples, class_names) -> {"loss_seg": weight * focal}`` on the BEV grid of
    ``bev_range`` (module doc)."""

    def __init__(self, in_channels: int, num_classes: int, bev_range: Sequence[float], weight: float = 1.0,
                 half_width: float = 0.5, mid_channels: int = 64, alpha: float = 0.25, gamma: float = 2.0) -> None:
        super().__init__()
        self.bev_range = tuple(float(v) for v in bev_range)
        self.weight, self.half_width, self.alpha, self.gamma = float(weight), float(half_width), alpha, gamma
        self.net = nn.Sequential(nn.Conv2d(in_channels, mid_channels, 3, padding=1), nn.ReLU(inplace=True),
                                 nn.Conv2d(mid_channels, num_classes, 1))
        nn.init.constant_(self.net[-1].bias, -2.0)

    def grid(self, height: int, width: int) -> BEVGrid:
        """The BEV grid of a ``(H, W)`` map over ``bev_range`` (square cells required)."""
        x0, y0, x1, y1 = self.bev_range
        res_x, res_y = (x1 - x0) / width, (y1 - y0) / height
        if abs(res_x - res_y) > 1e-6 * max(res_x, res_y):
            raise AuxSegInputError(f"MapAuxSegmentation: a ({height}, {width}) BEV map over {self.bev_range} has "
                                   f"non-square cells ({res_x:.4f} x {res_y:.4f} m)")
        return BEVGrid((x0, x1), (y0, y1), res_x)

    def targets(self, samples: Sequence[DetSample], class_names: Sequence[str], height: int, width: int,
                device: torch.device) -> Tensor:
        """``(B, C, H, W)`` {0, 1} rasters of the samples' ``gt_map`` in the head's class order."""
        grid = self.grid(height, width)
        out = torch.zeros(len(samples), len(class_names), height, width)
        for b, sample in enumerate(samples):
            gt = sample.gt_map
            raster = rasterize_instances(gt, grid, self.half_width)
            for k, name in enumerate(gt.class_names):
                if name in class_names:
                    out[b, list(class_names).index(name)] = raster[k]
        return (out > 0).float().to(device)

    def loss(self, bev: Tensor, samples: Sequence[DetSample], class_names: Sequence[str]) -> dict[str, Tensor]:
        logits = self.net(bev)
        target = self.targets(samples, class_names, bev.shape[2], bev.shape[3], bev.device)
        focal = sigmoid_focal_loss(logits, target, self.alpha, self.gamma)
        norm = target.sum().clamp_min(1.0)
        return {"loss_seg": self.weight * focal.sum() / norm}
