"""BEV drawings of vectorized maps: ground truth (solid) against predictions (dashed), over points.

Drawn in the LiDAR frame of the sample (x right, y up), the BEV convention of
:mod:`perception.structures.conventions`; colours by class from :mod:`.colors`.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..structures import MapInstances  # noqa: E402
from .bev import save_figure  # noqa: E402
from .colors import class_color  # noqa: E402


def draw_map_instances(axes: plt.Axes, instances: MapInstances, dashed: bool = False,
                       min_score: float = 0.0, linewidth: float = 1.8) -> int:
    """Draw each instance (closed ones as rings) with a dot at its first point; returns how many.

    Predictions below ``min_score`` are skipped; the others fade with their score.
    """
    drawn = 0
    for index in range(len(instances)):
        score = None if instances.scores is None else float(instances.scores[index])
        if score is not None and score < min_score:
            continue
        points = instances.points[index]
        if instances.closed[index]:
            points = np.vstack([points, points[:1]])
        color = class_color(instances.class_names[int(instances.labels[index])])
        alpha = 0.95 if score is None else 0.35 + 0.6 * min(max(score, 0.0), 1.0)
        axes.plot(points[:, 0], points[:, 1], color=color, linewidth=linewidth, alpha=alpha,
                  linestyle="--" if dashed else "-")
        axes.plot(points[0, 0], points[0, 1], marker="o", markersize=2.5, color=color, alpha=alpha)
        drawn += 1
    return drawn


def draw_map_comparison(axes: plt.Axes, gt: MapInstances | None, pred: MapInstances | None = None,
                        points: np.ndarray | None = None, pc_range: Sequence[float] | None = None,
                        min_score: float = 0.3, title: str | None = None) -> None:
    """Optional LiDAR points (grey by height: ground dim, walls and poles bright),
    the ground-truth map solid and the predicted map dashed, within ``pc_range`` (x0, y0, x1, y1)."""
    axes.set_facecolor("black")
    if pc_range is None:
        source = gt if gt is not None and len(gt) else pred
        extent = 30.0 if source is None or not len(source) else float(np.abs(source.points).max()) + 2.0
        pc_range = (-extent, -extent, extent, extent)
    x0, y0, x1, y1 = (float(v) for v in pc_range)
    if points is not None and len(points):
        inside = (points[:, 0] >= x0) & (points[:, 0] <= x1) & (points[:, 1] >= y0) & (points[:, 1] <= y1)
        shown = points[inside]
        axes.scatter(shown[:, 0], shown[:, 1], c=shown[:, 2], s=0.8, cmap="gray", vmin=-1.5, vmax=2.5,
                     linewidths=0)
    counts = []
    if gt is not None:
        counts.append(f"{draw_map_instances(axes, gt)} GT")
    if pred is not None:
        counts.append(f"{draw_map_instances(axes, pred, dashed=True, min_score=min_score)} pred")
    names = gt.class_names if gt is not None else (pred.class_names if pred is not None else ())
    for name in names:
        axes.plot([], [], color=class_color(name), label=name)
    if names:
        axes.legend(loc="upper right", fontsize=7, facecolor="white", framealpha=0.8)
    axes.plot([0], [0], marker="^", color="white", markersize=6)
    axes.set_xlim(x0, x1)
    axes.set_ylim(y0, y1)
    axes.set_aspect("equal")
    axes.grid(False)
    axes.set_xlabel("x (m, LiDAR frame)")
    axes.set_ylabel("y (m)")
    axes.set_title(title or "vector map: " + ", ".join(counts) + " (GT solid, predictions dashed)")


def render_map_comparison(out_path: str | Path, gt: MapInstances | None, pred: MapInstances | None = None,
                          points: np.ndarray | None = None, pc_range: Sequence[float] | None = None,
                          min_score: float = 0.3, title: str | None = None, dpi: int = 120) -> Path:
    """Write :func:`draw_map_comparison` as a PNG (atomically), sized to the range's aspect."""
    if pc_range is not None:
        width, height = float(pc_range[2] - pc_range[0]), float(pc_range[3] - pc_range[1])
        size = (10.0, max(3.0, 10.0 * height / width)) if width >= height else (max(3.0, 10.0 * width / height), 10.0)
    else:
        size = (8.0, 8.0)
    figure, axes = plt.subplots(figsize=size, dpi=dpi)
    draw_map_comparison(axes, gt, pred, points, pc_range, min_score, title)
    return save_figure(figure, Path(out_path))
