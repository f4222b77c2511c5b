"""ResNet-18/34/50/101/152 image backbone with mmdetection's names and options.

Parameter names follow mmdet's ``ResNet`` (and torchvision's, which uses the same ones):
``conv1``, ``bn1``, ``layer1`` .. ``layer4`` of ``BasicBlock`` / ``Bottleneck`` with
``conv1..3``, ``bn1..3`` and ``downsample.0`` (1x1 conv) / ``downsample.1`` (norm), so an
ImageNet checkpoint of either library loads by name (torchvision's ``fc.*`` is simply not
used: load with ``strict=False`` or drop it).  Options as mmdet: ``out_indices`` (stages
returned, 0-based), ``frozen_stages`` (stem and the first stages get no gradient and stay in
eval mode), ``norm_eval`` (every BatchNorm in eval mode while training, the usual setting when
fine-tuning with small batches), ``style='pytorch'`` (stride on the 3x3 conv of a bottleneck;
``'caffe'`` puts it on the first 1x1) and ``with_cp`` (gradient checkpointing per block).
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping, Sequence

import torch.utils.checkpoint as cp
from mmengine.model import BaseModule
from torch import Tensor, nn

from ...registry import MODELS
from .second import build_norm_layer

RESNET_NORM_CFG: Mapping[str, Any] = MappingProxyType(dict(type="BN", requires_grad=True))


def conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 style: str = "pytorch", with_cp: bool = False,
                 norm_cfg: Mapping[str, Any] = RESNET_NORM_CFG) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = build_norm_layer(norm_cfg, planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = build_norm_layer(norm_cfg, planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.with_cp = with_cp

    def _inner(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return out + identity

    def forward(self, x: Tensor) -> Tensor:
        out = cp.checkpoint(self._inner, x, use_reentrant=False) if self.with_cp and x.requires_grad \
            else self._inner(x)
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 (x4 channels) with a residual connection (ResNet-50/101/152)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 style: str = "pytorch", with_cp: bool = False,
                 norm_cfg: Mapping[str, Any] = RESNET_NORM_CFG) -> None:
        super().__init__()
        stride1, stride2 = (1, stride) if style == "pytorch" else (stride, 1)
        self.conv1 = nn.Conv2d(inplanes, planes, 1, stride=stride1, bias=False)
        self.bn1 = build_norm_layer(norm_cfg, planes)
        self.conv2 = conv3x3(planes, planes, stride2)
        self.bn2 = build_norm_layer(norm_cfg, planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = build_norm_layer(norm_cfg, planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.with_cp = with_cp

    def _inner(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return out + identity

    def forward(self, x: Tensor) -> Tensor:
        out = cp.checkpoint(self._inner, x, use_reentrant=False) if self.with_cp and x.requires_grad \
            else self._inner(x)
        return self.relu(out)


ARCH_SETTINGS: Mapping[int, tuple[type[nn.Module], tuple[int, int, int, int]]] = MappingProxyType({
    18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)), 50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)), 152: (Bottleneck, (3, 8, 36, 3))})
"""depth -> (block class, blocks per stage), as mmdet and torchvision."""


@MODELS.register_module()
class ResNet(BaseModule):
    """ResNet returning the feature maps of ``out_indices`` (module doc).

    Stage ``i`` has stride ``2 ** (i + 2)`` and ``64 * 2**i * expansion`` channels (ResNet-50:
    256, 512, 1024, 2048 at strides 4, 8, 16, 32).
    """

    def __init__(self, depth: int = 50, in_channels: int = 3, num_stages: int = 4,
                 out_indices: Sequence[int] = (0, 1, 2, 3), strides: Sequence[int] = (1, 2, 2, 2),
                 style: str = "pytorch", frozen_stages: int = -1,
                 norm_cfg: Mapping[str, Any] | None = None, norm_eval: bool = True, with_cp: bool = False,
                 zero_init_residual: bool = True, init_cfg: dict | list[dict] | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if depth not in ARCH_SETTINGS:
            raise ValueError(f"ResNet: depth must be one of {sorted(ARCH_SETTINGS)}, got {depth}")
        if not 1 <= num_stages <= 4 or len(strides) < num_stages:
            raise ValueError(f"ResNet: num_stages must be 1..4 with a stride per stage, got {num_stages}, {strides}")
        if not out_indices or max(out_indices) >= num_stages or min(out_indices) < 0:
            raise ValueError(f"ResNet: out_indices {list(out_indices)} must lie in [0, {num_stages})")
        if style not in ("pytorch", "caffe"):
            raise ValueError(f"ResNet: style must be 'pytorch' or 'caffe', got {style!r}")
        block, stage_blocks = ARCH_SETTINGS[depth]
        norm_cfg = dict(RESNET_NORM_CFG if norm_cfg is None else norm_cfg)
        self.depth, self.out_indices = depth, tuple(int(i) for i in out_indices)
        self.frozen_stages, self.norm_eval, self.zero_init_residual = frozen_stages, norm_eval, zero_init_residual
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = build_norm_layer(norm_cfg, 64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes, self.res_layers = 64, []
        for i in range(num_stages):
            planes = 64 * 2 ** i
            layers, inplanes = self._make_layer(block, inplanes, planes, stage_blocks[i], int(strides[i]),
                                                style, with_cp, norm_cfg)
            name = f"layer{i + 1}"
            self.add_module(name, layers)
            self.res_layers.append(name)
        self.out_channels = tuple(64 * 2 ** i * block.expansion for i in self.out_indices)
        self._freeze_stages()
        if init_cfg is None:
            self._default_init()

    @staticmethod
    def _make_layer(block: type[nn.Module], inplanes: int, planes: int, blocks: int, stride: int, style: str,
                    with_cp: bool, norm_cfg: Mapping[str, Any]) -> tuple[nn.Sequential, int]:
        downsample = None
        if stride != 1 or inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                build_norm_layer(norm_cfg, planes * block.expansion))
        layers = [block(inplanes, planes, stride, downsample, style, with_cp, norm_cfg)]
        inplanes = planes * block.expansion
        layers += [block(inplanes, planes, 1, None, style, with_cp, norm_cfg) for _ in range(1, blocks)]
        return nn.Sequential(*layers), inplanes

    def _default_init(self) -> None:
        """Kaiming convs, unit norms; the last norm of each residual branch at zero (mmdet's
        ``zero_init_residual``), so every block starts as the identity."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm, nn.SyncBatchNorm)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if self.zero_init_residual:
            for module in self.modules():
                last = getattr(module, "bn3", None) if isinstance(module, Bottleneck) else \
                    getattr(module, "bn2", None) if isinstance(module, BasicBlock) else None
                if isinstance(last, (nn.BatchNorm2d, nn.GroupNorm, nn.SyncBatchNorm)):
                    nn.init.zeros_(last.weight)

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        frozen: list[nn.Module] = [self.conv1, self.bn1]
        frozen += [getattr(self, f"layer{i}") for i in range(1, self.frozen_stages + 1)]
        for module in frozen:
            module.eval()
            for parameter in module.parameters():
                parameter.requires_grad = False

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """Feature maps ``(B, C_i, H / 2**(i+2), W / 2**(i+2))`` of the stages in ``out_indices``."""
        if x.dim() != 4:
            raise ValueError(f"ResNet expects images (B, C, H, W), got {tuple(x.shape)}")
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for i, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def train(self, mode: bool = True) -> "ResNet":
        """Train mode, keeping frozen stages and (``norm_eval``) every BatchNorm in eval mode."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self
