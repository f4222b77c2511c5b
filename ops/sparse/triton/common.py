"""Shared pieces of the Triton sparse-conv kernels: the triton import guard, config lists,
launching a kernel either autotuned or with one explicit config, and the pair-block walk.

Every kernel module defines a plain ``@triton.jit`` function and wraps it with
:func:`autotuned` (key: the channel sizes; triton adds the tensors' dtypes); :func:`launch`
calls the autotuned wrapper, or the plain function with one pinned config (tests: the
interpreter is too slow to try every config on every call).  Under the interpreter the
autotuner "benchmarks" a config by one timed call, so the tuning path runs on the CPU too.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Sequence

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised only where triton is absent
    triton = None  # type: ignore[assignment]
    tl = None  # type: ignore[assignment]
    TRITON_AVAILABLE = False
else:
    TRITON_AVAILABLE = True

def require_triton() -> None:
    """Raise a clear error when triton is not importable."""
    if not TRITON_AVAILABLE:
        raise RuntimeError("triton is not installed; `pip install triton` to use the Triton sparse "
                           "conv kernels (or use the gather_gemm_scatter torch dataflow)")


def make_configs(specs: Sequence[tuple[dict[str, int], int, int]]) -> list[Any]:
    """``triton.Config`` list from ``(meta, num_warps, num_stages)`` triples ([] without triton)."""
    if not TRITON_AVAILABLE:
        return []
    return [triton.Config(dict(meta), num_warps=w, num_stages=s) for meta, w, s in specs]


def is_interpreted(kernel: Any) -> bool:
    """True when ``kernel`` (a jit function) was defined under ``TRITON_INTERPRET=1``."""
    return type(kernel).__name__ == "InterpretedFunction"


def prune_by_channels(block_for_arg: dict[str, str]) -> Callable[..., list[Any]]:
    """``early_config_prune`` dropping configs whose channel tiles dwarf the channel count.

    ``block_for_arg`` maps a channel-size argument (e.g. ``"C_OUT"``) to the meta-parameter
    tiling it (e.g. ``"BLOCK_N"``).  A config survives when every such tile is at most
    ``max(32, next_pow2(channels))``; the smallest-tile config is kept if none survives.
    """
    def prune(configs: list[Any], named_args: dict[str, Any], **kwargs: Any) -> list[Any]:
        def fits(cfg: Any) -> bool:
            for arg, block in block_for_arg.items():
                channels = int(named_args.get(arg, kwargs.get(arg, 1)))
                if cfg.kwargs[block] > max(32, next_pow2(channels)):
                    return False
            return True

        kept = [c for c in configs if fits(c)]
        if kept:
            return kept
        return [min(configs, key=lambda c: sum(c.kwargs[b] for b in block_for_arg.values()))]
    return prune


def autotuned(kernel: Any, configs: list[Any], block_for_arg: dict[str, str],
              atomic_outputs: Sequence[str] = ()) -> Any:
    """``triton.autotune`` wrapper of ``kernel`` keyed on the channel sizes (``block_for_arg``
    keys), pruning tiles much wider than the channels (:func:`prune_by_channels`).

    ``atomic_outputs`` are restored after each benchmarked run, so tuning never adds its
    trial results into a buffer that is accumulated with atomics.
    """
    return triton.autotune(configs=configs, key=list(block_for_arg), restore_value=list(atomic_outputs),
                           prune_configs_by={"early_config_prune": prune_by_channels(block_for_arg)},
                           do_bench=_interpreter_bench if INTERPRETED else None)(kernel)


def _interpreter_bench(kernel_call: Callable[[], None], quantiles: Sequence[float]) -> list[float]:
    """Benchmark of the autotuner under the interpreter (no GPU timer): one timed call."""
    start = time.perf_counter()
    kernel_call()
    return [time.perf_counter() - start] * len(quantiles)


def launch(tuned: Any, plain: Any, grid: Callable[[dict[str, Any]], tuple[int, ...]], args: Sequence[Any],
           config_index: int | None, **constexprs: Any) -> None:
    """Run ``tuned`` (autotuned) or, with ``config_index``, ``plain`` with config
    ``tuned.configs[config_index % len]`` (indices wrap so one index pins every kernel)."""
    if config_index is None:
        tuned[grid](*args, **constexprs)
    else:
        config = tuned.configs[config_index % len(tuned.configs)]
        meta = dict(config.kwargs)
        plain[grid](*args, **constexprs, **meta, num_warps=config.num_warps, num_stages=config.num_stages)


def dot_options(dtype: Any, allow_tf32: bool) -> dict[str, Any]:
    """Constexprs of :func:`dot_acc`: fp32 GEMMs in IEEE fp32 unless ``allow_tf32``."""
    import torch
    return {"PRECISION": "tf32" if allow_tf32 else "ieee",
            "DOT_FP32": INTERPRETED and dtype == torch.bfloat16}


def next_pow2(n: int) -> int:
    """Smallest power of two >= max(n, 1)."""
    return 1 << max(0, int(n) - 1).bit_length()


def pair_blocks(offset_ptr_host: Sequence[int], block: int) -> int:
    """Number of ``block``-sized pair blocks over all offsets (each offset starts a new block)."""
    return sum((offset_ptr_host[j + 1] - offset_ptr_host[j] + block - 1) // block
               for j in range(len(offset_ptr_host) - 1))


if TRITON_AVAILABLE:

    @triton.jit
    def locate_block(offset_ptr, K, pid, BLOCK: tl.constexpr, K_POW2: tl.constexpr):
        """(offset j, first pair, end pair) of pair block ``pid`` when every offset's CSR range
        ``[offset_ptr[j], offset_ptr[j+1])`` is cut into ``BLOCK``-sized blocks: a prefix sum
        of the per-offset block counts over all K offsets at once (``K_POW2`` >= K)."""
        jj = tl.arange(0, K_POW2)
        j_ok = jj < K
        lo = tl.load(offset_ptr + jj, mask=j_ok, other=0).to(tl.int64)
        hi = tl.load(offset_ptr + jj + 1, mask=j_ok, other=0).to(tl.int64)
        blocks = (hi - lo + BLOCK - 1) // BLOCK
        last = tl.cumsum(blocks, 0)  # one past the last block of each offset
        pid64 = pid.to(tl.int64)
        hit = (pid64 >= last - blocks) & (pid64 < last) & j_ok
        j = tl.sum(tl.where(hit, jj, 0), 0)
        start = tl.sum(tl.where(hit, lo + (pid64 - last + blocks) * BLOCK, 0), 0)
        end = tl.sum(tl.where(hit, hi, 0), 0)
        return j, start, end

    @triton.jit
    def dot_acc(a, b, acc, PRECISION: tl.constexpr, DOT_FP32: tl.constexpr):
        """``acc + a @ b`` in fp32.  ``DOT_FP32`` upcasts the operands first: only for bf16 under
        the interpreter, whose ``tl.dot`` multiplies bf16's raw uint16 bits."""
        if DOT_FP32:
            return tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
        return tl.dot(a, b, acc, input_precision=PRECISION)

    @triton.jit
    def bit_or(a, b):
        """Combine function of an OR-reduction."""
        return a | b

    @triton.jit
    def _probe():
        pass

# Whether the kernels of this package run in Triton's interpreter (TRITON_INTERPRET=1 at import).
INTERPRETED = TRITON_AVAILABLE and is_interpreted(_probe)
