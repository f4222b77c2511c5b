"""Triton GPU kernels of the fused depth x context pooling (:mod:`.depth`), autotuned.

* ``_depth_interval_sum_kernel``: one program per (interval, channel block), summing
  ``depth[q] * context[pixel of q]`` over the interval's sorted points;
* ``_depth_grad_kernel``: one program per point block, ``<grad[cell of q], context[pixel of q]>``
  accumulated over channel blocks;
* ``_context_grad_kernel``: one program per (pixel block, channel block), looping over the
  depth bins: ``sum_d depth[q] * grad[cell of q]``.

Point ``q = (g * D + d) * HW + s`` reads context row ``g * HW + s``.  No atomics.  Tested on
CPU tensors under ``TRITON_INTERPRET=1`` like :mod:`.triton_kernels`, whose launch helpers
these reuse.
"""
from __future__ import annotations

import torch

from .triton_kernels import INTERPRETED, TRITON_AVAILABLE, _interpreter_bench, launch, make_configs, require_triton

if TRITON_AVAILABLE:
    import triton
    import triton.language as tl

FORWARD_CONFIGS = make_configs([({"BLOCK_P": 16, "BLOCK_C": 32}, 2, 1),
                                ({"BLOCK_P": 32, "BLOCK_C": 64}, 4, 1),
                                ({"BLOCK_P": 16, "BLOCK_C": 128}, 4, 1)])
DEPTH_GRAD_CONFIGS = make_configs([({"BLOCK_N": 64, "BLOCK_C": 32}, 2, 1),
                                   ({"BLOCK_N": 32, "BLOCK_C": 128}, 4, 1)])
CONTEXT_GRAD_CONFIGS = make_configs([({"BLOCK_S": 32, "BLOCK_C": 32}, 2, 1),
                                     ({"BLOCK_S": 16, "BLOCK_C": 128}, 4, 1)])

if TRITON_AVAILABLE:

    @triton.jit
    def _depth_interval_sum_kernel(depth_ptr, ctx_ptr, order_ptr, starts_ptr, lengths_ptr, cells_ptr, out_ptr,
                                   C, DHW, HW, ACC_FP64: tl.constexpr, BLOCK_P: tl.constexpr,
                                   BLOCK_C: tl.constexpr):
        interval = tl.program_id(0)
        cols = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        col_mask = cols < C
        start = tl.load(starts_ptr + interval)
        count = tl.load(lengths_ptr + interval)
        acc_dt = tl.float64 if ACC_FP64 else tl.float32
        acc = tl.zeros((BLOCK_C,), acc_dt)
        for p0 in range(0, count, BLOCK_P):
            p = p0 + tl.arange(0, BLOCK_P)
            p_mask = p < count
            q = tl.load(order_ptr + start + p, mask=p_mask, other=0)
            w = tl.load(depth_ptr + q, mask=p_mask, other=0.0).to(acc_dt)
            rows = (q // DHW) * HW + q % HW
            vals = tl.load(ctx_ptr + rows[:, None] * C + cols[None, :], mask=p_mask[:, None] & col_mask[None, :],
                           other=0.0).to(acc_dt)
            acc += tl.sum(vals * w[:, None], axis=0)
        cell = tl.load(cells_ptr + interval)
        tl.store(out_ptr + cell * C + cols, acc.to(out_ptr.dtype.element_ty), mask=col_mask)

    @triton.jit
    def _depth_grad_kernel(grad_ptr, ctx_ptr, ranks_ptr, out_ptr, N, C, DHW, HW, ACC_FP64: tl.constexpr,
                           BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr):
        q = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
        q_mask = q < N
        ranks = tl.load(ranks_ptr + q, mask=q_mask, other=-1)
        valid = ranks >= 0
        rows = (q // DHW) * HW + q % HW
        acc_dt = tl.float64 if ACC_FP64 else tl.float32
        acc = tl.zeros((BLOCK_N,), acc_dt)
        for c0 in range(0, C, BLOCK_C):
            cols = c0 + tl.arange(0, BLOCK_C)
            mask = valid[:, None] & (cols < C)[None, :]
            g = tl.load(grad_ptr + ranks[:, None] * C + cols[None, :], mask=mask, other=0.0).to(acc_dt)
            x = tl.load(ctx_ptr + rows[:, None] * C + cols[None, :], mask=mask, other=0.0).to(acc_dt)
            acc += tl.sum(g * x, axis=1)
        tl.store(out_ptr + q, acc.to(out_ptr.dtype.element_ty), mask=q_mask)

    @triton.jit
    def _context_grad_kernel(grad_ptr, depth_ptr, ranks_ptr, out_ptr, S, C, D, HW, ACC_FP64: tl.constexpr,
                             BLOCK_S: tl.constexpr, BLOCK_C: tl.constexpr):
        pixel = tl.program_id(0).to(tl.int64) * BLOCK_S + tl.arange(0, BLOCK_S)
        cols = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        s_mask = pixel < S
        col_mask = cols < C
        first = (pixel // HW) * D * HW + pixel % HW
        acc_dt = tl.float64 if ACC_FP64 else tl.float32
        acc = tl.zeros((BLOCK_S, BLOCK_C), acc_dt)
        for d in range(0, D):
            q = first + d * HW
            ranks = tl.load(ranks_ptr + q, mask=s_mask, other=-1)
            w = tl.load(depth_ptr + q, mask=s_mask, other=0.0).to(acc_dt)
            mask = (ranks >= 0)[:, None] & col_mask[None, :]
            g = tl.load(grad_ptr + ranks[:, None] * C + cols[None, :], mask=mask, other=0.0).to(acc_dt)
            acc += g * w[:, None]
        tl.store(out_ptr + pixel[:, None] * C + cols[None, :], acc.to(out_ptr.dtype.element_ty),
                 mask=s_mask[:, None] & col_mask[None, :])

    _BENCH = {"do_bench": _interpreter_bench} if INTERPRETED else {}
    _forward_tuned = triton.autotune(FORWARD_CONFIGS, key=["C"], **_BENCH)(_depth_interval_sum_kernel)
    _depth_grad_tuned = triton.autotune(DEPTH_GRAD_CONFIGS, key=["C"], **_BENCH)(_depth_grad_kernel)
    _context_grad_tuned = triton.autotune(CONTEXT_GRAD_CONFIGS, key=["C"], **_BENCH)(_context_grad_kernel)


def depth_interval_sum_triton(depth: torch.Tensor, context: torch.Tensor, order: torch.Tensor,
                              starts: torch.Tensor, lengths: torch.Tensor, cells: torch.Tensor, num_rows: int,
                              config_index: int | None = None) -> torch.Tensor:
    """``(num_rows, C)`` pooled ``depth (G, D, HW) x context (G, HW, C)``."""
    require_triton()
    channels = context.shape[2]
    out = context.new_zeros((num_rows, channels))
    intervals = starts.numel()
    if intervals and channels:
        launch(_forward_tuned, _depth_interval_sum_kernel,
               lambda meta: (intervals, triton.cdiv(channels, meta["BLOCK_C"])),
               (depth, context, order, starts, lengths, cells, out, channels, depth.shape[1] * depth.shape[2],
                depth.shape[2]), config_index, ACC_FP64=context.dtype == torch.float64)
    return out


def depth_grad_triton(grad: torch.Tensor, context: torch.Tensor, ranks: torch.Tensor,
                      depth_shape: torch.Size, config_index: int | None = None) -> torch.Tensor:
    """``(G, D, HW)`` gradient of the depth."""
    require_triton()
    out = context.new_empty(depth_shape)
    n, channels = ranks.numel(), context.shape[2]
    if n:
        launch(_depth_grad_tuned, _depth_grad_kernel, lambda meta: (triton.cdiv(n, meta["BLOCK_N"]),),
               (grad, context, ranks, out, n, channels, depth_shape[1] * depth_shape[2], depth_shape[2]),
               config_index, ACC_FP64=context.dtype == torch.float64)
    return out


def context_grad_triton(grad: torch.Tensor, depth: torch.Tensor, ranks: torch.Tensor,
                        context_shape: torch.Size, config_index: int | None = None) -> torch.Tensor:
    """``(G, HW, C)`` gradient of the context."""
    require_triton()
    out = depth.new_empty(context_shape)
    pixels, channels = context_shape[0] * context_shape[1], context_shape[2]
    if pixels and channels:
        launch(_context_grad_tuned, _context_grad_kernel,
               lambda meta: (triton.cdiv(pixels, meta["BLOCK_S"]), triton.cdiv(channels, meta["BLOCK_C"])),
               (grad, depth, ranks, out, pixels, channels, depth.shape[1], depth.shape[2]), config_index,
               ACC_FP64=depth.dtype == torch.float64)
    return out
