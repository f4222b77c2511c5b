"""Per-stage wall time of one detector inference, and interleaved rounds over several models.

:class:`StageTimer` wraps, for the duration of a ``with`` block, the methods a CenterPoint-style
detector runs in ``test_step`` (``data_preprocessor.forward`` = voxelize, the voxel and
middle encoders, backbone + neck, the head's forward, the head's ``predict`` = decode / NMS)
with instance attributes that add up their wall time; leaving the block removes the wrappers.
The model's own code path is timed unchanged (``perception.apis.inference_detector``), so the
stages and the total come from the same calls.  ``pipeline`` (test transforms + collate) is the
total minus ``test_step``; ``other`` is ``test_step`` minus the named stages.
"""
from __future__ import annotations

import functools
import time
from typing import Any, Callable, Iterator, Mapping

from torch import nn
from tqdm import tqdm

from ..structures import Boxes3D, Frame
from .timing import Clock, summarize

STAGES: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("voxelize", (("data_preprocessor", "forward"),)),
    ("encoder", (("pts_voxel_encoder", "forward"), ("pts_middle_encoder", "forward"))),
    ("backbone+neck", (("pts_backbone", "forward"), ("pts_neck", "forward"))),
    ("head", (("pts_bbox_head", "forward"),)),
    ("decode/NMS", (("pts_bbox_head", "predict"),)),
)
"""Stage name -> (model attribute, method) pairs whose calls it adds up."""
REPORT_STAGES = ("pipeline", *(name for name, _ in STAGES), "other")
"""Columns of a breakdown, in execution order; they add up to the total."""
_MISSING = object()


def _no_sync() -> None:
    return None


class StageTimer:
    """Adds up the wall time of each stage of ``model`` while active (module doc).  Stages
    whose attribute the model lacks (e.g. no neck) are left out of :attr:`present`."""

    def __init__(self, model: nn.Module, clock: Clock = time.perf_counter,
                 sync: Callable[[], None] = _no_sync) -> None:
        self.model, self.clock, self.sync = model, clock, sync
        self.seconds: dict[str, float] = {}
        self.present: list[str] = []
        self._patched: list[tuple[Any, str, Any]] = []

    def _wrap(self, owner: Any, method: str, stage: str) -> None:
        original = getattr(owner, method)
        previous = owner.__dict__.get(method, _MISSING)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = self.clock()
            try:
                return original(*args, **kwargs)
            finally:
                self.sync()
                self.seconds[stage] = self.seconds.get(stage, 0.0) + self.clock() - start

        owner.__dict__[method] = timed
        self._patched.append((owner, method, previous))

    def __enter__(self) -> "StageTimer":
        self.seconds, self.present = {}, []
        for stage, parts in STAGES:
            found = [(owner, method) for attr, method in parts
                     if (owner := getattr(self.model, attr, None)) is not None
                     and callable(getattr(owner, method, None))]
            for owner, method in found:
                self._wrap(owner, method, stage)
            if found:
                self.present.append(stage)
        self._wrap(self.model, "test_step", "test_step")
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, method, previous in reversed(self._patched):
            if previous is _MISSING:
                del owner.__dict__[method]
            else:
                owner.__dict__[method] = previous
        self._patched = []

    def breakdown(self, total: float) -> dict[str, float]:
        """Seconds per :data:`REPORT_STAGES` entry of one call that took ``total`` seconds."""
        step = self.seconds.get("test_step", 0.0)
        named = {stage: self.seconds.get(stage, 0.0) for stage in self.present}
        return {"pipeline": total - step, **named, "other": step - sum(named.values())}


def _rounds(count: int, desc: str) -> Iterator[int]:
    return iter(tqdm(range(count), desc=desc, unit="round", leave=False))


def time_models(models: Mapping[str, nn.Module], frame: Frame,
                infer: Callable[[nn.Module, Frame], Boxes3D], rounds: int, warmup: int = 1,
                clock: Clock = time.perf_counter,
                sync: Callable[[], None] = _no_sync) -> dict[str, dict[str, Any]]:
    """``infer(model, frame)`` timed per stage for every model, interleaved: round r runs each
    model once (after ``warmup`` untimed rounds), so a load burst hits all models alike.
    Per model: ``total`` and ``stages`` (:meth:`Timing.as_dict`), ``fps`` (1 / median total),
    ``boxes`` (predicted in the last round) and the raw ``samples_ms``."""
    if rounds < 1 or warmup < 0:
        raise ValueError(f"rounds must be >= 1 and warmup >= 0, got {rounds}, {warmup}")
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in models}
    boxes: dict[str, int] = {}
    for r in _rounds(warmup + rounds, f"detector: {warmup} warm-up + {rounds} rounds"):
        for name, model in models.items():
            with StageTimer(model, clock, sync) as timer:
                start = clock()
                pred = infer(model, frame)
                sync()
                total = clock() - start
            boxes[name] = len(pred)
            if r < warmup:
                continue
            for key, value in {"total": total, **timer.breakdown(total)}.items():
                samples[name].setdefault(key, []).append(value)
    out = {}
    for name, per_key in samples.items():
        total = summarize(per_key["total"])
        out[name] = {"total": total.as_dict(), "fps": 1.0 / total.median,
                     "stages": {k: summarize(v).as_dict() for k, v in per_key.items()
                                if k != "total"},
                     "boxes": boxes[name],
                     "samples_ms": {k: [1e3 * s for s in v] for k, v in per_key.items()}}
    return out
