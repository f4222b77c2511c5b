"""Backend-neutral sparse building blocks of mmdet3d: ``make_sparse_convmodule``,
``SparseBasicBlock`` and the container they live in.

Conv layers come from :func:`perception_ops.sparse.make_sparse_module` (``native`` or
``spconv``); containers and blocks are ours and work on either tensor type, so the state-dict
keys are mmdet3d's on both backends (``conv_input.0.weight``, ``...conv1.weight``,
``...bn1.running_mean``) and weights move between backends unchanged.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping, Sequence

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from perception_ops.sparse import make_sparse_module, replace_features

NORM_LAYERS: Mapping[str, type[nn.Module]] = MappingProxyType({
    "BN1d": nn.BatchNorm1d, "BN": nn.BatchNorm1d, "SyncBN": nn.SyncBatchNorm})
"""``norm_cfg['type']`` -> class, as mmcv's ``build_norm_layer`` resolves them for 1-D input."""
FEATURE_WISE = (_BatchNorm, nn.ReLU, nn.Identity)
CONV_ORDER = ("conv", "norm", "act")


def build_norm(norm_cfg: Mapping[str, Any], channels: int) -> nn.Module:
    """BatchNorm of ``channels`` features from an mmcv-style ``norm_cfg``."""
    cfg = dict(norm_cfg)
    kind = cfg.pop("type", None)
    if kind not in NORM_LAYERS:
        raise ValueError(f"norm_cfg type must be one of {sorted(NORM_LAYERS)}, got {kind!r}")
    cfg.pop("requires_grad", None)
    return NORM_LAYERS[kind](channels, **cfg)


def apply_feature_wise(module: nn.Module, x: Any) -> Any:
    """``module`` on the (N, C) features of a sparse tensor of either backend (BN skips N=0)."""
    if x.features.shape[0] == 0 and isinstance(module, _BatchNorm):
        return x
    return replace_features(x, module(x.features))


class SparseStack(nn.Sequential):
    """``nn.Sequential`` over sparse tensors of either backend: BN / ReLU act on features,
    every other module receives the tensor (spconv's SparseSequential semantics)."""

    def forward(self, x: Any) -> Any:  # type: ignore[override]
        for module in self:
            x = apply_feature_wise(module, x) if isinstance(module, FEATURE_WISE) else module(x)
        return x


def make_sparse_convmodule(in_channels: int, out_channels: int, kernel_size: Any,
                           indice_key: str, stride: Any = 1, padding: Any = 0,
                           conv_type: str = "SubMConv3d",
                           norm_cfg: Mapping[str, Any] | None = None,
                           order: Sequence[str] = CONV_ORDER,
                           backend: str = "native") -> SparseStack:
    """mmdet3d's ``make_sparse_convmodule``: conv (no bias) / norm / ReLU in ``order``."""
    if "conv" not in order or len(set(order)) != len(order) or not set(order) <= set(CONV_ORDER):
        raise ValueError(f"order must list 'conv' and optionally 'norm', 'act' (each once), "
                         f"got {tuple(order)}")
    layers: list[nn.Module] = []
    for name in order:
        if name == "conv":
            if conv_type == "SparseInverseConv3d":
                conv = make_sparse_module(conv_type, in_channels, out_channels, kernel_size,
                                          indice_key=indice_key, bias=False, backend=backend)
            else:
                conv = make_sparse_module(conv_type, in_channels, out_channels, kernel_size,
                                          stride=stride, padding=padding, bias=False,
                                          indice_key=indice_key, backend=backend)
            layers.append(conv)
        elif name == "norm" and norm_cfg is not None:
            layers.append(build_norm(norm_cfg, out_channels))
        elif name == "act":
            layers.append(nn.ReLU(inplace=True))
    return SparseStack(*layers)


class SparseBasicBlock(nn.Module):
    """mmdet3d's SparseBasicBlock: SubM-BN-ReLU-SubM-BN, plus the input, then ReLU."""

    def __init__(self, inplanes: int, planes: int, norm_cfg: Mapping[str, Any],
                 indice_key: str | None = None, backend: str = "native") -> None:
        super().__init__()
        if inplanes != planes:
            raise ValueError(f"SparseBasicBlock without downsample needs inplanes == planes, "
                             f"got {inplanes} and {planes}")
        self.conv1 = make_sparse_module("SubMConv3d", inplanes, planes, 3, padding=1,
                                        bias=False, indice_key=indice_key, backend=backend)
        self.bn1 = build_norm(norm_cfg, planes)
        self.conv2 = make_sparse_module("SubMConv3d", planes, planes, 3, padding=1,
                                        bias=False, indice_key=indice_key, backend=backend)
        self.bn2 = build_norm(norm_cfg, planes)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Any) -> Any:
        identity = x.features
        out = apply_feature_wise(self.bn1, self.conv1(x))
        out = replace_features(out, self.relu(out.features))
        out = apply_feature_wise(self.bn2, self.conv2(out))
        return replace_features(out, self.relu(out.features + identity))
