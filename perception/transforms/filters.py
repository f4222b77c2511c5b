"""Range and class filters on a frame's points and boxes (registered in ``TRANSFORMS``).

Each transform takes and returns the pipeline dict ``{"frame": Frame, ...}``; the frame is
replaced by a filtered copy, never modified in place, so a cached frame stays intact.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..registry import TRANSFORMS


def _check_range(point_cloud_range: Sequence[float], owner: str) -> np.ndarray:
    bounds = np.asarray(point_cloud_range, dtype=np.float64)
    if bounds.shape != (6,) or not np.all(bounds[3:] > bounds[:3]):
        raise ValueError(
            f"{owner}: point_cloud_range must be [x_min, y_min, z_min, x_max, y_max, z_max] with "
            f"max > min, got {list(point_cloud_range)}"
        )
    return bounds


@TRANSFORMS.register_module()
class PointsRangeFilter:
    """Keep the points inside ``point_cloud_range`` (x, y, z min then max, LiDAR frame)."""

    def __init__(self, point_cloud_range: Sequence[float]) -> None:
        self.bounds = _check_range(point_cloud_range, type(self).__name__)

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        frame = results["frame"]
        xyz = frame.points[:, :3]
        keep = np.all((xyz >= self.bounds[:3]) & (xyz < self.bounds[3:]), axis=1)
        results["frame"] = dataclasses.replace(frame, points=frame.points[keep])
        return results


@TRANSFORMS.register_module()
class ObjectRangeFilter:
    """Keep the boxes whose BEV centre lies inside the x/y part of ``point_cloud_range``."""

    def __init__(self, point_cloud_range: Sequence[float]) -> None:
        self.bounds = _check_range(point_cloud_range, type(self).__name__)

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        frame = results["frame"]
        xy = frame.boxes.centers[:, :2]
        keep = np.all((xy >= self.bounds[:2]) & (xy < self.bounds[3:5]), axis=1)
        results["frame"] = dataclasses.replace(frame, boxes=frame.boxes[keep])
        return results


@TRANSFORMS.register_module()
class ObjectNameFilter:
    """Keep the boxes whose class name is in ``classes``."""

    def __init__(self, classes: Sequence[str]) -> None:
        if not classes:
            raise ValueError("ObjectNameFilter: classes must not be empty")
        self.classes = tuple(classes)

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        frame = results["frame"]
        names = np.asarray(frame.class_names, dtype=object)
        labels = frame.boxes.labels
        keep = np.isin(names[labels], self.classes) if len(labels) else np.zeros(0, dtype=bool)
        results["frame"] = dataclasses.replace(frame, boxes=frame.boxes[keep])
        return results
