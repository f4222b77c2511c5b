"""HRMapNet's BEV feature aggregation: fuse the historical-map prior into the BEV features.

``bev (B, C, H, W)`` and the prior raster ``(B, K, h, w)`` (the global map cropped to the ego BEV,
any resolution: it is resampled to ``(H, W)``) -> ``bev + fuse(concat(bev, encode(prior)))``.
The last convolution starts at zero, so a freshly added module leaves a trained detector's
features unchanged until it learns to use the prior.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...registry import MODELS


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, max(1, channels // 4)), channels)


@MODELS.register_module()
class HRMapBEVAggregation(nn.Module):
    """``bev + conv(concat(bev, conv(prior)))`` (module doc)."""

    def __init__(self, bev_channels: int, prior_channels: int, prior_embed: int = 32,
                 hidden_channels: int | None = None) -> None:
        super().__init__()
        hidden = hidden_channels or bev_channels
        self.bev_channels, self.prior_channels = bev_channels, prior_channels
        self.prior_encoder = nn.Sequential(
            nn.Conv2d(prior_channels, prior_embed, 3, padding=1, bias=False), _norm(prior_embed), nn.ReLU(inplace=True),
            nn.Conv2d(prior_embed, prior_embed, 3, padding=1, bias=False), _norm(prior_embed), nn.ReLU(inplace=True))
        self.fuse = nn.Sequential(
            nn.Conv2d(bev_channels + prior_embed, hidden, 3, padding=1, bias=False), _norm(hidden),
            nn.ReLU(inplace=True), nn.Conv2d(hidden, bev_channels, 1))
        nn.init.zeros_(self.fuse[-1].weight)
        nn.init.zeros_(self.fuse[-1].bias)

    def forward(self, bev: Tensor, prior: Tensor) -> Tensor:
        """The aggregated BEV map, same shape as ``bev``."""
        if bev.ndim != 4 or bev.shape[1] != self.bev_channels:
            raise ValueError(f"HRMapBEVAggregation: bev must be (B, {self.bev_channels}, H, W), got {tuple(bev.shape)}")
        if prior.ndim != 4 or prior.shape[0] != bev.shape[0] or prior.shape[1] != self.prior_channels:
            raise ValueError(f"HRMapBEVAggregation: prior must be ({bev.shape[0]}, {self.prior_channels}, h, w), "
                             f"got {tuple(prior.shape)}")
        prior = prior.to(bev)
        if prior.shape[-2:] != bev.shape[-2:]:
            prior = F.interpolate(prior, size=bev.shape[-2:], mode="bilinear", align_corners=False)
        return bev + self.fuse(torch.cat([bev, self.prior_encoder(prior)], dim=1))
