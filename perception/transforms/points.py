"""Point-column selection (registered in ``TRANSFORMS``).

Models take a fixed column layout (mmdet3d's ``use_dim``); frames carry named columns
(``Frame.point_features``) whose order depends on the source, e.g. nuScenes multi-sweep
frames are ``x, y, z, intensity, ring, time_lag``.  Selecting by name keeps a config honest
when a loader adds or reorders columns.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ..registry import TRANSFORMS
from ..structures import FrameError


@TRANSFORMS.register_module()
class PointsSelectFeatures:
    """Keep the named point columns, in the given order (must start with ``x, y, z``)."""

    def __init__(self, features: Sequence[str]) -> None:
        self.features = tuple(str(name) for name in features)
        if self.features[:3] != ("x", "y", "z"):
            raise ValueError(f"PointsSelectFeatures: features must start with x, y, z, got {self.features}")
        if len(set(self.features)) != len(self.features):
            raise ValueError(f"PointsSelectFeatures: duplicate feature names in {self.features}")

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        frame = results["frame"]
        missing = [name for name in self.features if name not in frame.point_features]
        if missing:
            raise FrameError(f"PointsSelectFeatures: frame {frame.token} has no point features {missing} "
                             f"(it has {frame.point_features}; multi-sweep input needs load_sweeps > 0 "
                             "for time_lag)")
        columns = [frame.point_features.index(name) for name in self.features]
        results["frame"] = dataclasses.replace(frame, points=frame.points[:, columns],
                                               point_features=self.features)
        return results
