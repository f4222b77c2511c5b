"""Fuse BEV maps of several modalities on one grid: ``ConvFuser`` and ``AddFuser``.

Both take a list of ``(B, C_i, H, W)`` maps in a fixed order (BEVFusion: camera, then LiDAR)
that must share ``(B, H, W)``: the camera view transform and the LiDAR encoder are configured
on the same BEV grid (conventions: rows +y, columns +x).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from ...registry import MODELS
from ..necks.lss_fpn import ConvNormAct


def check_maps(owner: str, inputs: Sequence[Tensor], in_channels: Sequence[int]) -> None:
    """Raise ``ValueError`` unless ``inputs`` are 4-D maps with ``in_channels`` on one grid."""
    if len(inputs) != len(in_channels):
        raise ValueError(f"{owner}: expected {len(in_channels)} BEV maps, got {len(inputs)}")
    shapes = [tuple(x.shape) for x in inputs]
    for x, c in zip(inputs, in_channels):
        if x.dim() != 4 or x.shape[1] != c:
            raise ValueError(f"{owner}: BEV maps must have channels {list(in_channels)}, got shapes {shapes}")
    if len({(s[0],) + s[2:] for s in shapes}) != 1:
        raise ValueError(f"{owner}: BEV maps must share (B, H, W) (one BEV grid), got shapes {shapes}")


@MODELS.register_module()
class ConvFuser(nn.Module):
    """Concatenate along channels, then ``3x3 conv -> BN -> ReLU`` to ``out_channels``."""

    def __init__(self, in_channels: Sequence[int], out_channels: int,
                 norm_cfg: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.in_channels, self.out_channels = [int(c) for c in in_channels], int(out_channels)
        self.fuse = ConvNormAct(sum(self.in_channels), self.out_channels, 3,
                                dict(type="BN2d") if norm_cfg is None else norm_cfg)

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        check_maps(type(self).__name__, inputs, self.in_channels)
        return self.fuse(torch.cat(list(inputs), dim=1))


@MODELS.register_module()
class AddFuser(nn.Module):
    """Project each map to ``out_channels`` (``3x3 conv -> BN -> ReLU``) and average them.

    In training each modality is dropped with probability ``dropout`` (never all of them), so
    the decoder learns to work when a sensor is missing; the mean is over the kept maps.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int, dropout: float = 0.0,
                 norm_cfg: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"AddFuser: dropout must be in [0, 1), got {dropout}")
        self.in_channels, self.out_channels, self.dropout = [int(c) for c in in_channels], int(out_channels), dropout
        norm = dict(type="BN2d") if norm_cfg is None else norm_cfg
        self.transforms = nn.ModuleList(ConvNormAct(c, self.out_channels, 3, norm) for c in self.in_channels)

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        check_maps(type(self).__name__, inputs, self.in_channels)
        keep = [True] * len(inputs)
        if self.training and self.dropout > 0:
            keep = (torch.rand(len(inputs)) >= self.dropout).tolist()
            if not any(keep):
                keep[int(torch.randint(len(inputs), ()).item())] = True
        maps = [t(x) for t, x, k in zip(self.transforms, inputs, keep) if k]
        return torch.stack(maps).mean(dim=0)
