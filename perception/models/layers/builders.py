"""mmcv-style 2-D layer builders and the conv-norm-ReLU block, shared by backbones, necks and heads.

mmcv is not a dependency of the stack; these cover what its ``build_conv_layer``,
``build_norm_layer``, ``build_upsample_layer`` and ``ConvModule`` do for our models, with the
same config dicts and state-dict names (``conv``, ``bn``, ``activate``), so mmdet3d checkpoints load.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Any, Callable, Mapping

from torch import Tensor, nn

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


def check_conv_cfg(conv_cfg: Mapping[str, Any] | None) -> None:
    """Only plain ``Conv2d`` layers are supported (mmdet3d's default ``conv_cfg``)."""
    if conv_cfg is not None and dict(conv_cfg).get("type", "Conv2d") not in CONV_LAYERS_2D:
        raise ValueError(f"conv_cfg must be None or dict(type='Conv2d'), got {dict(conv_cfg)}")


class ConvModule2d(nn.Module):
    """``Conv2d -> norm -> ReLU`` (mmcv ``ConvModule`` with ``bias='auto'``: no conv bias
    when a norm follows)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 norm_cfg: Mapping[str, Any] | None = None, bias: bool | str = "auto") -> None:
        super().__init__()
        use_bias = norm_cfg is None if bias == "auto" else bool(bias)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2,
                              bias=use_bias)
        self.bn = build_norm_layer(norm_cfg, out_channels) if norm_cfg is not None else None
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        """Conv, norm (if any), ReLU."""
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.activate(x)
