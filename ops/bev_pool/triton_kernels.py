"""Triton GPU kernels of BEV pooling (the interval method), forward and backward, autotuned.

* ``_interval_sum_kernel``: one program per (interval, channel block); it walks the interval's
  sorted points ``BLOCK_P`` at a time, sums them in fp32 (fp64 for fp64) and writes the cell's
  row once: no atomics, deterministic.
* ``_gather_cells_kernel``: the backward, one program per (point block, channel block):
  ``grad_features[i] = grad_cells[ranks[i]]`` (zero where the point was dropped).

Both are wrapped with ``triton.autotune`` (key: the channel count; under the interpreter a
config is "benchmarked" by one timed call, so tuning runs on the CPU too), and run on CPU
tensors under ``TRITON_INTERPRET=1`` (set before importing triton), which the tests use.
:func:`compile_for_target` lowers them for a GPU architecture without a GPU.
``TRITON_AVAILABLE`` is False when triton cannot be imported.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised only where triton is absent
    triton = None  # type: ignore[assignment]
    TRITON_AVAILABLE = False
else:
    TRITON_AVAILABLE = True


def make_configs(specs: Sequence[tuple[dict[str, int], int, int]]) -> list[Any]:
    """``triton.Config`` list from ``(meta, num_warps, num_stages)`` triples ([] without triton)."""
    if not TRITON_AVAILABLE:
        return []
    return [triton.Config(dict(meta), num_warps=w, num_stages=s) for meta, w, s in specs]


def _interpreter_bench(kernel_call: Callable[[], None], quantiles: Sequence[float]) -> list[float]:
    """The autotuner's benchmark under the interpreter (no GPU timer): one timed call."""
    start = time.perf_counter()
    kernel_call()
    return [time.perf_counter() - start] * len(quantiles)


def launch(tuned: Any, plain: Any, grid: Callable[[dict[str, Any]], tuple[int, ...]],
           args: Sequence[Any], config_index: int | None, **constexprs: Any) -> None:
    """Run the autotuned kernel, or ``plain`` with ``tuned.configs[config_index % len]``."""
    if config_index is None:
        tuned[grid](*args, **constexprs)
        return
    config = tuned.configs[config_index % len(tuned.configs)]
    plain[grid](*args, **constexprs, **config.kwargs, num_warps=config.num_warps,
                num_stages=config.num_stages)


FORWARD_CONFIGS = make_configs([({"BLOCK_P": 16, "BLOCK_C": 32}, 2, 1),
                                ({"BLOCK_P": 32, "BLOCK_C": 64}, 4, 1),
                                ({"BLOCK_P": 16, "BLOCK_C": 128}, 4, 1),
                                ({"BLOCK_P": 64, "BLOCK_C": 32}, 4, 1)])
BACKWARD_CONFIGS = make_configs([({"BLOCK_N": 64, "BLOCK_C": 32}, 2, 1),
                                 ({"BLOCK_N": 32, "BLOCK_C": 128}, 4, 1),
                                 ({"BLOCK_N": 128, "BLOCK_C": 64}, 4, 1)])


def require_triton() -> None:
    """Raise a clear error when triton is not importable."""
    if not TRITON_AVAILABLE:
        raise RuntimeError("triton is not installed; `pip install triton` to use the Triton BEV pooling "
                           "kernels (or pass backend='torch')")


if TRITON_AVAILABLE:

    @triton.jit
    def _interval_sum_kernel(feat_ptr, order_ptr, starts_ptr, lengths_ptr, cells_ptr, out_ptr, C,
                             ACC_FP64: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
        interval = tl.program_id(0)
        cols = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        col_mask = cols < C
        start = tl.load(starts_ptr + interval)
        count = tl.load(lengths_ptr + interval)
        cell = tl.load(cells_ptr + interval)
        acc_dt = tl.float64 if ACC_FP64 else tl.float32
        acc = tl.zeros((BLOCK_C,), acc_dt)
        for p0 in range(0, count, BLOCK_P):
            p = p0 + tl.arange(0, BLOCK_P)
            p_mask = p < count
            rows = tl.load(order_ptr + start + p, mask=p_mask, other=0)
            mask = p_mask[:, None] & col_mask[None, :]
            vals = tl.load(feat_ptr + rows[:, None] * C + cols[None, :], mask=mask, other=0.0)
            acc += tl.sum(vals.to(acc_dt), axis=0)
        tl.store(out_ptr + cell * C + cols, acc.to(out_ptr.dtype.element_ty), mask=col_mask)

    @triton.jit
    def _gather_cells_kernel(grad_ptr, ranks_ptr, out_ptr, N, C,
                             BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr):
        rows = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
        cols = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        row_mask = rows < N
        col_mask = cols < C
        ranks = tl.load(ranks_ptr + rows, mask=row_mask, other=-1)
        valid = (ranks >= 0)[:, None] & col_mask[None, :]
        vals = tl.load(grad_ptr + ranks[:, None] * C + cols[None, :], mask=valid, other=0.0)
        tl.store(out_ptr + rows[:, None] * C + cols[None, :], vals, mask=row_mask[:, None] & col_mask[None, :])

    @triton.jit
    def _probe():
        pass

    INTERPRETED = type(_probe).__name__ == "InterpretedFunction"
    _BENCH = {"do_bench": _interpreter_bench} if INTERPRETED else {}
    _interval_sum_tuned = triton.autotune(FORWARD_CONFIGS, key=["C"], **_BENCH)(_interval_sum_kernel)
    _gather_cells_tuned = triton.autotune(BACKWARD_CONFIGS, key=["C"], **_BENCH)(_gather_cells_kernel)
else:
    INTERPRETED = False


def interval_sum_triton(features: torch.Tensor, order: torch.Tensor, starts: torch.Tensor,
                        lengths: torch.Tensor, cells: torch.Tensor, num_rows: int,
                        config_index: int | None = None) -> torch.Tensor:
    """``(num_rows, C)``: row ``cells[m]`` = sum of the features of interval ``m``, others 0.
    ``config_index`` pins one of :data:`FORWARD_CONFIGS` instead of autotuning."""
    require_triton()
    features = features.contiguous()
    channels = features.shape[1]
    out = features.new_zeros((num_rows, channels))
    intervals = starts.numel()
    if intervals and channels:
        launch(_interval_sum_tuned, _interval_sum_kernel,
               lambda meta: (intervals, triton.cdiv(channels, meta["BLOCK_C"])),
               (features, order, starts, lengths, cells, out, channels), config_index,
               ACC_FP64=features.dtype == torch.float64)
    return out


def gather_cells_triton(grad_cells: torch.Tensor, ranks: torch.Tensor,
                        config_index: int | None = None) -> torch.Tensor:
    """``(N, C)``: row ``i`` = ``grad_cells[ranks[i]]``, zero where ``ranks[i] < 0``."""
    require_triton()
    grad_cells = grad_cells.contiguous()
    n, channels = ranks.numel(), grad_cells.shape[1]
    out = grad_cells.new_empty((n, channels))
    if n and channels:
        launch(_gather_cells_tuned, _gather_cells_kernel,
               lambda meta: (triton.cdiv(n, meta["BLOCK_N"]), triton.cdiv(channels, meta["BLOCK_C"])),
               (grad_cells, ranks, out, n, channels), config_index)
    return out


def compile_for_target(arch: int = 90, dtype: str = "fp32") -> list[dict[str, Any]]:
    """Compile every BEV pooling kernel (every config) for ``cuda:sm_<arch>`` without a GPU; one row per
    (kernel, config) with its shared memory and cubin size.  Needs ``TRITON_INTERPRET`` unset."""
    require_triton()
    if INTERPRETED:
        raise RuntimeError("compile_for_target needs TRITON_INTERPRET unset: interpreted kernels "
                           "cannot be compiled")
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from . import triton_depth as td

    f, fp64 = f"*{dtype}", {"ACC_FP64": dtype == "fp64"}
    interval = {"order_ptr": "*i64", "starts_ptr": "*i64", "lengths_ptr": "*i64", "cells_ptr": "*i64",
                "out_ptr": f, "C": "i32"}
    specs = [("interval_sum", _interval_sum_kernel, FORWARD_CONFIGS, {"feat_ptr": f, **interval}, fp64),
             ("gather_cells", _gather_cells_kernel, BACKWARD_CONFIGS,
              {"grad_ptr": f, "ranks_ptr": "*i64", "out_ptr": f, "N": "i64", "C": "i32"}, {}),
             ("depth_interval_sum", td._depth_interval_sum_kernel, td.FORWARD_CONFIGS,
              {"depth_ptr": f, "ctx_ptr": f, **interval, "DHW": "i64", "HW": "i64"}, fp64),
             ("depth_grad", td._depth_grad_kernel, td.DEPTH_GRAD_CONFIGS,
              {"grad_ptr": f, "ctx_ptr": f, "ranks_ptr": "*i64", "out_ptr": f, "N": "i64", "C": "i32",
               "DHW": "i64", "HW": "i64"}, fp64),
             ("context_grad", td._context_grad_kernel, td.CONTEXT_GRAD_CONFIGS,
              {"grad_ptr": f, "depth_ptr": f, "ranks_ptr": "*i64", "out_ptr": f, "S": "i64", "C": "i32",
               "D": "i32", "HW": "i64"}, fp64)]
    rows = []
    for name, kernel, configs, signature, constexprs in specs:
        for config in configs:
            consts = {**constexprs, **config.kwargs}
            sig = {**signature, **{k: "constexpr" for k in consts}}
            start = time.perf_counter()
            compiled = triton.compile(ASTSource(fn=kernel, signature=sig, constexprs=consts),
                                      target=GPUTarget("cuda", arch, 32),
                                      options={"num_warps": config.num_warps, "num_stages": config.num_stages})
            rows.append({"kernel": name, "config": str(config), "shared": int(compiled.metadata.shared),
                         "cubin": len(compiled.asm["cubin"]), "seconds": time.perf_counter() - start})
    return rows
