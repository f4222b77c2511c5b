"""Backward kernels: weight gradient (split-K over pairs) and the input-gradient dataflows.

* weight gradient ``dW_j = X[in_j]^T @ dY[out_j]``: the reduction runs over offset j's pairs,
  so it is split: each program owns ``BLOCK_P * P_ITERS`` pairs of one offset (located by
  walking ``offset_ptr``) and a ``(BLOCK_CI x BLOCK_CO)`` tile of ``dW_j``, accumulates in
  fp32 registers and atomically adds its partial sum into the fp32 ``(K, C_in, C_out)`` buffer.
* input gradient ``dX[i] = sum_j dY[in_out_map[i, j]] @ W_j^T``: the implicit GEMM of
  :mod:`.implicit_gemm` on the input-side neighbour map with the transposed weight.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..kernel_map import KernelMap
from ..maps import mask_order
from .common import TRITON_AVAILABLE, autotuned, dot_options, launch, make_configs, next_pow2, pair_blocks
from .implicit_gemm import implicit_gemm, neighbour_bitmasks

if TRITON_AVAILABLE:
    import triton
    import triton.language as tl

    from .common import dot_acc, locate_block

WEIGHT_GRAD_CONFIGS = make_configs([
    ({"BLOCK_P": 64, "BLOCK_CI": 32, "BLOCK_CO": 32, "P_ITERS": 4}, 4, 2),
    ({"BLOCK_P": 128, "BLOCK_CI": 64, "BLOCK_CO": 64, "P_ITERS": 2}, 4, 3),
    ({"BLOCK_P": 32, "BLOCK_CI": 16, "BLOCK_CO": 32, "P_ITERS": 8}, 2, 2),
])

if TRITON_AVAILABLE:

    @triton.jit
    def _weight_grad_kernel(x_ptr, dy_ptr, dw_ptr, in_idx_ptr, out_idx_ptr, offset_ptr, K, C_IN, C_OUT,
                            stride_x, stride_dy, PRECISION: tl.constexpr, DOT_FP32: tl.constexpr,
                            K_POW2: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_CI: tl.constexpr, BLOCK_CO: tl.constexpr,
                            P_ITERS: tl.constexpr):
        j, start, end = locate_block(offset_ptr, K, tl.program_id(0), BLOCK_P * P_ITERS, K_POW2)
        ci = tl.program_id(1) * BLOCK_CI + tl.arange(0, BLOCK_CI)
        co = tl.program_id(2) * BLOCK_CO + tl.arange(0, BLOCK_CO)
        ci_ok = ci < C_IN
        co_ok = co < C_OUT
        acc = tl.zeros((BLOCK_CI, BLOCK_CO), dtype=tl.float32)
        chunk_end = tl.minimum(end, start + BLOCK_P * P_ITERS)
        for p0 in range(start, chunk_end, BLOCK_P):  # the last chunk of an offset may be short
            p = p0 + tl.arange(0, BLOCK_P)
            p_ok = p < chunk_end
            in_rows = tl.load(in_idx_ptr + p, mask=p_ok, other=0).to(tl.int64)
            out_rows = tl.load(out_idx_ptr + p, mask=p_ok, other=0).to(tl.int64)
            xt = tl.load(x_ptr + in_rows[None, :] * stride_x + ci[:, None], mask=ci_ok[:, None] & p_ok[None, :],
                         other=0.0)  # (BLOCK_CI, BLOCK_P): X[in]^T
            g = tl.load(dy_ptr + out_rows[:, None] * stride_dy + co[None, :], mask=p_ok[:, None] & co_ok[None, :],
                        other=0.0)
            acc = dot_acc(xt, g, acc, PRECISION, DOT_FP32)
        tl.atomic_add(dw_ptr + j.to(tl.int64) * C_IN * C_OUT + ci[:, None] * C_OUT + co[None, :], acc,
                      mask=ci_ok[:, None] & co_ok[None, :], sem="relaxed")

    _weight_grad_tuned = autotuned(_weight_grad_kernel, WEIGHT_GRAD_CONFIGS,
                                   {"C_IN": "BLOCK_CI", "C_OUT": "BLOCK_CO"}, atomic_outputs=["dw_ptr"])


def weight_grad(x: Tensor, grad_out: Tensor, kmap: KernelMap, allow_tf32: bool = False,
                config_index: int | None = None) -> Tensor:
    """fp32 ``(K, C_in, C_out)``: ``[j] = x[in_j]^T @ grad_out[out_j]`` over offset j's pairs."""
    c_in, c_out = x.shape[1], grad_out.shape[1]
    dw = torch.zeros((kmap.kernel_volume, c_in, c_out), dtype=torch.float32, device=x.device)
    ptr_host = kmap.offset_ptr_host
    if ptr_host[-1] == 0 or c_in == 0 or c_out == 0:
        return dw
    x, grad_out = x.contiguous(), grad_out.contiguous()  # the kernel assumes unit column strides

    def grid(meta: dict[str, Any]) -> tuple[int, int, int]:
        return (pair_blocks(ptr_host, meta["BLOCK_P"] * meta["P_ITERS"]), triton.cdiv(c_in, meta["BLOCK_CI"]),
                triton.cdiv(c_out, meta["BLOCK_CO"]))

    launch(_weight_grad_tuned, _weight_grad_kernel, grid,
           (x, grad_out, dw, kmap.in_indices, kmap.out_indices, kmap.offset_ptr, kmap.kernel_volume, c_in, c_out,
            x.stride(0), grad_out.stride(0)),
           config_index, K_POW2=next_pow2(kmap.kernel_volume), **dot_options(x.dtype, allow_tf32))
    return dw


def input_grad_implicit(grad_out: Tensor, w_koi: Tensor, in_out: Tensor, sorted_: bool,
                        allow_tf32: bool = False, config_index: int | None = None) -> Tensor:
    """``(num_in, C_in)`` input gradient by implicit GEMM over ``in_out`` (``(num_in, K)``) with
    ``w_koi`` = per-offset W_j^T ``(K, C_out, C_in)``; ``sorted_`` sorts rows by bitmask."""
    order = masks = None
    if sorted_:
        order, masks = mask_order(in_out), neighbour_bitmasks(in_out)
    return implicit_gemm(grad_out, w_koi, in_out, order, masks, allow_tf32, config_index)
