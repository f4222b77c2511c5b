"""Camera PNGs with ground-truth (or predicted) boxes projected as wireframes."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..structures import Boxes3D, Frame  # noqa: E402
from .bev import draw_bev, save_figure  # noqa: E402
from .colors import class_color  # noqa: E402

BOX_EDGES = ((0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7))


def project_points(frame: Frame, camera: str, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates ``(N, 2)`` and depths ``(N,)`` of LiDAR-frame points in ``camera``."""
    homogeneous = np.concatenate([points[:, :3], np.ones((len(points), 1))], axis=1)
    projected = homogeneous @ frame.lidar2img(camera).T
    depth = projected[:, 2]
    pixels = projected[:, :2] / np.maximum(depth, 1e-6)[:, None]
    return pixels, depth


def draw_camera(axes: plt.Axes, frame: Frame, camera: str, boxes: Boxes3D | None = None) -> None:
    """``camera``'s image with the boxes (default: ground truth) as projected wireframes."""
    image = frame.cameras[camera].load_image()
    boxes = frame.boxes if boxes is None else boxes
    height, width = image.shape[:2]
    axes.imshow(image)
    for index, corners in enumerate(boxes.corners()):
        pixels, depth = project_points(frame, camera, corners)
        if (depth <= 0.1).any():
            continue
        if pixels[:, 0].max() < 0 or pixels[:, 0].min() > width or pixels[:, 1].max() < 0 or pixels[:, 1].min() > height:
            continue
        label = int(boxes.labels[index])
        color = class_color(frame.class_names[label] if 0 <= label < len(frame.class_names) else "")
        for start, end in BOX_EDGES:
            axes.plot(pixels[[start, end], 0], pixels[[start, end], 1], color=color, linewidth=1.0)
    axes.set_xlim(0, width)
    axes.set_ylim(height, 0)
    axes.axis("off")
    axes.set_title(camera)


def render_camera(frame: Frame, camera: str, out_path: str | Path, boxes: Boxes3D | None = None) -> Path:
    """Write ``camera``'s image with the boxes drawn on it as a PNG."""
    width, height = frame.cameras[camera].load_image().shape[1::-1]
    figure, axes = plt.subplots(figsize=(width / 100, height / 100), dpi=100)
    draw_camera(axes, frame, camera, boxes)
    return save_figure(figure, Path(out_path))


def render_gallery(frame: Frame, camera: str, out_path: str | Path) -> Path:
    """One PNG with the BEV (points, boxes, map) beside one camera image with its boxes."""
    figure, (bev_axes, camera_axes) = plt.subplots(1, 2, figsize=(17, 7), dpi=90,
                                                   gridspec_kw={"width_ratios": [1, 1.6]})
    draw_bev(bev_axes, frame)
    draw_camera(camera_axes, frame, camera)
    figure.tight_layout()
    return save_figure(figure, Path(out_path))
