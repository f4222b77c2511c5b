"""PNG of BEV map segmentation: ground truth next to one or more models' predictions.

Each panel paints the classes in a fixed order (area classes first, lines last) with the stack's
map colours onto the LiDAR-frame grid (x to the right, y up, ego at the origin), so a GT panel
and a prediction panel of the same frame can be compared cell by cell.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from ..structures.bev_seg_classes import BEV_SEG_CLASSES

SEG_COLORS: Mapping[str, str] = {
    "drivable_area": "#b8b8b8", "carpark_area": "#e0c090", "walkway": "#60b060",
    "ped_crossing": "#3070ff", "stop_line": "#ff3030", "divider": "#f0a000",
}
"""Colour of each class (close to :data:`.colors.MAP_COLORS`)."""
PAINT_ORDER: tuple[str, ...] = ("drivable_area", "carpark_area", "walkway", "ped_crossing", "stop_line", "divider")


def _rgb(hex_color: str) -> np.ndarray:
    return np.array([int(hex_color[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.float32) / 255.0


def paint(masks: np.ndarray | torch.Tensor, classes: Sequence[str] = BEV_SEG_CLASSES,
          threshold: float = 0.5) -> np.ndarray:
    """``(H, W, 3)`` float RGB of ``(C, H, W)`` masks or probabilities (``>= threshold`` is on)."""
    array = torch.as_tensor(masks).detach().cpu().float().numpy()
    if array.ndim != 3 or array.shape[0] != len(classes):
        raise ValueError(f"expected ({len(classes)}, H, W) masks for classes {tuple(classes)}, got {array.shape}")
    image = np.ones((*array.shape[1:], 3), dtype=np.float32)
    order = [name for name in PAINT_ORDER if name in classes] + [n for n in classes if n not in PAINT_ORDER]
    for name in order:
        on = array[list(classes).index(name)] >= threshold
        image[on] = _rgb(SEG_COLORS.get(name, "#17becf"))
    return image


def save_bev_seg_figure(path: str | Path, gt: np.ndarray | torch.Tensor,
                        preds: Mapping[str, np.ndarray | torch.Tensor], extent: Sequence[float],
                        classes: Sequence[str] = BEV_SEG_CLASSES, threshold: float = 0.5,
                        title: str = "") -> Path:
    """Write GT and each named prediction side by side; ``extent`` = ``(x_min, x_max, y_min, y_max)`` m."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    panels = {"ground truth": paint(gt, classes, 0.5)}
    panels.update({name: paint(pred, classes, threshold) for name, pred in preds.items()})
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.6), squeeze=False)
    for axis, (name, image) in zip(axes[0], panels.items()):
        axis.imshow(image, origin="lower", extent=tuple(extent), interpolation="nearest")
        axis.plot(0, 0, marker="^", color="k", markersize=6)
        axis.set_title(name)
        axis.set_xlabel("x (m)")
    axes[0][0].set_ylabel("y (m)")
    handles = [Patch(color=SEG_COLORS.get(n, "#17becf"), label=n) for n in classes]
    fig.legend(handles=handles, loc="lower center", ncol=len(classes), frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
