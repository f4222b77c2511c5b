"""Data structures shared by the whole stack; conventions in :mod:`.conventions`."""
from .boxes import BOX_DIM, Boxes3D
from .conventions import CAMERA_NAMES_NUSCENES, NUSCENES_CLASSES, POINT_FEATURES_NUSCENES
from .frame import CameraView, Frame, FrameError
from .geometry import (
    BEVGrid,
    apply_transform,
    invert_transform,
    make_transform,
    matrix_to_quaternion,
    quaternion_to_matrix,
    wrap_angle,
    yaw_matrix,
    yaw_of_rotation,
)
from .map_elements import AgentHistory, MapElement

__all__ = [
    "BOX_DIM", "Boxes3D", "CAMERA_NAMES_NUSCENES", "NUSCENES_CLASSES", "POINT_FEATURES_NUSCENES",
    "CameraView", "Frame", "FrameError", "BEVGrid", "apply_transform", "invert_transform",
    "make_transform", "matrix_to_quaternion", "quaternion_to_matrix", "wrap_angle", "yaw_matrix",
    "yaw_of_rotation", "AgentHistory", "MapElement",
]
from .det_sample import DetSample  # noqa: E402  (appended: the detector's per-frame sample)

__all__ += ["DetSample"]
from .map_instances import MapInstances, MapInstancesError  # noqa: E402

__all__ += ["MapInstances", "MapInstancesError"]
