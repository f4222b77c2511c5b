"""Pipeline steps on ``{"frame": Frame, ...}`` dicts (registered in ``TRANSFORMS``)."""
from .filters import ObjectNameFilter, ObjectRangeFilter, PointsRangeFilter

__all__ = ["ObjectNameFilter", "ObjectRangeFilter", "PointsRangeFilter"]
