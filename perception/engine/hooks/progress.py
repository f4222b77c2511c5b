"""``ProgressBarHook``: tqdm bars with ETA for training iterations and val/test loops.

mmengine's LoggerHook prints an ETA every ``interval`` iterations; this adds a live bar on an
interactive terminal.  tqdm's ``disable=None`` turns the bars off when stderr is not a TTY, so
log files and CI output stay clean.  Only the main process draws.
"""
from __future__ import annotations

from typing import Any

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from tqdm import tqdm

from ...registry import HOOKS


@HOOKS.register_module()
class ProgressBarHook(Hook):
    """Progress bars over training iterations and validation/test batches."""

    priority = "LOW"

    def __init__(self, disable: bool | None = None) -> None:
        self.disable = disable
        self._bars: dict[str, tqdm] = {}

    def _open(self, name: str, total: int, initial: int = 0) -> None:
        if is_main_process():
            self._bars[name] = tqdm(total=total, initial=initial, desc=name, disable=self.disable,
                                    dynamic_ncols=True, leave=False)

    def _step(self, name: str, outputs: Any = None) -> None:
        bar = self._bars.get(name)
        if bar is None or bar.disable:
            return
        bar.update(1)
        if isinstance(outputs, dict) and "loss" in outputs:
            bar.set_postfix(loss=f"{float(outputs['loss'].detach()):.4f}", refresh=False)

    def _close(self, name: str) -> None:
        bar = self._bars.pop(name, None)
        if bar is not None:
            bar.close()

    def before_train(self, runner: Any) -> None:
        self._open("train", runner.max_iters, runner.iter)

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: Any = None) -> None:
        self._step("train", outputs)

    def after_train(self, runner: Any) -> None:
        self._close("train")

    def before_val_epoch(self, runner: Any) -> None:
        self._open("val", len(runner.val_dataloader))

    def after_val_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                       outputs: Any = None) -> None:
        self._step("val")

    def after_val_epoch(self, runner: Any, metrics: dict | None = None) -> None:
        self._close("val")

    def before_test_epoch(self, runner: Any) -> None:
        self._open("test", len(runner.test_dataloader))

    def after_test_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                        outputs: Any = None) -> None:
        self._step("test")

    def after_test_epoch(self, runner: Any, metrics: dict | None = None) -> None:
        self._close("test")
