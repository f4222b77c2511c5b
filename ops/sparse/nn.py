"""Feature-wise sparse layers and the SparseSequential container, as in spconv 2.x.

:class:`SparseSequential` hands sparse modules (:class:`~.modules.SparseModule`, our
:class:`SparseBatchNorm` / :class:`SparseReLU`, nested SparseSequentials) the SparseTensor
and applies any other ``nn.Module`` (``nn.BatchNorm1d``, ``nn.ReLU``, ...) to ``.features``,
so spconv-style stacks (``SubMConv3d -> nn.BatchNorm1d -> nn.ReLU``) run unchanged and their
state-dict keys are spconv's (``"0.weight"``, ``"1.running_mean"``, ...).  Dense outputs come
from :func:`.tensor.dense` / :func:`.tensor.to_bev`.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Union

from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from .gather_gemm_scatter import SparseTensor
from .modules import SparseModule
from .tensor import dense, to_bev

__all__ = ["SparseBatchNorm", "SparseReLU", "SparseSequential", "dense", "to_bev"]

SparseOrDense = Union[SparseTensor, Tensor]


def apply_to_features(module: nn.Module, x: SparseTensor) -> SparseTensor:
    """``module(x.features)`` on the same voxels.  Batch norms skip an empty tensor (N = 0):
    there is nothing to normalise and ``BatchNorm1d`` would raise in training mode."""
    if x.features.shape[0] == 0 and isinstance(module, _BatchNorm):
        return x
    return x.replace(module(x.features))


class SparseBatchNorm(nn.BatchNorm1d):
    """``nn.BatchNorm1d`` over the (N, C) features of a SparseTensor (or of a plain tensor)."""

    def forward(self, x: SparseOrDense) -> SparseOrDense:  # type: ignore[override]
        if isinstance(x, SparseTensor):
            if x.features.shape[0] == 0:
                return x  # as apply_to_features: nothing to normalise
            return x.replace(super().forward(x.features))
        return super().forward(x)


class SparseReLU(nn.ReLU):
    """``nn.ReLU`` on the features of a SparseTensor (or on a plain tensor)."""

    def forward(self, x: SparseOrDense) -> SparseOrDense:  # type: ignore[override]
        if isinstance(x, SparseTensor):
            return x.replace(super().forward(x.features))
        return super().forward(x)


_SPARSE_AWARE = (SparseModule, SparseBatchNorm, SparseReLU)


class SparseSequential(SparseModule):
    """spconv's SparseSequential: modules in order; positional, OrderedDict or keyword names."""

    def __init__(self, *args: nn.Module, **kwargs: nn.Module) -> None:
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for key, module in args[0].items():
                self.add_module(key, module)
        else:
            for idx, module in enumerate(args):
                self.add_module(str(idx), module)
        for key, module in kwargs.items():
            if key in self._modules:
                raise ValueError(f"SparseSequential: module name {key!r} given twice")
            self.add_module(key, module)

    def __len__(self) -> int:
        return len(self._modules)

    def __getitem__(self, idx: int) -> nn.Module:
        n = len(self)
        if not -n <= idx < n:
            raise IndexError(f"SparseSequential index {idx} out of range for {n} modules")
        return list(self._modules.values())[idx % n]  # type: ignore[return-value]

    def add(self, module: nn.Module, name: str | None = None) -> None:
        """Append a module (spconv API); the default name is its position."""
        name = str(len(self)) if name is None else name
        if name in self._modules:
            raise KeyError(f"SparseSequential: module name {name!r} exists")
        self.add_module(name, module)

    def forward(self, x: Any) -> Any:
        for module in self._modules.values():
            if isinstance(module, _SPARSE_AWARE) or not isinstance(x, SparseTensor):
                x = module(x)
            else:
                x = apply_to_features(module, x)
        return x
