"""Fetch-on-demand dataflow on Triton: the fused gather-GEMM-scatter of every offset in one launch.

The grid's first axis enumerates the pair blocks of all offsets (each offset's CSR range
``offset_ptr[j]..offset_ptr[j+1]`` cut into ``BLOCK_P`` blocks, offsets with no pairs own no
block); a program finds its (offset, block) by walking ``offset_ptr`` (:func:`.common.locate_block`),
loads its input rows, multiplies by ``W_j`` and atomically adds into the fp32 output.  One
launch instead of K removes the per-offset launch overhead that dominates small layers.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..kernel_map import KernelMap
from .common import TRITON_AVAILABLE, autotuned, dot_options, launch, make_configs, next_pow2, pair_blocks

if TRITON_AVAILABLE:
    import triton
    import triton.language as tl

    from .common import locate_block
    from .gather_scatter import pair_tile_gemm

FETCH_ON_DEMAND_CONFIGS = make_configs([
    ({"BLOCK_P": 64, "BLOCK_N": 32, "BLOCK_K": 32}, 4, 2),
    ({"BLOCK_P": 128, "BLOCK_N": 64, "BLOCK_K": 32}, 4, 3),
    ({"BLOCK_P": 32, "BLOCK_N": 32, "BLOCK_K": 16}, 2, 2),
    ({"BLOCK_P": 64, "BLOCK_N": 128, "BLOCK_K": 32}, 8, 3),
])

if TRITON_AVAILABLE:

    @triton.jit
    def _fetch_on_demand_kernel(x_ptr, w_ptr, out_ptr, src_idx_ptr, dst_idx_ptr, offset_ptr, K, C_IN, C_OUT,
                                stride_x, stride_wj, stride_wk, stride_out,
                                PRECISION: tl.constexpr, DOT_FP32: tl.constexpr, K_POW2: tl.constexpr,
                                BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
        j, start, end = locate_block(offset_ptr, K, tl.program_id(0), BLOCK_P, K_POW2)
        p = start + tl.arange(0, BLOCK_P)
        n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        p_ok = p < end
        n_ok = n < C_OUT
        in_rows = tl.load(src_idx_ptr + p, mask=p_ok, other=0).to(tl.int64)
        out_rows = tl.load(dst_idx_ptr + p, mask=p_ok, other=0).to(tl.int64)
        acc = pair_tile_gemm(x_ptr, stride_x, w_ptr + j.to(tl.int64) * stride_wj, stride_wk, in_rows, p_ok,
                             n, n_ok, C_IN, PRECISION, DOT_FP32, BLOCK_P, BLOCK_N, BLOCK_K)
        tl.atomic_add(out_ptr + out_rows[:, None] * stride_out + n[None, :], acc,
                      mask=p_ok[:, None] & n_ok[None, :], sem="relaxed")

    _fetch_on_demand_tuned = autotuned(_fetch_on_demand_kernel, FETCH_ON_DEMAND_CONFIGS,
                                       {"C_IN": "BLOCK_K", "C_OUT": "BLOCK_N"}, atomic_outputs=["out_ptr"])


def fetch_on_demand(x: Tensor, w_kio: Tensor, kmap: KernelMap, allow_tf32: bool = False,
                    config_index: int | None = None, transpose: bool = False) -> Tensor:
    """fp32 ``(rows, C_b)`` result of the one-launch fused dataflow; ``w_kio`` is ``(K, C_a, C_b)``.

    ``transpose`` swaps in/out indices (input gradient with ``w_kio`` = W^T per offset).
    """
    src, dst = (kmap.out_indices, kmap.in_indices) if transpose else (kmap.in_indices, kmap.out_indices)
    rows = kmap.num_in if transpose else kmap.num_out
    c_in, c_out = w_kio.shape[1], w_kio.shape[2]
    out32 = torch.zeros((rows, c_out), dtype=torch.float32, device=x.device)
    ptr_host = kmap.offset_ptr_host
    if ptr_host[-1] == 0 or c_in == 0 or c_out == 0:
        return out32
    x, w_kio = x.contiguous(), w_kio.contiguous()  # the kernel assumes unit column strides

    def grid(meta: dict[str, Any]) -> tuple[int, int]:
        return (pair_blocks(ptr_host, meta["BLOCK_P"]), triton.cdiv(c_out, meta["BLOCK_N"]))

    launch(_fetch_on_demand_tuned, _fetch_on_demand_kernel, grid,
           (x, w_kio, out32, src, dst, kmap.offset_ptr, kmap.kernel_volume, c_in, c_out,
            x.stride(0), w_kio.stride(0), w_kio.stride(1), out32.stride(0)),
           config_index, K_POW2=next_pow2(kmap.kernel_volume), **dot_options(x.dtype, allow_tf32))
    return out32
