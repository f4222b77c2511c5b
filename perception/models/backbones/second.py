"""SECOND: mmdet3d's 2-D BEV backbone (a few stages of 3x3 conv-BN-ReLU, each may stride).

Arguments, layer structure and state-dict keys (``blocks.{i}.{k}.weight``) are mmdet3d 1.x's
``SECOND``, so its checkpoints load.  The mmcv-style layer builders it uses live in
:mod:`perception.models.layers.builders` (re-exported here for older imports).

``forward(x (B, C_in, H, W))`` returns one map per stage, ``(B, out_channels[i], H_i, W_i)``
with ``H_i = H / prod(layer_strides[:i + 1])``; rows stay +y and columns +x (the stack's BEV
convention), since every layer is a plain 2-D convolution.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from mmengine.model import BaseModule
from torch import Tensor, nn

from ...registry import MODELS
from ..layers.builders import (CONV_LAYERS_2D, DEFAULT_CONV_CFG, DEFAULT_NORM_CFG, NORM_LAYERS_2D,  # noqa: F401
                               UPSAMPLE_LAYERS_2D, build_conv_layer, build_norm_layer,
                               build_upsample_layer)

def _check_lengths(name: str, **lists: Sequence[Any]) -> None:
    lengths = {key: len(value) for key, value in lists.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{name}: {', '.join(lengths)} must have the same length, got {lengths}")


@MODELS.register_module()
class SECOND(BaseModule):
    """mmdet3d ``SECOND`` backbone (module doc); defaults are mmdet3d's."""

    def __init__(self, in_channels: int = 128, out_channels: Sequence[int] = (128, 128, 256),
                 layer_nums: Sequence[int] = (3, 5, 5), layer_strides: Sequence[int] = (2, 2, 2),
                 norm_cfg: dict | None = None, conv_cfg: dict | None = None,
                 init_cfg: dict | list[dict] | None = None) -> None:
        super().__init__(init_cfg=init_cfg if init_cfg is not None
                         else dict(type="Kaiming", layer="Conv2d"))
        _check_lengths("SECOND", out_channels=out_channels, layer_nums=layer_nums,
                       layer_strides=layer_strides)
        if any(int(s) < 1 for s in layer_strides) or any(int(n) < 0 for n in layer_nums):
            raise ValueError(f"SECOND: layer_strides must be >= 1 and layer_nums >= 0, got "
                             f"{list(layer_strides)} and {list(layer_nums)}")
        norm_cfg = dict(DEFAULT_NORM_CFG if norm_cfg is None else norm_cfg)
        conv_cfg = dict(DEFAULT_CONV_CFG if conv_cfg is None else conv_cfg)
        self.in_channels, self.out_channels = int(in_channels), [int(c) for c in out_channels]
        self.layer_strides = [int(s) for s in layer_strides]
        stage_inputs = [self.in_channels, *self.out_channels[:-1]]
        self.blocks = nn.ModuleList(
            self._stage(c_in, c_out, stride, int(num), conv_cfg, norm_cfg)
            for c_in, c_out, stride, num in zip(stage_inputs, self.out_channels,
                                                self.layer_strides, layer_nums))

    @staticmethod
    def _stage(c_in: int, c_out: int, stride: int, num: int, conv_cfg: dict,
               norm_cfg: dict) -> nn.Sequential:
        """One strided conv-norm-ReLU followed by ``num`` unstrided ones."""
        layers: list[nn.Module] = []
        for k in range(num + 1):
            layers += [build_conv_layer(conv_cfg, c_in if k == 0 else c_out, c_out, 3,
                                        stride=stride if k == 0 else 1, padding=1),
                       build_norm_layer(norm_cfg, c_out), nn.ReLU(inplace=True)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """Output of every stage (module doc)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"SECOND: input must be (B, {self.in_channels}, H, W), got "
                             f"{tuple(x.shape)}")
        outs = []
        for block in self.blocks:
            x = block(x)
            outs.append(x)
        return tuple(outs)
