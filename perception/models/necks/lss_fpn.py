"""GeneralizedLSSFPN: BEVFusion's top-down FPN for the camera branch.

Unlike a classic FPN (add the upsampled coarser level), each level here *concatenates* the
upsampled coarser map with its own backbone map, then a 1x1 conv mixes them and a 3x3 conv
smooths: with ResNet-50 stages 2..4 (512, 1024, 2048 channels at strides 8, 16, 32) and
``out_channels=256`` the outputs are two 256-channel maps at strides 8 and 16; the view
transform lifts the stride-8 one (32 x 88 for a 256 x 704 input).  ``lateral_convs[i]`` /
``fpn_convs[i]`` keep BEVFusion's names (``.conv``, ``.bn``).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from ...registry import MODELS
from ..backbones.second import build_norm_layer


class ConvNormAct(nn.Module):
    """``Conv2d (no bias) -> norm -> ReLU`` with mmcv ``ConvModule``'s attribute names."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, norm_cfg: Mapping[str, Any] | None,
                 stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=kernel_size // 2,
                              bias=norm_cfg is None)
        self.bn = build_norm_layer(norm_cfg, c_out) if norm_cfg is not None else nn.Identity()
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.activate(self.bn(self.conv(x)))


@MODELS.register_module()
class GeneralizedLSSFPN(BaseModule):
    """Concatenating top-down FPN (module doc).

    Args:
        in_channels: channels of the backbone maps, finest first.
        out_channels: channels of every output.
        num_outs: number of outputs (``len(in_channels) - start_level - 1`` when the last
            input only feeds the level above it, BEVFusion's setting).
        start_level / end_level: the inputs used (``end_level=-1``: up to the last).
        upsample_cfg: :func:`torch.nn.functional.interpolate` options.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int, num_outs: int,
                 start_level: int = 0, end_level: int = -1,
                 norm_cfg: Mapping[str, Any] | None = None,
                 upsample_cfg: Mapping[str, Any] | None = None,
                 init_cfg: dict | list[dict] | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = [int(c) for c in in_channels]
        self.out_channels = int(out_channels)
        self.backbone_end_level = len(self.in_channels) if end_level == -1 else int(end_level)
        self.start_level = int(start_level)
        if not 0 <= self.start_level < self.backbone_end_level - 1 or self.backbone_end_level > len(self.in_channels):
            raise ValueError(f"GeneralizedLSSFPN: need at least two inputs between start_level {start_level} "
                             f"and end_level {end_level} of {len(self.in_channels)} in_channels")
        used = self.backbone_end_level - self.start_level - 1
        if num_outs != used:
            raise ValueError(f"GeneralizedLSSFPN: num_outs must be {used} for these levels, got {num_outs}")
        self.num_outs = num_outs
        self.upsample_cfg = dict(mode="bilinear", align_corners=False) if upsample_cfg is None \
            else dict(upsample_cfg)
        norm_cfg = dict(type="BN2d") if norm_cfg is None else dict(norm_cfg)
        self.lateral_convs = nn.ModuleList()
        self.fpn_convs = nn.ModuleList()
        for i in range(self.start_level, self.backbone_end_level - 1):
            coarser = self.in_channels[i + 1] if i == self.backbone_end_level - 2 else self.out_channels
            self.lateral_convs.append(ConvNormAct(self.in_channels[i] + coarser, self.out_channels, 1, norm_cfg))
            self.fpn_convs.append(ConvNormAct(self.out_channels, self.out_channels, 3, norm_cfg))

    def forward(self, inputs: Sequence[Tensor]) -> tuple[Tensor, ...]:
        """``num_outs`` maps of ``out_channels``, finest first (the strides of the inputs)."""
        if len(inputs) != len(self.in_channels):
            raise ValueError(f"GeneralizedLSSFPN: got {len(inputs)} inputs, in_channels has {len(self.in_channels)}")
        for i, (x, c) in enumerate(zip(inputs, self.in_channels)):
            if x.dim() != 4 or x.shape[1] != c:
                raise ValueError(f"GeneralizedLSSFPN: input {i} must be (B, {c}, H, W), got {tuple(x.shape)}")
        laterals = [inputs[i] for i in range(self.start_level, self.backbone_end_level)]
        for i in range(len(laterals) - 2, -1, -1):
            coarser = F.interpolate(laterals[i + 1], size=laterals[i].shape[2:], **self.upsample_cfg)
            laterals[i] = self.fpn_convs[i](self.lateral_convs[i](torch.cat([laterals[i], coarser], dim=1)))
        return tuple(laterals[: self.num_outs])
