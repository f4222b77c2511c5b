"""Plain-torch layers and ops shared by the models (BEV NMS, rotated IoU)."""
from .nms import bev_corners, bev_rotated_iou, circle_nms, rotated_nms

__all__ = ["bev_corners", "bev_rotated_iou", "circle_nms", "rotated_nms"]
