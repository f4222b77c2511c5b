"""Native output-stationary implicit GEMM and weight gradient (C++ / OpenMP, CPU fp32 / fp64).

The kernels live in ops/csrc/sparse_conv*.cpp (``perception_ops._C``).  The forward walks the
outputs in blocks of ``block_rows`` rows that stay in cache; the kernel map's pairs are
sorted by output row inside every offset, so a block's pairs of offset j are one contiguous
range of the map (two binary searches, no plan to build), and a register-blocked
micro-kernel (AVX-512 / AVX2 / portable, picked at run time) accumulates ``x[in] @ W_j`` of
several pairs at once straight into the block's output rows -- one pass, no gathered
buffer, no scatter, no per-offset library call.  The input gradient is the same kernel on
the transposed view (``MapView.transposed``: pairs swapped and re-sorted by the old input
row, natively and only where the map's order does not already give that) with the
transposed weights.  The weight
gradient runs chunks of each offset's pairs through a second micro-kernel, every thread into
its own copy of dW, summed at the end.

bf16 / fp16 features run the same fp32 kernels on widened copies (gathered rows and
accumulators in fp32, the result rounded back once): this CPU has no bf16 matrix unit, so
fp32 arithmetic is both the fastest and the most accurate way to run them.  Where the
kernels do not apply (non-CPU tensors, mixed dtypes, extension not built) the forward falls
back to :func:`.fetch_on_demand.fetch_on_demand_forward` and the weight gradient to the
grouped torch path: same results, other speed.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.overrides import handle_torch_function, has_torch_function

from ...native import native_module
from .fetch_on_demand import fetch_on_demand_forward
from .gather_gemm_scatter import grouped_weight_grad
from .views import MapView, as_view, weight_matrices

NATIVE_DTYPES = (torch.float32, torch.float64)
WIDENED_DTYPES = (torch.bfloat16, torch.float16)  # run in fp32, rounded back once
WGRAD_CHUNK = 256  # pairs per weight-gradient work item (gathered rows stay in L2)
PROFILER_EVENT = "perception_ops::sparse_conv_forward"  # the kernel's range in torch.profiler


def native_kernels(t: Tensor) -> Any | None:
    """The compiled module when its sparse-conv kernels can run on ``t``, else None."""
    if t.device.type != "cpu" or t.dtype not in NATIVE_DTYPES + WIDENED_DTYPES:
        return None
    module = native_module()
    return module if module is not None and hasattr(module, "sparse_conv_forward") else None


def view_pairs(view: MapView) -> tuple[Tensor, Tensor, Tensor]:
    """int32 (in, out) pairs of ``view`` sorted by output row inside every offset, and the
    int64 offset pointer: the kernel map's own tensors, or for a transposed view its pairs
    swapped (re-sorted natively when needed; cached on the view)."""
    kmap = view.kmap
    ptr = kmap.offset_ptr.contiguous()
    if not view.is_transposed:
        return kmap.in_indices.contiguous(), kmap.out_indices.contiguous(), ptr
    key = ("native_pairs",)
    pairs = view.plans.get(key)
    if pairs is None:
        module = native_module()
        assert module is not None
        pairs = tuple(module.sparse_conv_transpose_pairs(
            kmap.in_indices.contiguous(), kmap.out_indices.contiguous(), ptr, kmap.num_in))
        view.plans[key] = pairs
    return pairs[0], pairs[1], ptr  # type: ignore[index]


def conv_kernel(features: Tensor, weight: Tensor, ins: Tensor, outs: Tensor, ptr: Tensor,
                num_out: int, block_rows: int) -> Tensor:
    """The compiled forward kernel on (features, (K, C_in, C_out) weight, pairs).  Visible to
    ``TorchFunctionMode`` like a torch op, so a benchmark can time it as the matmul part."""
    if has_torch_function((features, weight)):
        return handle_torch_function(conv_kernel, (features, weight), features, weight, ins,
                                     outs, ptr, num_out, block_rows)
    module = native_module()
    assert module is not None
    if getattr(torch.autograd.profiler, "_is_profiler_enabled", False):  # name it in traces
        with torch.profiler.record_function(PROFILER_EVENT):
            return module.sparse_conv_forward(features, weight, ins, outs, ptr, num_out,
                                              block_rows)
    return module.sparse_conv_forward(features, weight, ins, outs, ptr, num_out, block_rows)


def weight_grad_kernel(features: Tensor, grad_out: Tensor, ins: Tensor, outs: Tensor,
                       ptr: Tensor) -> Tensor:
    """The compiled weight-gradient kernel, (K, C_in, C_out); visible to TorchFunctionMode."""
    if has_torch_function((features, grad_out)):
        return handle_torch_function(weight_grad_kernel, (features, grad_out), features,
                                     grad_out, ins, outs, ptr)
    module = native_module()
    assert module is not None
    return module.sparse_conv_weight_grad(features, grad_out, ins, outs, ptr, WGRAD_CHUNK)


KERNELS = (conv_kernel, weight_grad_kernel)
"""The compiled kernels as TorchFunctionMode sees them (the benchmarks' matmul part)."""


def native_forward(features: Tensor, weight: Tensor, kmap: Any,
                   block_rows: int = 256) -> Tensor:
    """(num_out, C_out) sparse conv of ``features`` along ``kmap`` (see module doc)."""
    view = as_view(kmap)
    module = native_kernels(features)
    compute = _compute_dtype(features.dtype, weight.dtype)
    if module is None or view.device.type != "cpu" or compute is None:
        return fetch_on_demand_forward(features, weight, view)
    ins, outs, ptr = view_pairs(view)
    out = conv_kernel(features.contiguous().to(compute), weight_matrices(weight).to(compute), ins, outs,
                      ptr, view.num_out, block_rows)
    return out.to(features.dtype)


def _compute_dtype(features: torch.dtype, other: torch.dtype) -> torch.dtype | None:
    """The kernel's dtype for these operands: their own (fp32 / fp64), fp32 for bf16 / fp16
    (the other operand may be fp32, as under autocast), None when they cannot share a kernel."""
    if features in NATIVE_DTYPES:
        return features if other == features else None
    if features in WIDENED_DTYPES and other in (features, torch.float32):
        return torch.float32
    return None


def native_weight_grad(features: Tensor, grad_out: Tensor, kmap: Any,
                       weight_shape: torch.Size) -> Tensor:
    """dL/dW in KRSC layout by the native kernel (grouped torch path where it cannot run)."""
    view = as_view(kmap)
    module = native_kernels(features)
    compute = _compute_dtype(features.dtype, grad_out.dtype)
    if module is None or grad_out.dtype != features.dtype or view.device.type != "cpu" or compute is None:
        return grouped_weight_grad(features, grad_out, view, weight_shape)
    k = view.kmap
    ins, outs = (k.out_indices, k.in_indices) if view.is_transposed else (k.in_indices,
                                                                           k.out_indices)
    grad = weight_grad_kernel(features.contiguous().to(compute), grad_out.contiguous().to(compute),
                              ins.contiguous(), outs.contiguous(), k.offset_ptr.contiguous())
    return grad.permute(2, 0, 1).reshape(weight_shape).to(features.dtype)


def weight_gradient(features: Tensor, grad_out: Tensor, kmap: Any, weight_shape: torch.Size,
                    native: bool = True, epsilon: float = 0.0, mm_thresh: int = 0) -> Tensor:
    """The weight gradient as the ``wgrad`` parameters say: the native kernel (``native``,
    the grouping parameters are then unused) or the grouped torch path."""
    if native:
        return native_weight_grad(features, grad_out, kmap, weight_shape)
    return grouped_weight_grad(features, grad_out, kmap, weight_shape, epsilon=epsilon,
                               mm_thresh=mm_thresh)
