"""PNG views: BEV (points, boxes, map, paths) and camera images with projected boxes."""
from .bev import draw_bev, render_bev
from .camera import draw_camera, project_points, render_camera, render_gallery

__all__ = ["draw_bev", "render_bev", "draw_camera", "project_points", "render_camera", "render_gallery"]
