"""SECONDFPN: mmdet3d's neck bringing SECOND's stage maps to one resolution and concatenating.

Arguments and state-dict keys (``deblocks.{i}.0.weight`` conv / deconv, ``.1`` norm) are mmdet3d
1.x's ``SECONDFPN``.  Stage ``i`` is resampled by ``upsample_strides[i]``: a stride > 1 is a
transposed conv (kernel = stride); a stride < 1 is a strided conv by ``round(1 / stride)``; a
stride of exactly 1 is a 1x1 conv when ``use_conv_for_no_stride`` else a 1x1 transposed conv
(mmdet3d's rule, kept so checkpoints load).  ``forward`` returns ``[concat]``, a one-element
list as mmdet3d heads expect.
"""
from __future__ import annotations

from typing import Sequence

from mmengine.model import BaseModule
from torch import Tensor, cat, nn

from ...registry import MODELS
from ..backbones.second import (DEFAULT_CONV_CFG, DEFAULT_NORM_CFG, build_conv_layer,
                                build_norm_layer, build_upsample_layer)


@MODELS.register_module()
class SECONDFPN(BaseModule):
    """mmdet3d ``SECONDFPN`` neck (module doc); defaults are mmdet3d's."""

    def __init__(self, in_channels: Sequence[int] = (128, 128, 256),
                 out_channels: Sequence[int] = (256, 256, 256),
                 upsample_strides: Sequence[float] = (1, 2, 4),
                 norm_cfg: dict | None = None, upsample_cfg: dict | None = None,
                 conv_cfg: dict | None = None, use_conv_for_no_stride: bool = False,
                 init_cfg: dict | list[dict] | None = None) -> None:
        super().__init__(init_cfg=init_cfg if init_cfg is not None else [
            dict(type="Kaiming", layer="ConvTranspose2d"),
            dict(type="Constant", layer="NaiveSyncBatchNorm2d", val=1.0)])
        lengths = {"in_channels": len(in_channels), "out_channels": len(out_channels),
                   "upsample_strides": len(upsample_strides)}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"SECONDFPN: in_channels, out_channels and upsample_strides must "
                             f"have the same length, got {lengths}")
        if any(not float(s) > 0 for s in upsample_strides):
            raise ValueError(f"SECONDFPN: upsample_strides must be > 0, got {list(upsample_strides)}")
        self.in_channels, self.out_channels = [int(c) for c in in_channels], [int(c) for c in out_channels]
        self.upsample_strides = [float(s) for s in upsample_strides]
        self.use_conv_for_no_stride = bool(use_conv_for_no_stride)
        norm_cfg = dict(DEFAULT_NORM_CFG if norm_cfg is None else norm_cfg)
        upsample_cfg = dict(dict(type="deconv", bias=False) if upsample_cfg is None else upsample_cfg)
        conv_cfg = dict(DEFAULT_CONV_CFG if conv_cfg is None else conv_cfg)
        self.deblocks = nn.ModuleList(
            nn.Sequential(self._resample(c_in, c_out, stride, upsample_cfg, conv_cfg),
                          build_norm_layer(norm_cfg, c_out), nn.ReLU(inplace=True))
            for c_in, c_out, stride in zip(self.in_channels, self.out_channels,
                                           self.upsample_strides))

    def _resample(self, c_in: int, c_out: int, stride: float, upsample_cfg: dict,
                  conv_cfg: dict) -> nn.Module:
        """Transposed conv (stride >= 1) or strided conv (stride < 1 / 1 with the conv flag)."""
        if stride > 1 or (stride == 1 and not self.use_conv_for_no_stride):
            if stride != int(stride):
                raise ValueError(f"SECONDFPN: an upsample stride > 1 must be an integer, got {stride}")
            return build_upsample_layer(upsample_cfg, c_in, c_out, int(stride), int(stride))
        down = int(round(1 / stride))
        return build_conv_layer(conv_cfg, c_in, c_out, down, stride=down)

    def forward(self, x: Sequence[Tensor]) -> list[Tensor]:
        """``[cat(deblock_i(x_i))]`` along channels (module doc)."""
        if len(x) != len(self.deblocks):
            raise ValueError(f"SECONDFPN: expected {len(self.deblocks)} input maps, got {len(x)}")
        ups = [deblock(feat) for deblock, feat in zip(self.deblocks, x)]
        sizes = {tuple(u.shape[-2:]) for u in ups}
        if len(sizes) != 1:
            raise ValueError(f"SECONDFPN: resampled maps differ in size {sorted(sizes)}; check "
                             f"upsample_strides {self.upsample_strides} against the backbone strides")
        return [ups[0] if len(ups) == 1 else cat(ups, dim=1)]
