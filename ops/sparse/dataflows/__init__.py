"""CPU dataflows of the sparse-conv matmul (TorchSparse++ style), forward and backward.

``native_implicit_gemm`` is the compiled C++ kernel (:mod:`.native`); the others are
torch-op compositions that run on any device and dtype.

``DATAFLOWS`` is a read-only table ``name -> DataflowSpec``: the raw forward kernel
``forward(features, weight, kmap_or_view, **params) -> Tensor`` (no checks, no autograd),
its tunable parameters (default, candidate values for an autotuner, validity check) and the
dtypes it supports.  :func:`sparse_matmul` validates everything and runs a dataflow through
:class:`.autograd.SparseMatmulFunction`, whose backward is explicit (input gradient by a
configurable dataflow on the transposed map; weight gradient by the native kernel or
grouped, ``WGRAD_PARAMS``).

Pass a :class:`.views.MapView` instead of the KernelMap to reuse its derived indices
(int64 pairs, neighbour map, mask order, transposed view) across calls.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from ..gather_gemm_scatter import check_weight
from ..kernel_map import KernelMap
from .autograd import SparseMatmulFunction, transposed_weight
from .fetch_on_demand import fetch_on_demand_forward
from .gather_gemm_scatter import gather_gemm_scatter_forward, grouped_weight_grad, plan_groups
from .implicit_gemm import implicit_gemm_forward
from .native import native_forward
from .views import MapView, as_view

ALL_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


@dataclass(frozen=True)
class ParamSpec:
    """One tunable parameter: default, values an autotuner should try, and what is valid."""

    default: Any
    candidates: tuple[Any, ...]
    kind: str  # "positive_int" | "non_negative_int" | "unit_float" | "bool"

    def check(self, dataflow: str, name: str, value: Any) -> None:
        """Raise ValueError naming the dataflow and parameter when ``value`` is invalid."""
        is_int = isinstance(value, int) and not isinstance(value, bool)
        ok = {"positive_int": is_int and value > 0,
              "non_negative_int": is_int and value >= 0,
              "unit_float": isinstance(value, (int, float)) and not isinstance(value, bool)
              and 0.0 <= value <= 1.0,
              "bool": isinstance(value, bool)}[self.kind]
        if not ok:
            raise ValueError(f"dataflow {dataflow!r}: parameter {name!r} must be a "
                             f"{self.kind.replace('_', ' ')}"
                             f"{' in [0, 1]' if self.kind == 'unit_float' else ''}, "
                             f"got {value!r}")


@dataclass(frozen=True)
class DataflowSpec:
    """A dataflow: name, raw forward kernel, parameter space and supported dtypes."""

    name: str
    forward: Callable[..., Tensor]
    params: Mapping[str, ParamSpec]
    dtypes: tuple[torch.dtype, ...]
    description: str

    def defaults(self) -> dict[str, Any]:
        return {k: p.default for k, p in self.params.items()}

    def space(self) -> dict[str, tuple[Any, ...]]:
        """Candidate values per parameter (the autotuner's search space)."""
        return {k: p.candidates for k, p in self.params.items()}

    def resolve(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults overridden by ``params``; unknown names or bad values raise ValueError."""
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            raise ValueError(f"dataflow {self.name!r} has no parameter(s) {unknown}; "
                             f"its parameters are {sorted(self.params)}")
        for name, value in params.items():
            self.params[name].check(self.name, name, value)
        return {**self.defaults(), **params}


_GROUPING = {
    "epsilon": ParamSpec(0.0, (0.0, 0.1, 0.25, 0.5), "unit_float"),
    "mm_thresh": ParamSpec(0, (0, 2048, 8192, 32768), "non_negative_int"),
}


def _table() -> Mapping[str, DataflowSpec]:
    specs = [
        DataflowSpec("gather_gemm_scatter", gather_gemm_scatter_forward,
                     MappingProxyType(dict(_GROUPING)), ALL_DTYPES,
                     "one gather, per-offset mm (similar offsets bmm-batched), one bag-sum"),
        DataflowSpec("fetch_on_demand", fetch_on_demand_forward,
                     MappingProxyType({"chunk_size": ParamSpec(
                         65536, (4096, 16384, 65536, 262144), "positive_int")}),
                     ALL_DTYPES, "output chunks: gather, per-offset mm, bag-sum; bounded buffers"),
        DataflowSpec("implicit_gemm", implicit_gemm_forward,
                     MappingProxyType({
                         "tile_rows": ParamSpec(1024, (256, 1024, 4096, 16384), "positive_int"),
                         "sorted": ParamSpec(True, (False, True), "bool")}),
                     ALL_DTYPES, "output-stationary tiles, one (tile, K*C_in) matmul each"),
        DataflowSpec("native_implicit_gemm", native_forward,
                     MappingProxyType({"block_rows": ParamSpec(
                         256, (64, 128, 256, 512), "positive_int")}),
                     ALL_DTYPES, "C++ output-stationary implicit GEMM: register-blocked "
                     "micro-kernel over cached row blocks (fp32/fp64 CPU; else fetch_on_demand)"),
    ]
    return MappingProxyType({s.name: s for s in specs})


DATAFLOWS: Mapping[str, DataflowSpec] = _table()
WGRAD_PARAMS: Mapping[str, ParamSpec] = MappingProxyType({
    **_GROUPING, "native": ParamSpec(True, (True, False), "bool")})
"""Weight gradient: ``native`` runs the C++ kernel where it can (fp32 / fp64 on the CPU; the
grouping parameters are then unused), else the grouped torch path with ``epsilon`` /
``mm_thresh``."""


def get_dataflow(name: str) -> DataflowSpec:
    """The spec named ``name``; an unknown name raises ValueError listing the known ones."""
    if not isinstance(name, str) or name not in DATAFLOWS:
        raise ValueError(f"unknown dataflow {name!r}; known dataflows: {sorted(DATAFLOWS)}")
    return DATAFLOWS[name]


def _check_inputs(features: Tensor, weight: Tensor, view: MapView, spec: DataflowSpec) -> None:
    if not isinstance(features, Tensor) or features.dim() != 2:
        shape = tuple(features.shape) if isinstance(features, Tensor) else type(features)
        raise ValueError(f"features must be a (N, C_in) tensor, got {shape}")
    if features.device != view.device:
        raise ValueError(f"features are on {features.device} but the kernel map is on "
                         f"{view.device}")
    if not features.is_floating_point():
        raise ValueError(f"features must be floating point, got {features.dtype}")
    check_weight(weight, features, view.kmap.kernel_size)
    if features.dtype not in spec.dtypes:
        raise ValueError(f"dataflow {spec.name!r} supports dtypes {spec.dtypes}, "
                         f"got {features.dtype}")
    if features.shape[0] != view.num_in:
        raise ValueError(f"features have {features.shape[0]} rows, the kernel map expects "
                         f"{view.num_in} inputs")


def sparse_matmul(features: Tensor, weight: Tensor, kmap: KernelMap | MapView,
                  dataflow: str = "gather_gemm_scatter", *, dgrad_dataflow: str | None = None,
                  dgrad_params: Mapping[str, Any] | None = None,
                  wgrad_params: Mapping[str, Any] | None = None, **params: Any) -> Tensor:
    """Sparse conv ``(num_out, C_out)`` of ``features (num_in, C_in)`` with a KRSC ``weight``
    along ``kmap``, computed by ``dataflow`` with ``params``; differentiable.

    The input gradient runs ``dgrad_dataflow`` (default: the forward dataflow, with the
    forward's params when it is the same dataflow) on the transposed map; the weight gradient
    follows ``wgrad_params`` (``native``, ``epsilon``, ``mm_thresh``; see ``WGRAD_PARAMS``).
    """
    spec = get_dataflow(dataflow)
    resolved = spec.resolve(params)
    dgrad = spec if dgrad_dataflow is None else get_dataflow(dgrad_dataflow)
    if dgrad_params is None:
        dgrad_params = resolved if dgrad is spec else {}
    dgrad_resolved = dgrad.resolve(dgrad_params)
    wgrad_params = dict(wgrad_params or {})
    unknown = sorted(set(wgrad_params) - set(WGRAD_PARAMS))
    if unknown:
        raise ValueError(f"weight gradient has no parameter(s) {unknown}; its parameters are "
                         f"{sorted(WGRAD_PARAMS)}")
    for name, value in wgrad_params.items():
        WGRAD_PARAMS[name].check("weight gradient", name, value)
    view = as_view(kmap)
    _check_inputs(features, weight, view, spec)
    return SparseMatmulFunction.apply(features.contiguous(), weight, view, spec.forward,
                                      resolved, dgrad.forward, dgrad_resolved, wgrad_params)


__all__ = ["ALL_DTYPES", "DATAFLOWS", "WGRAD_PARAMS", "DataflowSpec", "MapView", "ParamSpec",
           "get_dataflow", "grouped_weight_grad", "plan_groups", "sparse_matmul",
           "transposed_weight"]
