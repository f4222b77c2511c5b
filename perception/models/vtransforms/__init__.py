"""Camera-to-BEV view transforms (registered in MODELS): LSS and its LiDAR-depth-aware variant."""
from .depth_lss import DepthLSSTransform, project_depth
from .lss import CameraInputs, LSSTransform

__all__ = ["CameraInputs", "DepthLSSTransform", "LSSTransform", "project_depth"]
