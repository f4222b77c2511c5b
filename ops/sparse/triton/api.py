"""``triton_sparse_matmul``: a sparse conv's feature GEMM on Triton, with autograd.

``triton_sparse_matmul(features, weight, kmap, dataflow=...)`` equals
:func:`..gather_gemm_scatter.gather_gemm_scatter` (weights KRSC ``(C_out, kD, kH, kW, C_in)``)
for fp32 / fp16 / bf16 inputs, accumulating in fp32.  Dataflows (:data:`DATAFLOWS`):

* ``gather_scatter``: fused gather-GEMM-scatter, one launch per offset with pairs;
* ``gather_mm_scatter``: Triton gather, ``torch.mm``, Triton scatter-add, per offset;
* ``fetch_on_demand``: the fused dataflow of all offsets in one launch;
* ``implicit_gemm`` / ``implicit_gemm_sorted``: output-stationary implicit GEMM on the dense
  neighbour map, the sorted one skipping offsets empty for a whole tile.

Backward: input gradient by ``backward_dataflow`` (default: the forward's) run transposed
(implicit GEMM on the in->out map with W^T for the implicit ones), weight gradient by the
split-K kernel of :mod:`.backward`.

Tensors must be on CUDA, or on the CPU when the kernels were defined under
``TRITON_INTERPRET=1`` (tests).  Kernels are autotuned per channel sizes unless a config is
pinned: ``config_index=i`` (or the environment variable ``PERCEPTION_SPARSE_TRITON_CONFIG=i``,
read at call time) runs config ``i % len(configs)`` of every kernel without tuning.
"""
from __future__ import annotations

import os
from types import MappingProxyType
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from ..gather_gemm_scatter import check_weight
from ..kernel_map import KernelMap
from ..maps import in_out_map, mask_order, out_in_map
from .backward import input_grad_implicit, weight_grad
from .common import INTERPRETED, TRITON_AVAILABLE, require_triton
from .fetch_on_demand import fetch_on_demand
from .gather_scatter import gather_mm_scatter, gather_scatter
from .implicit_gemm import implicit_gemm

CONFIG_ENV = "PERCEPTION_SPARSE_TRITON_CONFIG"
SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

# (x, w (K, C_a, C_b), kmap, transpose, allow_tf32, config_index) -> (rows, C_b), fp32 or x's dtype
Dataflow = Callable[[Tensor, Tensor, KernelMap, bool, bool, "int | None"], Tensor]


def _gather_scatter(x: Tensor, w: Tensor, kmap: KernelMap, transpose: bool, tf32: bool, cfg: int | None) -> Tensor:
    return gather_scatter(x, w, kmap, tf32, cfg, transpose)


def _gather_mm_scatter(x: Tensor, w: Tensor, kmap: KernelMap, transpose: bool, tf32: bool,
                       cfg: int | None) -> Tensor:
    return gather_mm_scatter(x, w, kmap, cfg, transpose)


def _fetch_on_demand(x: Tensor, w: Tensor, kmap: KernelMap, transpose: bool, tf32: bool, cfg: int | None) -> Tensor:
    return fetch_on_demand(x, w, kmap, tf32, cfg, transpose)


def _implicit(sorted_: bool) -> Dataflow:
    def run(x: Tensor, w: Tensor, kmap: KernelMap, transpose: bool, tf32: bool, cfg: int | None) -> Tensor:
        if transpose:
            return input_grad_implicit(x, w, in_out_map(kmap), sorted_, tf32, cfg)
        neighbours = out_in_map(kmap)
        order, masks = (mask_order(neighbours), kmap.out_masks) if sorted_ else (None, None)
        return implicit_gemm(x, w, neighbours, order, masks, tf32, cfg)
    return run


DATAFLOWS: Mapping[str, Dataflow] = MappingProxyType({
    "gather_scatter": _gather_scatter,
    "gather_mm_scatter": _gather_mm_scatter,
    "fetch_on_demand": _fetch_on_demand,
    "implicit_gemm": _implicit(False),
    "implicit_gemm_sorted": _implicit(True),
})


def _config_index(config_index: int | None) -> int | None:
    if config_index is not None:
        return int(config_index)
    value = os.environ.get(CONFIG_ENV, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {CONFIG_ENV} must be an integer config index, "
                         f"got {value!r}") from None


def _check_inputs(features: Tensor, weight: Tensor, kmap: KernelMap, dataflows: tuple[str, str]) -> None:
    require_triton()
    for name in dataflows:
        if name not in DATAFLOWS:
            raise ValueError(f"unknown Triton sparse dataflow {name!r}; choose one of {sorted(DATAFLOWS)}")
    if not isinstance(features, Tensor) or features.dim() != 2:
        raise ValueError(f"features must be a (N, C) tensor, got "
                         f"{tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__}")
    if features.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"Triton sparse kernels take float32, float16 or bfloat16 features, got {features.dtype}")
    check_weight(weight, features, kmap.kernel_size)
    if features.shape[0] != kmap.num_in:
        raise ValueError(f"features have {features.shape[0]} rows, the kernel map expects {kmap.num_in} inputs")
    if features.device.type == "cpu":
        if not INTERPRETED:
            raise ValueError("Triton sparse kernels need CUDA tensors; CPU tensors run only under Triton's "
                             "interpreter (TRITON_INTERPRET=1 set before triton is imported). On the CPU use "
                             "perception_ops.sparse.gather_gemm_scatter")
    elif features.device.type != "cuda":
        raise ValueError(f"Triton sparse kernels need CUDA tensors, got device {features.device}")
    if kmap.in_indices.device != features.device:
        raise ValueError(f"kernel map is on {kmap.in_indices.device} but features on {features.device}")


class _TritonSparseMatmul(torch.autograd.Function):
    """Forward by one dataflow; backward: transposed dataflow (dX) and split-K kernel (dW)."""

    @staticmethod
    def forward(ctx: Any, features: Tensor, weight: Tensor, kmap: KernelMap, dataflow: str,
                backward_dataflow: str, allow_tf32: bool, config_index: int | None) -> Tensor:
        c_out, c_in, k = weight.shape[0], weight.shape[4], kmap.kernel_volume
        x = features.contiguous()
        w_kio = weight.reshape(c_out, k, c_in).permute(1, 2, 0).contiguous()  # W_j = (C_in, C_out)
        out = DATAFLOWS[dataflow](x, w_kio, kmap, False, allow_tf32, config_index)
        ctx.kmap, ctx.backward_dataflow, ctx.allow_tf32, ctx.config_index = (
            kmap, backward_dataflow, allow_tf32, config_index)
        ctx.save_for_backward(x, weight)
        return out.to(features.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        kmap: KernelMap = ctx.kmap
        g = grad_out.to(x.dtype).contiguous()
        c_out, c_in, k = weight.shape[0], weight.shape[4], kmap.kernel_volume
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            w_koi = weight.reshape(c_out, k, c_in).permute(1, 0, 2).contiguous()  # W_j^T = (C_out, C_in)
            grad_x = DATAFLOWS[ctx.backward_dataflow](g, w_koi, kmap, True, ctx.allow_tf32,
                                                      ctx.config_index).to(x.dtype)
        if ctx.needs_input_grad[1]:
            dw = weight_grad(x, g, kmap, ctx.allow_tf32, ctx.config_index)  # (K, C_in, C_out)
            grad_w = dw.permute(2, 0, 1).reshape(weight.shape).to(weight.dtype)
        return grad_x, grad_w, None, None, None, None, None


def triton_sparse_matmul(features: Tensor, weight: Tensor, kmap: KernelMap, dataflow: str = "implicit_gemm_sorted",
                         *, backward_dataflow: str | None = None, allow_tf32: bool = False,
                         config_index: int | None = None) -> Tensor:
    """``(kmap.num_out, C_out)`` features convolved along ``kmap`` by a Triton dataflow (module doc).

    ``allow_tf32`` lets fp32 GEMMs use TF32 tensor cores (faster, ~1e-3 relative error);
    ``config_index`` pins one kernel config instead of autotuning.
    """
    backward_dataflow = backward_dataflow or dataflow
    _check_inputs(features, weight, kmap, (dataflow, backward_dataflow))
    return _TritonSparseMatmul.apply(features, weight, kmap, dataflow, backward_dataflow, bool(allow_tf32),
                                     _config_index(config_index))


__all__ = ["CONFIG_ENV", "DATAFLOWS", "SUPPORTED_DTYPES", "TRITON_AVAILABLE", "triton_sparse_matmul"]
