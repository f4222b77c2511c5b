"""Pipeline steps on ``{"frame": Frame, ...}`` dicts (registered in ``TRANSFORMS``)."""
from .augment import GlobalRotScaleTrans, PointShuffle, RandomFlip3D
from .filters import ObjectNameFilter, ObjectRangeFilter, PointsRangeFilter
from .formatting import PackDetInputs
from .object_sample import DataBaseSampler, ObjectSample
from .points import PointsSelectFeatures

__all__ = ["PointsSelectFeatures", "DataBaseSampler", "GlobalRotScaleTrans", "ObjectNameFilter", "ObjectRangeFilter", "ObjectSample",
           "PackDetInputs", "PointShuffle", "PointsRangeFilter", "RandomFlip3D"]
from . import bev_seg  # noqa: F401,E402
from . import camera, camera_aug  # noqa: F401,E402
from . import map_gt  # noqa: F401,E402
