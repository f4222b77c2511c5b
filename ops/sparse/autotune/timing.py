"""Robust timing of a model run, in total and per layer group (forward and backward).

:class:`HookTimer` times ``run()`` (all samples, forward or forward + backward) after
``warmup`` runs, ``repeats`` times, and reports medians after dropping outliers beyond
1.5 IQR.  Per-group times come from hooks on the conv layers: the forward of a layer is the
time between its pre-hook and hook (tensor conversions and kernel-map building included,
as they happen inside the layer); its backward is the time between the gradient reaching
its output and leaving its input, marked by identity autograd nodes.  On CUDA every stamp
synchronizes first.  Any callable with :class:`Timer`'s signature can replace it (tests
inject a deterministic one).
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

import torch
from torch import Tensor, nn

from .groups import Group, GroupKey


@dataclass(frozen=True)
class Measurement:
    """Median seconds of one run (all samples) in total and per group."""

    total: float
    per_group: dict[GroupKey, float]


class Timer(Protocol):
    def __call__(self, run: Callable[[], Any], groups: Sequence[Group], model: nn.Module,
                 training: bool) -> Measurement: ...


def robust_median(values: Sequence[float]) -> float:
    """Median of ``values`` without the points beyond 1.5 IQR of the quartiles."""
    if not values:
        raise ValueError("robust_median of no values")
    if len(values) >= 4:
        q1, _, q3 = statistics.quantiles(values, n=4)
        lo, hi = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
        kept = [v for v in values if lo <= v <= hi]
        values = kept or list(values)
    return float(statistics.median(values))


class _Mark(torch.autograd.Function):
    """Identity whose backward calls ``callback()`` (a timestamp)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, callback: Callable[[], None]) -> Tensor:
        ctx.callback = callback
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        ctx.callback()
        return grad, None


class HookTimer:
    """The real timer (module doc)."""

    def __init__(self, warmup: int = 1, repeats: int = 5,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        if warmup < 0 or repeats < 1:
            raise ValueError(f"HookTimer needs warmup >= 0 and repeats >= 1, got {warmup}, "
                             f"{repeats}")
        self.warmup, self.repeats, self.clock = warmup, repeats, clock

    def __call__(self, run: Callable[[], Any], groups: Sequence[Group], model: nn.Module,
                 training: bool) -> Measurement:
        cuda = any(p.is_cuda for p in model.parameters())

        def now() -> float:
            if cuda:
                torch.cuda.synchronize()
            return self.clock()

        acc: dict[GroupKey, float] = {}
        open_bwd: dict[int, tuple[GroupKey, float]] = {}
        handles = []

        def add(key: GroupKey, seconds: float) -> None:
            acc[key] = acc.get(key, 0.0) + seconds

        def hooks(key: GroupKey) -> tuple[Callable[..., Any], Callable[..., Any]]:
            state: dict[str, Any] = {}

            def pre(_m: nn.Module, args: tuple[Any, ...]) -> None:
                x = args[0]
                if training and torch.is_grad_enabled():
                    token = object()
                    state["x"], state["features"], state["token"] = x, x.features, token
                    x.features = _Mark.apply(x.features, lambda: close(token))
                state["t0"] = now()

            def post(_m: nn.Module, args: tuple[Any, ...], out: Any) -> None:
                add(key, now() - state["t0"])
                if "x" in state:
                    state.pop("x").features = state.pop("features")
                    token = state.pop("token")
                    out.features = _Mark.apply(
                        out.features, lambda: open_bwd.__setitem__(id(token), (key, now())))
            return pre, post

        def close(token: object) -> None:
            hit = open_bwd.pop(id(token), None)
            if hit is not None:
                add(hit[0], now() - hit[1])

        totals: list[float] = []
        per: dict[GroupKey, list[float]] = {g.key: [] for g in groups}
        try:
            for g in groups:
                pre, post = hooks(g.key)
                for name in g.modules:
                    m = model.get_submodule(name)
                    handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
            for i in range(self.warmup + self.repeats):
                acc.clear()
                open_bwd.clear()
                t0 = now()
                run()
                end = now()
                for key, start in open_bwd.values():  # first layers: input needs no grad
                    add(key, end - start)
                if i >= self.warmup:
                    totals.append(end - t0)
                    for key in per:
                        per[key].append(acc.get(key, 0.0))
        finally:
            for h in handles:
                h.remove()
        return Measurement(robust_median(totals),
                           {k: robust_median(v) for k, v in per.items()})
