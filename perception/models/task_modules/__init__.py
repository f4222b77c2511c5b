"""Task modules of the stack (box coders, target helpers; coders registered in MODELS)."""
from .center_point_bbox_coder import REGRESSION_CHANNELS, CenterPointBBoxCoder
from .gaussian import draw_heatmap_gaussian, gaussian_2d, gaussian_radius

__all__ = ["REGRESSION_CHANNELS", "CenterPointBBoxCoder", "draw_heatmap_gaussian",
           "gaussian_2d", "gaussian_radius"]
