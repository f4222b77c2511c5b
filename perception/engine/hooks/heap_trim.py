"""``HeapTrimHook``: hands freed heap memory back to the system during training and evaluation.

See :mod:`perception.engine.malloc` for why (RSS growth of ~60 MB per epoch from glibc heap
fragmentation with worker-loaded batches).  It trims after every train, val and test epoch and
every ``interval`` training iterations (iteration-based schedules have no epochs).
"""
from __future__ import annotations

from typing import Any

from mmengine.hooks import Hook

from ...registry import HOOKS
from ..malloc import heap_trimmer


@HOOKS.register_module()
class HeapTrimHook(Hook):
    """``malloc_trim(0)`` at epoch ends and every ``interval`` training iterations (module doc)."""

    priority = "VERY_LOW"

    def __init__(self, interval: int = 100) -> None:
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise ValueError(f"HeapTrimHook: interval must be a positive int, got {interval!r}")
        self.interval = interval
        self.trims = 0
        self._trimmer = heap_trimmer()  # resolved once (None off glibc: the hook does nothing)

    def _trim(self) -> None:
        if self._trimmer is not None:
            self._trimmer()
            self.trims += 1

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        if self.every_n_train_iters(runner, self.interval):
            self._trim()

    def after_train_epoch(self, runner: Any) -> None:
        self._trim()

    def after_val_epoch(self, runner: Any, metrics: Any = None) -> None:
        self._trim()

    def after_test_epoch(self, runner: Any, metrics: Any = None) -> None:
        self._trim()
