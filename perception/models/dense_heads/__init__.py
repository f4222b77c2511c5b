"""Dense heads of the stack (registered in MODELS)."""
from .centerpoint_head import CenterHead
from .separate_head import ConvModule2d, SeparateHead

__all__ = ["CenterHead", "ConvModule2d", "SeparateHead"]
from . import bev_seg_head  # noqa: F401,E402
