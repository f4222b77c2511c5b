"""Gather-GEMM-scatter on Triton: one fused launch per kernel offset, plus plain row kernels.

``gemm_scatter_offset``: for a block of pairs of offset j, load the input rows, multiply by
``W_j`` (C_in, C_out) and atomically add into the (fp32) output rows; one launch per offset
with pairs.  ``gather_rows`` / ``scatter_add_rows`` are the unfused pieces (the classic
dataflow with a dense GEMM in between, :func:`gather_mm_scatter`).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..kernel_map import KernelMap
from .common import TRITON_AVAILABLE, autotuned, dot_options, launch, make_configs

if TRITON_AVAILABLE:
    from .common import dot_acc

if TRITON_AVAILABLE:
    import triton
    import triton.language as tl

GEMM_SCATTER_CONFIGS = make_configs([
    ({"BLOCK_P": 64, "BLOCK_N": 32, "BLOCK_K": 32}, 4, 2),
    ({"BLOCK_P": 128, "BLOCK_N": 64, "BLOCK_K": 32}, 4, 3),
    ({"BLOCK_P": 32, "BLOCK_N": 32, "BLOCK_K": 16}, 2, 2),
    ({"BLOCK_P": 128, "BLOCK_N": 128, "BLOCK_K": 32}, 8, 3),
])
ROW_CONFIGS = make_configs([
    ({"BLOCK_R": 64, "BLOCK_C": 32}, 4, 1),
    ({"BLOCK_R": 128, "BLOCK_C": 64}, 4, 1),
])

if TRITON_AVAILABLE:

    @triton.jit
    def pair_tile_gemm(x_ptr, stride_x, w_ptr, stride_wk, in_rows, p_ok, n, n_ok, C_IN,
                       PRECISION: tl.constexpr, DOT_FP32: tl.constexpr, BLOCK_P: tl.constexpr,
                       BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
        """fp32 (BLOCK_P, BLOCK_N) tile X[in_rows] @ W[:, n] with W (C_IN, *) row-major."""
        acc = tl.zeros((BLOCK_P, BLOCK_N), dtype=tl.float32)
        kk = tl.arange(0, BLOCK_K)
        for k0 in range(0, C_IN, BLOCK_K):
            k = k0 + kk
            k_ok = k < C_IN
            a = tl.load(x_ptr + in_rows[:, None] * stride_x + k[None, :], mask=p_ok[:, None] & k_ok[None, :],
                        other=0.0)
            b = tl.load(w_ptr + k[:, None].to(tl.int64) * stride_wk + n[None, :], mask=k_ok[:, None] & n_ok[None, :],
                        other=0.0)
            acc = dot_acc(a, b, acc, PRECISION, DOT_FP32)
        return acc

    @triton.jit
    def _gemm_scatter_kernel(x_ptr, w_ptr, out_ptr, in_idx_ptr, out_idx_ptr, n_pairs, C_IN, C_OUT,
                             stride_x, stride_wk, stride_out,
                             PRECISION: tl.constexpr, DOT_FP32: tl.constexpr, BLOCK_P: tl.constexpr,
                             BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
        p = tl.program_id(0).to(tl.int64) * BLOCK_P + tl.arange(0, BLOCK_P)
        n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        p_ok = p < n_pairs
        n_ok = n < C_OUT
        in_rows = tl.load(in_idx_ptr + p, mask=p_ok, other=0).to(tl.int64)
        out_rows = tl.load(out_idx_ptr + p, mask=p_ok, other=0).to(tl.int64)
        acc = pair_tile_gemm(x_ptr, stride_x, w_ptr, stride_wk, in_rows, p_ok, n, n_ok, C_IN,
                             PRECISION, DOT_FP32, BLOCK_P, BLOCK_N, BLOCK_K)
        tl.atomic_add(out_ptr + out_rows[:, None] * stride_out + n[None, :], acc,
                      mask=p_ok[:, None] & n_ok[None, :], sem="relaxed")

    @triton.jit
    def _gather_rows_kernel(src_ptr, idx_ptr, dst_ptr, n_rows, C, stride_src,
                            BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
        r = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
        c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        mask = (r < n_rows)[:, None] & (c < C)[None, :]
        rows = tl.load(idx_ptr + r, mask=r < n_rows, other=0).to(tl.int64)
        vals = tl.load(src_ptr + rows[:, None] * stride_src + c[None, :], mask=mask)
        tl.store(dst_ptr + r[:, None] * C + c[None, :], vals, mask=mask)

    @triton.jit
    def _scatter_add_rows_kernel(src_ptr, idx_ptr, dst_ptr, n_rows, C, stride_dst,
                                 BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
        r = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
        c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        mask = (r < n_rows)[:, None] & (c < C)[None, :]
        rows = tl.load(idx_ptr + r, mask=r < n_rows, other=0).to(tl.int64)
        vals = tl.load(src_ptr + r[:, None] * C + c[None, :], mask=mask).to(tl.float32)
        tl.atomic_add(dst_ptr + rows[:, None] * stride_dst + c[None, :], vals, mask=mask, sem="relaxed")

    _gemm_scatter_tuned = autotuned(_gemm_scatter_kernel, GEMM_SCATTER_CONFIGS,
                                    {"C_IN": "BLOCK_K", "C_OUT": "BLOCK_N"}, atomic_outputs=["out_ptr"])
    _gather_rows_tuned = autotuned(_gather_rows_kernel, ROW_CONFIGS, {"C": "BLOCK_C"})
    _scatter_add_rows_tuned = autotuned(_scatter_add_rows_kernel, ROW_CONFIGS, {"C": "BLOCK_C"},
                                        atomic_outputs=["dst_ptr"])


def gemm_scatter_offset(x: Tensor, w_j: Tensor, out32: Tensor, in_idx: Tensor, out_idx: Tensor,
                        allow_tf32: bool = False, config_index: int | None = None) -> None:
    """``out32[out_idx] += x[in_idx] @ w_j`` for one offset's pairs (w_j (C_in, C_out) row-major)."""
    n_pairs, c_in, c_out = in_idx.numel(), x.shape[1], w_j.shape[1]
    if n_pairs == 0 or c_in == 0 or c_out == 0:
        return

    def grid(meta: dict[str, Any]) -> tuple[int, int]:
        return (triton.cdiv(n_pairs, meta["BLOCK_P"]), triton.cdiv(c_out, meta["BLOCK_N"]))

    launch(_gemm_scatter_tuned, _gemm_scatter_kernel, grid,
           (x, w_j, out32, in_idx, out_idx, n_pairs, c_in, c_out, x.stride(0), w_j.stride(0), out32.stride(0)),
           config_index, **dot_options(x.dtype, allow_tf32))


def gather_scatter(x: Tensor, w_kio: Tensor, kmap: KernelMap, allow_tf32: bool = False,
                   config_index: int | None = None, transpose: bool = False) -> Tensor:
    """fp32 ``(rows, C_b)`` result of the fused per-offset dataflow.

    ``w_kio`` is ``(K, C_a, C_b)`` with ``x`` having C_a channels.  ``transpose`` swaps the
    roles of in/out indices (the input gradient: ``dX[in] += dY[out] @ W_j^T``).
    """
    x, w_kio = x.contiguous(), w_kio.contiguous()  # the kernels assume unit column strides
    src, dst = (kmap.out_indices, kmap.in_indices) if transpose else (kmap.in_indices, kmap.out_indices)
    rows = kmap.num_in if transpose else kmap.num_out
    out32 = torch.zeros((rows, w_kio.shape[2]), dtype=torch.float32, device=x.device)
    ptr = kmap.offset_ptr_host
    for j in range(kmap.kernel_volume):
        lo, hi = ptr[j], ptr[j + 1]
        if hi > lo:
            gemm_scatter_offset(x, w_kio[j], out32, src[lo:hi], dst[lo:hi], allow_tf32, config_index)
    return out32


def gather_rows(src: Tensor, idx: Tensor, config_index: int | None = None) -> Tensor:
    """``src[idx]`` as a new contiguous tensor."""
    n, c = idx.numel(), src.shape[1]
    src = src.contiguous()
    dst = src.new_empty((n, c))
    if n and c:
        def grid(meta: dict[str, Any]) -> tuple[int, int]:
            return (triton.cdiv(n, meta["BLOCK_R"]), triton.cdiv(c, meta["BLOCK_C"]))
        launch(_gather_rows_tuned, _gather_rows_kernel, grid, (src, idx, dst, n, c, src.stride(0)), config_index)
    return dst


def scatter_add_rows(src: Tensor, idx: Tensor, dst32: Tensor, config_index: int | None = None) -> None:
    """``dst32[idx] += src`` (fp32 destination, atomics: duplicate indices are summed)."""
    n, c = idx.numel(), src.shape[1]
    if n and c:
        src = src.contiguous()

        def grid(meta: dict[str, Any]) -> tuple[int, int]:
            return (triton.cdiv(n, meta["BLOCK_R"]), triton.cdiv(c, meta["BLOCK_C"]))
        launch(_scatter_add_rows_tuned, _scatter_add_rows_kernel, grid, (src, idx, dst32, n, c, dst32.stride(0)),
               config_index)


def gather_mm_scatter(x: Tensor, w_kio: Tensor, kmap: KernelMap, config_index: int | None = None,
                      transpose: bool = False) -> Tensor:
    """Unfused dataflow: Triton gather, dense ``torch.mm`` (cuBLAS), Triton scatter-add.

    The result is fp32 (accumulated over offsets in fp32); each offset's product is rounded
    to ``x``'s dtype once, as cuBLAS returns it.
    """
    src, dst = (kmap.out_indices, kmap.in_indices) if transpose else (kmap.in_indices, kmap.out_indices)
    rows = kmap.num_in if transpose else kmap.num_out
    out32 = torch.zeros((rows, w_kio.shape[2]), dtype=torch.float32, device=x.device)
    ptr = kmap.offset_ptr_host
    for j in range(kmap.kernel_volume):
        lo, hi = ptr[j], ptr[j + 1]
        if hi > lo:
            scatter_add_rows(gather_rows(x, src[lo:hi], config_index) @ w_kio[j], dst[lo:hi], out32, config_index)
    return out32
