"""Bird's-eye-view PNGs: points, boxes (ground truth and predictions), map elements, paths.

Everything is drawn in the LiDAR frame of the frame shown, x to the right and y up, so
the picture has the BEV axis convention of :mod:`perception.structures.conventions`.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..structures import Boxes3D, Frame, invert_transform  # noqa: E402
from ..utils.atomic import atomic_path  # noqa: E402
from .colors import MAP_COLORS, class_color  # noqa: E402


def draw_boxes(axes: plt.Axes, boxes: Boxes3D, class_names: tuple[str, ...], dashed: bool = False) -> None:
    """Box footprints with a heading tick, coloured by class."""
    corners = boxes.corners()[:, :4, :2]
    for index, footprint in enumerate(corners):
        label = int(boxes.labels[index])
        color = class_color(class_names[label] if 0 <= label < len(class_names) else "")
        closed = np.vstack([footprint, footprint[:1]])
        axes.plot(closed[:, 0], closed[:, 1], color=color, linewidth=1.0, linestyle="--" if dashed else "-")
        front = footprint[[0, 3]].mean(axis=0)
        center = boxes.centers[index, :2]
        axes.plot([center[0], front[0]], [center[1], front[1]], color=color, linewidth=1.0)


def draw_map(axes: plt.Axes, frame: Frame) -> None:
    """Map elements of the frame, moved from the world into the LiDAR frame."""
    global2lidar = invert_transform(frame.lidar2global)
    for element in frame.map_elements:
        local = element.transformed(global2lidar).points
        if element.closed:
            local = np.vstack([local, local[:1]])
        axes.plot(local[:, 0], local[:, 1], color=MAP_COLORS.get(element.category, "#999999"),
                  linewidth=0.8, alpha=0.9)


def draw_bev(
    axes: plt.Axes,
    frame: Frame,
    extent_m: float = 60.0,
    predictions: Boxes3D | None = None,
    title: str | None = None,
    max_points: int = 200_000,
) -> None:
    """Points by height, map, GT boxes solid and predictions dashed, on ``axes``."""
    axes.set_facecolor("black")
    points = frame.points[:: max(1, len(frame.points) // max_points)]
    near = (np.abs(points[:, 0]) < extent_m) & (np.abs(points[:, 1]) < extent_m)
    axes.scatter(points[near, 0], points[near, 1], c=points[near, 2], s=0.5, cmap="viridis",
                 vmin=-2.5, vmax=2.0, linewidths=0)
    draw_map(axes, frame)
    draw_boxes(axes, frame.boxes, frame.class_names)
    if predictions is not None:
        draw_boxes(axes, predictions, frame.class_names, dashed=True)
    axes.plot([0], [0], marker="^", color="white", markersize=6)
    axes.set_xlim(-extent_m, extent_m)
    axes.set_ylim(-extent_m, extent_m)
    axes.set_aspect("equal")
    axes.grid(False)
    axes.set_xlabel("x (m, LiDAR frame)")
    axes.set_ylabel("y (m)")
    axes.set_title(title or f"{frame.dataset} {frame.token[:8]}: {len(frame.points)} points, {len(frame.boxes)} boxes")


def render_bev(frame: Frame, out_path: str | Path, **kwargs) -> Path:
    """Write a BEV PNG of ``frame`` (see :func:`draw_bev` for the options).

    The file is written to a temporary name and renamed, so an existing PNG is never left
    half-written.
    """
    figure, axes = plt.subplots(figsize=(8, 8), dpi=110)
    draw_bev(axes, frame, **kwargs)
    return save_figure(figure, Path(out_path))


def save_figure(figure: plt.Figure, out_path: Path) -> Path:
    """Save the figure as a PNG atomically (see :mod:`perception.utils.atomic`) and close it."""
    try:
        with atomic_path(out_path) as temporary:
            figure.savefig(temporary, format="png", bbox_inches="tight")
    finally:
        plt.close(figure)
    return Path(out_path)
