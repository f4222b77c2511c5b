"""SECOND: mmdet3d's 2-D BEV backbone (a few stages of 3x3 conv-BN-ReLU, each may stride).

Arguments, layer structure and state-dict keys (``blocks.{i}.{k}.weight``) are mmdet3d 1.x's
``SECOND``, so its checkpoints load.  mmcv is not a dependency of the stack, so the small
mmcv-style layer builders used here and by :class:`~perception.models.necks.SECONDFPN`
(``build_conv_layer``, ``build_norm_layer``, ``build_upsample_layer``) live in this module.

``forward(x (B, C_in, H, W))`` returns one map per stage, ``(B, out_channels[i], H_i, W_i)``
with ``H_i = H / prod(layer_strides[:i + 1])``; rows stay +y and columns +x (the stack's BEV
convention), since every layer is a plain 2-D convolution.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

from mmengine.model import BaseModule
from torch import Tensor, nn

from ...registry import MODELS

DEFAULT_NORM_CFG: Mapping[str, Any] = MappingProxyType(dict(type="BN", eps=1e-3, momentum=0.01))
DEFAULT_CONV_CFG: Mapping[str, Any] = MappingProxyType(dict(type="Conv2d", bias=False))


def _batch_norm(cls: type[nn.Module]) -> Callable[..., nn.Module]:
    return lambda channels, **kw: cls(channels, **kw)


NORM_LAYERS_2D: Mapping[str, Callable[..., nn.Module]] = MappingProxyType({
    "BN": _batch_norm(nn.BatchNorm2d), "BN2d": _batch_norm(nn.BatchNorm2d),
    "SyncBN": _batch_norm(nn.SyncBatchNorm),
    "GN": lambda channels, **kw: nn.GroupNorm(num_channels=channels, **kw),
})
"""``norm_cfg['type']`` -> factory ``(channels, **kwargs)``, as mmcv's ``build_norm_layer``."""
CONV_LAYERS_2D: Mapping[str, type[nn.Module]] = MappingProxyType({
    "Conv2d": nn.Conv2d, "Conv": nn.Conv2d})
"""``conv_cfg['type']`` -> class, as mmcv's ``build_conv_layer``."""
UPSAMPLE_LAYERS_2D: Mapping[str, type[nn.Module]] = MappingProxyType({
    "deconv": nn.ConvTranspose2d, "ConvTranspose2d": nn.ConvTranspose2d})
"""``upsample_cfg['type']`` -> class, as mmcv's ``build_upsample_layer`` (learned only)."""


def _split(cfg: Mapping[str, Any] | None, default: Mapping[str, Any], table: Mapping[str, Any],
           what: str) -> tuple[Any, dict[str, Any]]:
    options = dict(default if cfg is None else cfg)
    kind = options.pop("type", None)
    if kind not in table:
        raise ValueError(f"{what} type must be one of {sorted(table)}, got {kind!r} (in {dict(cfg or {})})")
    return table[kind], options


def build_conv_layer(conv_cfg: Mapping[str, Any] | None, in_channels: int, out_channels: int,
                     kernel_size: int, **kwargs: Any) -> nn.Module:
    """2-D conv from an mmcv-style ``conv_cfg`` (``None``: ``Conv2d`` with a bias, as mmcv)."""
    cls, options = _split(conv_cfg, dict(type="Conv2d"), CONV_LAYERS_2D, "conv_cfg")
    return cls(in_channels, out_channels, kernel_size, **{**options, **kwargs})


def build_upsample_layer(upsample_cfg: Mapping[str, Any] | None, in_channels: int,
                         out_channels: int, kernel_size: int, stride: int) -> nn.Module:
    """Transposed conv from an mmcv-style ``upsample_cfg`` (``deconv``)."""
    cls, options = _split(upsample_cfg, dict(type="deconv"), UPSAMPLE_LAYERS_2D, "upsample_cfg")
    return cls(in_channels, out_channels, kernel_size, stride=stride, **options)


def build_norm_layer(norm_cfg: Mapping[str, Any] | None, channels: int) -> nn.Module:
    """2-D norm layer from an mmcv-style ``norm_cfg`` (``requires_grad`` honoured)."""
    factory, options = _split(norm_cfg, DEFAULT_NORM_CFG, NORM_LAYERS_2D, "norm_cfg")
    requires_grad = bool(options.pop("requires_grad", True))
    layer = factory(channels, **options)
    for parameter in layer.parameters():
        parameter.requires_grad = requires_grad
    return layer


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
