"""Groups of sparse conv layers that the autotuner configures together.

Layers share a group when they have the same (kind, tensor stride, kernel size, stride,
dilation, in / out channels): same work per voxel on the same voxel set, so the same
dataflow wins (TorchSparse++'s group-wise tuning).  The tensor stride is only known at run
time, so :func:`discover_groups` records it with forward hooks during one pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from ..modules import _SparseConvNd


@dataclass(frozen=True)
class GroupKey:
    """What makes two conv layers interchangeable for tuning."""

    kind: str  # "subm" | "conv" | "inverse"
    tensor_stride: tuple[int, int, int]
    kernel_size: tuple[int, int, int]
    stride: tuple[int, int, int]
    dilation: tuple[int, int, int]
    in_channels: int
    out_channels: int

    def label(self) -> str:
        """Short text, e.g. ``subm k3x3x3 s1x1x1 ts2x2x2 32->32``."""
        def t(v: tuple[int, ...]) -> str:
            return "x".join(str(i) for i in v)
        text = (f"{self.kind} k{t(self.kernel_size)} s{t(self.stride)} "
                f"ts{t(self.tensor_stride)} {self.in_channels}->{self.out_channels}")
        return text + (f" d{t(self.dilation)}" if self.dilation != (1, 1, 1) else "")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GroupKey":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@dataclass
class Group:
    """The layers (qualified module names) of one key, in call order."""

    key: GroupKey
    modules: list[str] = field(default_factory=list)
    max_rows: int = 0  # most input or output voxels seen in one call (for pruning)
    spconv_ok: bool = True  # False: an inverse conv, or a conv an inverse conv undoes


def conv_modules(model: nn.Module) -> dict[str, _SparseConvNd]:
    """Our sparse conv layers of ``model`` by qualified name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, _SparseConvNd)}


def _kind(m: _SparseConvNd) -> str:
    return "inverse" if m.inverse else "subm" if m.subm else "conv"


def discover_groups(model: nn.Module, run: Callable[[], Any]) -> list[Group]:
    """Run ``run()`` once (no grad) with hooks and group the conv layers that were called."""
    convs = conv_modules(model)
    inverse_keys = {m.indice_key for m in convs.values() if m.inverse}
    groups: dict[GroupKey, Group] = {}
    handles = []

    def hook(name: str, m: _SparseConvNd) -> Callable[..., None]:
        def record(_mod: nn.Module, args: tuple[Any, ...], out: Any) -> None:
            x = args[0]
            key = GroupKey(_kind(m), tuple(x.tensor_stride), m.kernel_size, m.stride,
                           m.dilation, m.in_channels, m.out_channels)
            group = groups.setdefault(key, Group(key))
            if name not in group.modules:
                group.modules.append(name)
            group.max_rows = max(group.max_rows, x.features.shape[0], out.features.shape[0])
            if m.inverse or (m.indice_key is not None and m.indice_key in inverse_keys):
                group.spconv_ok = False
        return record

    try:
        for name, m in convs.items():
            handles.append(m.register_forward_hook(hook(name, m)))
        with torch.no_grad():
            run()
    finally:
        for h in handles:
            h.remove()
    seen: dict[str, GroupKey] = {}
    for group in groups.values():
        for name in group.modules:
            if name in seen:
                raise ValueError(f"autotune: layer {name!r} was called with two tensor strides "
                                 f"({seen[name].label()} and {group.key.label()}); a layer must "
                                 f"belong to one group")
            seen[name] = group.key
    return list(groups.values())
