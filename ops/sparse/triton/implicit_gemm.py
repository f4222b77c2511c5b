"""Output-stationary implicit GEMM on Triton (TorchSparse++'s dataflow), plain and "sorted".

Each program owns a ``(BLOCK_M rows x BLOCK_N channels)`` output tile and loops over the K
offsets and C_in blocks, fetching neighbour rows through the dense ``(rows, K)`` neighbour map
(masked where -1); the tile is written once, without atomics, in the output dtype.

The sorted variant visits rows in ``order`` (:func:`..maps.mask_order`: rows with equal offset
bitmasks are contiguous) and skips an offset when no row of the tile has it, testing the
per-row bitmask words (``out_masks``) OR-reduced over the tile.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..kernel_map import MASK_WORD_BITS
from .common import TRITON_AVAILABLE, autotuned, dot_options, launch, make_configs

if TRITON_AVAILABLE:
    import triton
    import triton.language as tl

    from .common import bit_or, dot_acc

IMPLICIT_GEMM_CONFIGS = make_configs([
    ({"BLOCK_M": 64, "BLOCK_N": 32, "BLOCK_K": 32}, 4, 2),
    ({"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 32}, 4, 3),
    ({"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": 16}, 2, 2),
    ({"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 32}, 8, 3),
])

if TRITON_AVAILABLE:

    @triton.jit
    def _implicit_gemm_kernel(x_ptr, w_ptr, out_ptr, nmap_ptr, order_ptr, masks_ptr, N_ROWS, K, C_IN, C_OUT,
                              stride_x, stride_wj, stride_wk, stride_out, NUM_WORDS,
                              SORTED: tl.constexpr, PRECISION: tl.constexpr, DOT_FP32: tl.constexpr,
                              BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
        m = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
        n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        m_ok = m < N_ROWS
        n_ok = n < C_OUT
        if SORTED:
            rows = tl.load(order_ptr + m, mask=m_ok, other=0).to(tl.int64)
        else:
            rows = m
        kk = tl.arange(0, BLOCK_K)
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        tile_word = tl.program_id(0) * 0
        for j in range(K):
            active = True
            if SORTED:
                if j % 32 == 0:  # next bitmask word, OR-ed over the tile's rows
                    words = tl.load(masks_ptr + rows * NUM_WORDS + j // 32, mask=m_ok, other=0)
                    tile_word = tl.reduce(words, 0, bit_or)
                active = ((tile_word >> (j % 32)) & 1) != 0
            if active:
                nbr = tl.load(nmap_ptr + rows * K + j, mask=m_ok, other=-1)
                valid = nbr >= 0
                src = tl.where(valid, nbr, 0).to(tl.int64)
                for k0 in range(0, C_IN, BLOCK_K):
                    k = k0 + kk
                    k_ok = k < C_IN
                    a = tl.load(x_ptr + src[:, None] * stride_x + k[None, :], mask=valid[:, None] & k_ok[None, :],
                                other=0.0)
                    b = tl.load(w_ptr + j * stride_wj + k[:, None] * stride_wk + n[None, :],
                                mask=k_ok[:, None] & n_ok[None, :], other=0.0)
                    acc = dot_acc(a, b, acc, PRECISION, DOT_FP32)
        tl.store(out_ptr + rows[:, None] * stride_out + n[None, :], acc.to(out_ptr.dtype.element_ty),
                 mask=m_ok[:, None] & n_ok[None, :])

    _implicit_gemm_tuned = autotuned(_implicit_gemm_kernel, IMPLICIT_GEMM_CONFIGS,
                                     {"C_IN": "BLOCK_K", "C_OUT": "BLOCK_N"})


def neighbour_bitmasks(neighbour_map: Tensor) -> Tensor:
    """``(rows, ceil(K/32))`` int32 bitmask words of a ``(rows, K)`` neighbour map (bit j%32 of
    word j//32 set where the entry is >= 0), the layout of ``KernelMap.out_masks``."""
    rows, k = neighbour_map.shape
    words = (k + MASK_WORD_BITS - 1) // MASK_WORD_BITS
    padded = torch.zeros((rows, words * MASK_WORD_BITS), dtype=torch.int64, device=neighbour_map.device)
    padded[:, :k] = (neighbour_map >= 0).to(torch.int64)
    shifts = torch.arange(MASK_WORD_BITS, device=neighbour_map.device)
    acc = (padded.view(rows, words, MASK_WORD_BITS) << shifts).sum(dim=2)
    acc = torch.where(acc >= 2 ** 31, acc - 2 ** 32, acc)  # int32 bit pattern
    return acc.to(torch.int32)


def implicit_gemm(x: Tensor, w_kio: Tensor, neighbour_map: Tensor, order: Tensor | None = None,
                  masks: Tensor | None = None, allow_tf32: bool = False,
                  config_index: int | None = None) -> Tensor:
    """``out[r] = sum_j x[map[r, j]] @ w_kio[j]`` over entries >= 0, in ``x``'s dtype.

    ``w_kio`` is ``(K, C_a, C_b)``.  With ``order`` (row permutation) and ``masks`` (bitmask
    words of ``neighbour_map``) the sorted variant runs and skips offsets empty for a tile.
    """
    if (order is None) != (masks is None):
        raise ValueError("the sorted implicit GEMM needs both `order` and `masks` (or neither)")
    rows, k = neighbour_map.shape
    c_in, c_out = w_kio.shape[1], w_kio.shape[2]
    if k != w_kio.shape[0]:
        raise ValueError(f"neighbour map has {k} offsets but the weight has {w_kio.shape[0]}")
    out = x.new_empty((rows, c_out))
    if rows == 0 or c_out == 0:
        return out
    if c_in == 0:
        return out.zero_()
    x, w_kio = x.contiguous(), w_kio.contiguous()  # the kernel assumes unit column strides
    neighbour_map = neighbour_map.contiguous()
    sorted_ = order is not None
    if sorted_:
        if masks.shape != (rows, (k + MASK_WORD_BITS - 1) // MASK_WORD_BITS) or masks.dtype != torch.int32:
            raise ValueError(f"masks must be int32 ({rows}, ceil({k}/32)), got {masks.dtype} {tuple(masks.shape)}")
        if order.shape != (rows,):
            raise ValueError(f"order must have shape ({rows},), got {tuple(order.shape)}")
        masks = masks.contiguous()
    else:
        order = masks = neighbour_map  # unused pointers

    def grid(meta: dict[str, Any]) -> tuple[int, int]:
        return (triton.cdiv(rows, meta["BLOCK_M"]), triton.cdiv(c_out, meta["BLOCK_N"]))

    launch(_implicit_gemm_tuned, _implicit_gemm_kernel, grid,
           (x, w_kio, out, neighbour_map, order, masks, rows, k, c_in, c_out,
            x.stride(0), w_kio.stride(0), w_kio.stride(1), out.stride(0), masks.shape[1] if sorted_ else 1),
           config_index, SORTED=sorted_, **dot_options(x.dtype, allow_tf32))
    return out
