"""Old import path of the BEV map-segmentation PNG; it lives in
:mod:`perception.visualization.bev_seg_figure` (evaluation reads results, drawing is visualization)."""
from __future__ import annotations

from ..visualization.bev_seg_figure import PAINT_ORDER, SEG_COLORS, paint, save_bev_seg_figure

__all__ = ["PAINT_ORDER", "SEG_COLORS", "paint", "save_bev_seg_figure"]
