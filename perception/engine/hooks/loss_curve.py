"""``LossCurveHook``: a PNG of every logged training loss against the iteration.

The curves come from the runner's message hub (``train/<key>`` history buffers of every key
containing ``loss``), which mmengine stores in checkpoints, so a resumed run still plots from
iteration 1.  Drawn with matplotlib's Agg canvas (no pyplot state) and written atomically to
``<work_dir>/<filename>`` at every checkpoint and at the end of training, on the main process.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mmengine.dist import master_only
from mmengine.hooks import Hook

from ...registry import HOOKS
from ...utils.atomic import atomic_path

Curves = dict[str, tuple[np.ndarray, np.ndarray]]


def loss_curves(message_hub: Any, last_iter: int) -> Curves:
    """``{loss name: (iterations, values)}``; each buffer's last value is at ``last_iter``.

    A history buffer holds one value per training iteration (mmengine's RuntimeInfoHook
    updates every output key each iteration), possibly truncated at its ``max_length``.
    """
    curves: Curves = {}
    for key, buffer in message_hub.log_scalars.items():
        if not key.startswith("train/") or "loss" not in key:
            continue
        values = np.asarray(buffer.data[0], dtype=np.float64)
        if len(values):
            curves[key[len("train/"):]] = (np.arange(last_iter - len(values) + 1, last_iter + 1), values)
    return curves


def plot_loss_curves(curves: Curves, path: str | Path, title: str = "") -> Path:
    """Draw the curves (one line each, log-scale y when all are positive) to a PNG atomically."""
    figure = Figure(figsize=(8, 5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    for name, (iterations, values) in sorted(curves.items()):
        axes.plot(iterations, values, label=name, linewidth=1.2)
    positive = all(np.all(v > 0) for _, v in curves.values())
    if positive and curves:
        axes.set_yscale("log")
    axes.set_xlabel("iteration")
    axes.set_ylabel("loss")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="upper right", fontsize="small")
    figure.subplots_adjust(left=0.1, right=0.97, top=0.92, bottom=0.1)  # tight_layout: 2x slower
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
    return Path(path)


@HOOKS.register_module()
class LossCurveHook(Hook):
    """Write ``<work_dir>/<filename>`` with the training loss curves."""

    priority = "VERY_LOW"

    def __init__(self, filename: str = "loss_curve.png", on_checkpoint: bool = True) -> None:
        if not filename.endswith(".png"):
            raise ValueError(f"LossCurveHook: filename must end with .png, got {filename!r}")
        self.filename = filename
        self.on_checkpoint = on_checkpoint

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        if self.on_checkpoint:
            self._plot(runner, int(checkpoint.get("meta", {}).get("iter", runner.iter)))

    def after_train(self, runner: Any) -> None:
        self._plot(runner, runner.iter)

    @master_only
    def _plot(self, runner: Any, last_iter: int) -> None:
        curves = loss_curves(runner.message_hub, last_iter)
        if curves:
            plot_loss_curves(curves, Path(runner.work_dir) / self.filename,
                             title=f"{runner.experiment_name} (iteration {last_iter})")
