"""Robust wall-clock timing for benchmarks: warm-up, repeats, median, IQR outlier rejection.

Several functions measured for a ratio are timed *interleaved* (:func:`measure_interleaved`:
round r runs every function once), so a load burst on a shared machine inflates all sides
alike instead of one.  :func:`machine_load` reads ``os.getloadavg()`` so a report can say when
the machine was busy; :func:`torch_threads` pins ``torch.set_num_threads`` for a block.
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from torch.overrides import TorchFunctionMode

Clock = Callable[[], float]


@dataclass(frozen=True)
class Timing:
    """Summary of one measured function, in seconds; ``median`` is the figure to report."""

    median: float
    iqr: float
    minimum: float
    kept: int
    rejected: int

    @property
    def ms(self) -> float:
        return self.median * 1e3

    def as_dict(self) -> dict[str, float | int]:
        return {"median_ms": self.median * 1e3, "iqr_ms": self.iqr * 1e3,
                "min_ms": self.minimum * 1e3, "kept": self.kept, "rejected": self.rejected}


def quartiles(samples: Sequence[float]) -> tuple[float, float]:
    """(Q1, Q3) with linear interpolation (numpy's default); both equal the value for n = 1."""
    if len(samples) == 1:
        return samples[0], samples[0]
    q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return q1, q3


def reject_outliers(samples: Sequence[float], k: float = 1.5) -> list[float]:
    """Samples inside Tukey's fences [Q1 - k*IQR, Q3 + k*IQR] (all of them when n < 4)."""
    if not samples:
        raise ValueError("reject_outliers: no samples")
    if len(samples) < 4:
        return list(samples)
    q1, q3 = quartiles(samples)
    lo, hi = q1 - k * (q3 - q1), q3 + k * (q3 - q1)
    return [s for s in samples if lo <= s <= hi]


def summarize(samples: Sequence[float], k: float = 1.5) -> Timing:
    """Median / IQR / minimum of ``samples`` after :func:`reject_outliers`."""
    kept = reject_outliers(samples, k)
    q1, q3 = quartiles(kept)
    return Timing(statistics.median(kept), q3 - q1, min(kept), len(kept),
                  len(samples) - len(kept))


def measure_interleaved(fns: Mapping[str, Callable[[], Any]], repeats: int = 7, warmup: int = 1,
                        clock: Clock = time.perf_counter) -> dict[str, Timing]:
    """Time every function ``repeats`` times, interleaved round by round, after ``warmup``
    untimed rounds; one :class:`Timing` per name."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats}, {warmup}")
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = clock()
            fn()
            samples[name].append(clock() - start)
    return {name: summarize(s) for name, s in samples.items()}


def measure(fn: Callable[[], Any], repeats: int = 7, warmup: int = 1,
            clock: Clock = time.perf_counter) -> Timing:
    """:func:`measure_interleaved` of one function."""
    return measure_interleaved({"fn": fn}, repeats, warmup, clock)["fn"]


MATMUL_FUNCTIONS = (torch.mm, torch.bmm, torch.matmul, torch.addmm, torch.baddbmm,
                    torch.Tensor.mm, torch.Tensor.bmm, torch.Tensor.matmul,
                    torch.Tensor.__matmul__, torch.Tensor.addmm)


class MatmulTimer(TorchFunctionMode):
    """Adds up the wall time spent inside matmul calls (:data:`MATMUL_FUNCTIONS`) made from
    Python while active: the "mm part" of a sparse conv, gathers / scatters / maps left out.
    Cheaper and steadier than parsing a ``torch.profiler`` trace for every run."""

    def __init__(self, clock: Clock = time.perf_counter) -> None:
        super().__init__()
        self.clock, self.seconds, self.calls = clock, 0.0, 0

    def __torch_function__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        if func not in MATMUL_FUNCTIONS:
            return func(*args, **(kwargs or {}))
        start = self.clock()
        try:
            return func(*args, **(kwargs or {}))
        finally:
            self.seconds += self.clock() - start
            self.calls += 1


def matmul_seconds(fn: Callable[[], Any], repeats: int = 3) -> float:
    """Median over ``repeats`` calls of ``fn`` of the time inside its matmul calls."""
    times = []
    for _ in range(repeats):
        with MatmulTimer() as timer:
            fn()
        times.append(timer.seconds)
    return statistics.median(times)


def profiled_matmul_seconds(fn: Callable[[], Any],
                            ops: tuple[str, ...] = ("aten::mm", "aten::bmm", "aten::addmm")
                            ) -> float:
    """Cross-check of :func:`matmul_seconds`: self CPU time of the matmul ops in one
    ``torch.profiler``-profiled call of ``fn`` (slower: the trace is parsed)."""
    with _quiet_stderr(), torch.profiler.profile(
            activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in ops) / 1e6


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 for the block (kineto prints two lines per profiling run)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextmanager
def torch_threads(n: int) -> Iterator[int]:
    """Run the block with ``torch.set_num_threads(n)``; the previous count is restored."""
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class MachineLoad:
    """1/5/15-minute load averages vs the CPU count; ``high`` when the 1-minute load exceeds
    ``threshold`` (default: the CPU count minus the threads the benchmark uses)."""

    load1: float
    load5: float
    load15: float
    cpus: int
    threshold: float

    @property
    def high(self) -> bool:
        return self.load1 > self.threshold

    def note(self) -> str:
        text = (f"load average {self.load1:.2f} / {self.load5:.2f} / {self.load15:.2f} on "
                f"{self.cpus} CPUs")
        if self.high:
            text += (f" -- HIGH (> {self.threshold:g}): other jobs share the CPUs; ratios "
                     f"measured interleaved in one run are inflated on both sides, absolute "
                     f"times are not trustworthy")
        return text

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "high": self.high}


def machine_load(threads: int = 1, threshold: float | None = None) -> MachineLoad:
    """Current load averages (``os.getloadavg``); see :class:`MachineLoad`.  The default
    threshold leaves room for one foreign runnable thread beside ``threads`` of ours:
    ``max(1, cpus - threads + 1)`` before the run (call with ``threads=0`` after it, when
    the benchmark's own threads are still in the average)."""
    cpus = os.cpu_count() or 1
    limit = threshold if threshold is not None else max(1.0, cpus - threads + 1.0)
    return MachineLoad(*os.getloadavg(), cpus=cpus, threshold=limit)
