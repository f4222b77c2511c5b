"""BEVFusion's BEV map-segmentation classes: one list shared by the target rasterizer
(:mod:`perception.transforms.bev_seg_raster`), the segmentation head and the mIoU metric.

It lives with the other data structures so that models and evaluation need not import the
transforms package to learn the channel order of a ``(C, H, W)`` ``gt_bev_seg`` /
``pred_bev_seg`` (``DetSample`` fields).
"""
from __future__ import annotations

BEV_SEG_CLASSES: tuple[str, ...] = ("drivable_area", "ped_crossing", "walkway", "stop_line",
                                    "carpark_area", "divider")
"""BEVFusion's map-segmentation classes, in its channel order."""

__all__ = ["BEV_SEG_CLASSES"]
