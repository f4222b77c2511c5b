"""The GT-vs-prediction PNG: class colours land on the right cells, the file is written."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from perception.visualization.bev_seg_figure import SEG_COLORS, paint, save_bev_seg_figure
from perception.structures.bev_seg_classes import BEV_SEG_CLASSES


def test_paint_orders_lines_over_areas() -> None:
    masks = np.zeros((6, 4, 5), dtype=bool)
    masks[BEV_SEG_CLASSES.index("drivable_area"), :, :3] = True
    masks[BEV_SEG_CLASSES.index("divider"), 1, :] = True
    image = paint(masks)
    grey = np.array([int(SEG_COLORS["drivable_area"][i:i + 2], 16) / 255 for i in (1, 3, 5)])
    orange = np.array([int(SEG_COLORS["divider"][i:i + 2], 16) / 255 for i in (1, 3, 5)])
    np.testing.assert_allclose(image[0, 0], grey, atol=1e-6)
    np.testing.assert_allclose(image[1, 0], orange, atol=1e-6)  # divider painted over the road
    np.testing.assert_allclose(image[0, 4], 1.0)  # nothing: white
    with pytest.raises(ValueError, match="expected"):
        paint(np.zeros((2, 4, 5)))


def test_save_figure(tmp_path: Path) -> None:
    gt = torch.zeros(6, 10, 10, dtype=torch.bool)
    gt[0, 2:8, 2:8] = True
    path = save_bev_seg_figure(tmp_path / "fig.png", gt, {"model": gt.float() * 0.9}, (-5, 5, -5, 5))
    assert path.is_file() and path.stat().st_size > 1000
