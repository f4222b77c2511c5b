"""Timing and accuracy of one group of interchangeable BEV pooling methods.

A group is a dict ``name -> fn(*inputs) -> BEV tensor`` over the same float32 inputs (the
first method is the one the others are compared with).  :func:`measure_group` times, each
interleaved round by round (:func:`.timing.measure_interleaved`, one warm-up round):

* ``forward``: the call under ``torch.no_grad``;
* ``backward``: ``autograd.grad`` alone, on a graph built once per method and kept;
* ``fwdbwd``: forward and ``autograd.grad`` together;

and, once: each method's relative error against a float64 evaluation of ``reference`` and
its input gradients' relative difference from the first method's.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from tqdm import tqdm

from .timing import measure_interleaved

Pool = Callable[..., torch.Tensor]


def timings(fns: dict[str, Callable[[], Any]], repeats: int, desc: str) -> dict[str, dict[str, float]]:
    """Interleaved timings (1 warm-up round) with a progress bar over the calls."""
    bar = tqdm(total=(repeats + 1) * len(fns), desc=desc, unit="call", leave=False)

    def tick(fn: Callable[[], Any]) -> Callable[[], Any]:
        def call() -> Any:
            out = fn()
            bar.update()
            return out
        return call
    measured = measure_interleaved({k: tick(f) for k, f in fns.items()}, repeats, 1)
    bar.close()
    return {name: t.as_dict() for name, t in measured.items()}


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b| (0 for empty tensors)."""
    if b.numel() == 0:
        return 0.0
    return float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30))


def _leaves(inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    return tuple(x.detach().requires_grad_() for x in inputs)


def accuracy(pools: dict[str, Pool], inputs: Sequence[torch.Tensor], grad_bev: torch.Tensor,
             reference: Pool) -> dict[str, dict[str, float]]:
    """Per method: ``fwd_rel_error`` vs ``reference`` in float64, ``grad_rel_diff`` of its input
    gradients vs the first method's (max over inputs)."""
    with torch.no_grad():
        expected = reference(*(x.double() for x in inputs))
    out: dict[str, dict[str, float]] = {}
    first: tuple[torch.Tensor, ...] | None = None
    for name, pool in pools.items():
        leaves = _leaves(inputs)
        result = pool(*leaves)
        grads = torch.autograd.grad(result, leaves, grad_bev)
        first = first or grads
        out[name] = {"fwd_rel_error": relative(result.detach(), expected),
                     "grad_rel_diff": max(relative(g, f) for g, f in zip(grads, first))}
        del result, grads
    return out


def measure_group(pools: dict[str, Pool], inputs: Sequence[torch.Tensor], grad_bev: torch.Tensor,
                  repeats: int, label: str) -> dict[str, dict[str, dict[str, float]]]:
    """``{"forward": ..., "backward": ..., "fwdbwd": ...}``, each ``method -> Timing.as_dict()``."""
    with torch.no_grad():
        forward = timings({m: (lambda p=p: p(*inputs)) for m, p in pools.items()}, repeats, f"{label} forward")
    graphs = {}
    for name, pool in pools.items():
        leaves = _leaves(inputs)
        graphs[name] = (pool(*leaves), leaves)
    backward = timings({m: (lambda g=g: torch.autograd.grad(g[0], g[1], grad_bev, retain_graph=True))
                        for m, g in graphs.items()}, repeats, f"{label} backward")
    del graphs
    leaves = _leaves(inputs)
    fwdbwd = timings({m: (lambda p=p: torch.autograd.grad(p(*leaves), leaves, grad_bev))
                      for m, p in pools.items()}, repeats, f"{label} forward+backward")
    return {"forward": forward, "backward": backward, "fwdbwd": fwdbwd}
