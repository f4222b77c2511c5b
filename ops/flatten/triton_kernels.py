"""Triton kernels of the flattened-window ops (the GPU path of :mod:`.api`).

* ``_window_keys_kernel``: the serpentine sort key of one order for every voxel, one pass
  over the coords (bit-identical to :func:`.api.flatten_keys`; the sort stays in torch).
* ``_group_attention_kernel``: gather + attention + scatter fused.  One program per
  (query block, group, head): it reads the group's query rows straight from the ``(N, C)``
  voxel-order q / k / v through the layout's ``gather`` index (no padded copies), runs an
  online softmax over key blocks (masked keys skipped), and stores each voxel's output only
  from its primary slot, so duplicates are never written twice and no atomics are needed.
  Autotuned over ``BLOCK_M`` / ``BLOCK_N`` / warps, keyed on group size and head dim.

The backward pass recomputes the attention in torch (:func:`.api.group_attention_torch`).
Runs on CPU tensors under ``TRITON_INTERPRET=1`` (set before importing triton; the tests do),
where the autotuner times one call per config and ``config_index`` can pin a config.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from perception_ops.sparse.triton.common import (INTERPRETED, TRITON_AVAILABLE, dot_options,
                                                 make_configs, next_pow2)

from .api import group_attention_torch, num_windows, parse_order
from .plan import GroupLayout, check_positive_pair

if TRITON_AVAILABLE:
    import triton
    import triton.language as tl

    from perception_ops.sparse.triton.common import dot_acc

KEY_BLOCK = 256
ATTENTION_CONFIGS = make_configs([
    ({"BLOCK_M": 16, "BLOCK_N": 16}, 1, 1),
    ({"BLOCK_M": 32, "BLOCK_N": 32}, 2, 1),
    ({"BLOCK_M": 64, "BLOCK_N": 32}, 4, 2),
    ({"BLOCK_M": 64, "BLOCK_N": 64}, 4, 2),
    ({"BLOCK_M": 128, "BLOCK_N": 64}, 8, 2),
])
"""Tiles of the fused attention (``(meta, num_warps, num_stages)``); the autotuner picks one
per (group size, head dim)."""


def require_triton() -> None:
    """Raise a clear error when triton cannot be imported."""
    if not TRITON_AVAILABLE:
        raise RuntimeError("triton is not installed; `pip install triton` for the Triton "
                           "flatten kernels (the torch path of perception_ops.flatten works "
                           "everywhere)")


def _interpreter_bench(kernel_call: Callable[[], None], quantiles: Sequence[float]) -> list[float]:
    """The autotuner's benchmark under the interpreter (no GPU timer): one timed call."""
    start = time.perf_counter()
    kernel_call()
    return [time.perf_counter() - start] * len(quantiles)


if TRITON_AVAILABLE:

    @triton.jit
    def _window_keys_kernel(coords_ptr, stride_n, stride_c, keys_ptr, n, n_along, n_across,
                            w_along, w_across, shift_along, shift_across,
                            ALONG_X: tl.constexpr, BLOCK: tl.constexpr):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        ok = offs < n
        row = coords_ptr + offs * stride_n
        b = tl.load(row, mask=ok, other=0).to(tl.int64)
        y = tl.load(row + stride_c, mask=ok, other=0).to(tl.int64)
        x = tl.load(row + 2 * stride_c, mask=ok, other=0).to(tl.int64)
        if ALONG_X:
            along, across = x + shift_along, y + shift_across
        else:
            along, across = y + shift_along, x + shift_across
        win_a, win_c = along // w_along, across // w_across
        off_a, off_c = along % w_along, across % w_across
        odd_row = (win_c % 2) == 1
        col = tl.where(odd_row, n_along - 1 - win_a, win_a)
        inner = off_a * w_across + tl.where((off_a % 2) == 1, w_across - 1 - off_c, off_c)
        inner = tl.where(odd_row, w_along * w_across - 1 - inner, inner)
        key = ((b * n_across + win_c) * n_along + col) * (w_along * w_across) + inner
        tl.store(keys_ptr + offs, key, mask=ok)

    @triton.jit
    def _group_attention_kernel(q_ptr, k_ptr, v_ptr, out_ptr, gather_ptr, valid_ptr, primary_ptr,
                                stride_q, stride_k, stride_v, stride_o, group_size, scale,
                                HEAD_DIM: tl.constexpr, HAS_MASK: tl.constexpr,
                                PRECISION: tl.constexpr, DOT_FP32: tl.constexpr,
                                BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr,
                                BLOCK_N: tl.constexpr):
        base = tl.program_id(1).to(tl.int64) * group_size
        cols = tl.program_id(2) * HEAD_DIM + tl.arange(0, BLOCK_D)
        d_ok = tl.arange(0, BLOCK_D) < HEAD_DIM
        m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
        m_ok = m < group_size
        q_rows = tl.load(gather_ptr + base + m, mask=m_ok, other=0).to(tl.int64)
        q = tl.load(q_ptr + q_rows[:, None] * stride_q + cols[None, :],
                    mask=m_ok[:, None] & d_ok[None, :], other=0.0)
        m_i = tl.full((BLOCK_M,), -1.0e30, tl.float32)  # finite: a fully masked block is safe
        l_i = tl.zeros((BLOCK_M,), tl.float32)
        acc = tl.zeros((BLOCK_M, BLOCK_D), tl.float32)
        for n0 in range(0, group_size, BLOCK_N):
            n = n0 + tl.arange(0, BLOCK_N)
            in_group = n < group_size
            key_ok = in_group
            if HAS_MASK:
                key_ok = in_group & (tl.load(valid_ptr + base + n, mask=in_group, other=0) != 0)
            k_rows = tl.load(gather_ptr + base + n, mask=in_group, other=0).to(tl.int64)
            k = tl.load(k_ptr + k_rows[:, None] * stride_k + cols[None, :],
                        mask=key_ok[:, None] & d_ok[None, :], other=0.0)
            s = dot_acc(q, tl.trans(k), tl.zeros((BLOCK_M, BLOCK_N), tl.float32), PRECISION,
                        DOT_FP32) * scale
            s = tl.where(key_ok[None, :], s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, 1))
            alpha = tl.exp(m_i - m_new)
            p = tl.exp(s - m_new[:, None])
            l_i = l_i * alpha + tl.sum(p, 1)
            v = tl.load(v_ptr + k_rows[:, None] * stride_v + cols[None, :],
                        mask=key_ok[:, None] & d_ok[None, :], other=0.0)
            acc = dot_acc(p.to(v.dtype), v, acc * alpha[:, None], PRECISION, DOT_FP32)
            m_i = m_new
        out = acc / l_i[:, None]
        primary = tl.load(primary_ptr + base + m, mask=m_ok, other=0) != 0
        tl.store(out_ptr + q_rows[:, None] * stride_o + cols[None, :],
                 out.to(out_ptr.dtype.element_ty), mask=(m_ok & primary)[:, None] & d_ok[None, :])

    _group_attention_tuned = triton.autotune(
        configs=ATTENTION_CONFIGS, key=["group_size", "HEAD_DIM"],
        do_bench=_interpreter_bench if INTERPRETED else None)(_group_attention_kernel)


def flatten_keys_triton(coords: Tensor, sparse_shape: Sequence[int],
                        window_shape: int | Sequence[int], order: str) -> Tensor:
    """:func:`.api.flatten_keys` computed by ``_window_keys_kernel``: ``(N,)`` int64."""
    require_triton()
    axis, shift = parse_order(order)
    wx, wy = check_positive_pair(window_shape, "window_shape")
    height, width = sparse_shape
    coords = coords.contiguous()
    n = coords.shape[0]
    keys = torch.empty(n, dtype=torch.int64, device=coords.device)
    if n == 0:
        return keys
    if axis == "x":
        sizes = (num_windows(width, wx), num_windows(height, wy), wx, wy)
        shifts = (wx // 2, wy // 2) if shift else (0, 0)
    else:
        sizes = (num_windows(height, wy), num_windows(width, wx), wy, wx)
        shifts = (wy // 2, wx // 2) if shift else (0, 0)
    _window_keys_kernel[(triton.cdiv(n, KEY_BLOCK),)](
        coords, coords.stride(0), coords.stride(1), keys, n, *sizes, *shifts,
        ALONG_X=axis == "x", BLOCK=KEY_BLOCK)
    return keys


def _launch_attention(q: Tensor, k: Tensor, v: Tensor, layout: GroupLayout, num_heads: int,
                      config_index: int | None) -> Tensor:
    c = q.shape[1]
    head_dim = c // num_heads
    out = torch.empty_like(q)
    valid = layout.key_mask if layout.key_mask is not None else layout.primary  # dummy pointer
    args = (q, k, v, out, layout.gather, valid.reshape(-1), layout.primary, q.stride(0),
            k.stride(0), v.stride(0), out.stride(0), layout.group_size, 1.0 / math.sqrt(head_dim))
    consts: dict[str, Any] = dict(HEAD_DIM=head_dim, HAS_MASK=layout.key_mask is not None,
                                  BLOCK_D=max(16, next_pow2(head_dim)),
                                  **dot_options(q.dtype, allow_tf32=False))

    def grid(meta: dict[str, Any]) -> tuple[int, int, int]:
        return triton.cdiv(layout.group_size, meta["BLOCK_M"]), layout.num_groups, num_heads

    if config_index is None:
        _group_attention_tuned[grid](*args, **consts)
    else:
        cfg = ATTENTION_CONFIGS[config_index % len(ATTENTION_CONFIGS)]
        _group_attention_kernel[grid](*args, **consts, **cfg.kwargs, num_warps=cfg.num_warps,
                                      num_stages=cfg.num_stages)
    return out


class _FusedGroupAttention(torch.autograd.Function):
    """Triton forward; backward by recomputing the torch path (SDPA) under autograd."""

    @staticmethod
    def forward(ctx, q, k, v, layout, num_heads, config_index):  # type: ignore[override]
        ctx.layout, ctx.num_heads = layout, num_heads
        ctx.save_for_backward(q, k, v)
        return _launch_attention(q, k, v, layout, num_heads, config_index)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):  # type: ignore[override]
        q, k, v = (t.detach().requires_grad_(True) for t in ctx.saved_tensors)
        with torch.enable_grad():
            out = group_attention_torch(q, k, v, ctx.layout, ctx.num_heads)
        grads = torch.autograd.grad(out, (q, k, v), grad_out)
        return (*grads, None, None, None)


def group_attention_triton(q: Tensor, k: Tensor, v: Tensor, layout: GroupLayout, num_heads: int,
                           config_index: int | None = None) -> Tensor:
    """:func:`.api.group_attention` by the fused kernel (autotuned unless ``config_index``
    pins one of :data:`ATTENTION_CONFIGS`); rows of q / k / v must be unit-stride."""
    require_triton()
    if any(t.stride(1) != 1 for t in (q, k, v)):
        raise ValueError("group_attention_triton: q, k, v need unit-stride channels")
    if q.shape[0] == 0 or layout.num_groups == 0:
        return q.new_zeros(q.shape)
    return _FusedGroupAttention.apply(q, k, v, layout, num_heads, config_index)
