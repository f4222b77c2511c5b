"""PNG views: BEV (points, boxes, map, paths) and camera images with projected boxes."""
from .bev import render_bev
from .camera import project_points, render_camera

__all__ = ["render_bev", "render_camera", "project_points"]
