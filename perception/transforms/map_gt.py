"""``LoadVectorMapGT``: the frame's map elements -> ``results["gt_map"]`` (:class:`MapInstances`).

The ground truth is built in the LiDAR frame the points are in when the step runs: the
world-to-LiDAR transform ``inv(lidar2global)`` is composed with ``results["aug"]["lidar_aug_matrix"]``
(the rotation / scale / translation / flips of :mod:`.augment`), so placed after
``GlobalRotScaleTrans`` / ``RandomFlip3D`` the vectors follow the augmented points and are clipped
to the range in that frame.  A geometric augmentation placed *after* this step would leave the
map stale: the step stores the matrix it used in ``results["gt_map_aug_matrix"]`` and
:func:`check_map_gt_current` raises when the two disagree.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..datasets.vector_map_gt import MAP_CLASSES, VectorMapGTConfig, build_map_instances
from ..registry import TRANSFORMS
from ..structures import Frame, invert_transform


class MapGTStaleError(ValueError):
    """The points were augmented after the map ground truth was built."""


def _aug_matrix(results: Mapping[str, Any]) -> np.ndarray:
    aug = results.get("aug") or {}
    return np.asarray(aug.get("lidar_aug_matrix", np.eye(4)), dtype=np.float64)


def check_map_gt_current(results: Mapping[str, Any]) -> None:
    """Raise :class:`MapGTStaleError` if ``results["gt_map"]`` was built before the last augmentation."""
    if "gt_map" in results and not np.allclose(results.get("gt_map_aug_matrix", np.eye(4)), _aug_matrix(results)):
        raise MapGTStaleError("gt_map was built before a geometric augmentation of the points: put "
                              "LoadVectorMapGT after GlobalRotScaleTrans / RandomFlip3D in the pipeline")


@TRANSFORMS.register_module()
class LoadVectorMapGT:
    """Vector-map ground truth of ``results["frame"]`` (MapTR protocol, see :mod:`perception.datasets.vector_map_gt`).

    Args:
        pc_range: ``(x_min, y_min, x_max, y_max)`` patch in the LiDAR frame (m).
        num_points: points per instance (arc-length resampling).
        class_names: vector-map classes and their label order.
        boundary_source: ``"auto"``, ``"lines"`` or ``"drivable_area"``.
        require_map: raise when the frame carries no map elements (dataset built without ``with_map``).
        **options: other :class:`VectorMapGTConfig` fields (``min_length``, ``merge_dividers``...).
    """

    def __init__(self, pc_range: Sequence[float] = (-15.0, -30.0, 15.0, 30.0), num_points: int = 20,
                 class_names: Sequence[str] = MAP_CLASSES, boundary_source: str = "auto", require_map: bool = True,
                 **options: Any) -> None:
        self.config = VectorMapGTConfig(pc_range=tuple(pc_range), num_points=num_points,
                                        class_names=tuple(class_names), boundary_source=boundary_source, **options)
        self.require_map = require_map

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        frame = results.get("frame")
        if not isinstance(frame, Frame):
            raise KeyError(f"LoadVectorMapGT: the pipeline dict needs a 'frame' (a Frame), got keys {sorted(results)}")
        if self.require_map and not frame.map_elements:
            raise ValueError(f"LoadVectorMapGT: frame {frame.token} has no map elements; build the dataset with "
                             "with_map=True (or pass require_map=False for frames off the map)")
        aug = _aug_matrix(results)
        world2local = aug @ invert_transform(frame.lidar2global)
        results["gt_map"] = build_map_instances(frame.map_elements, world2local, self.config)
        results["gt_map_aug_matrix"] = aug
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}(config={self.config}, require_map={self.require_map})"
