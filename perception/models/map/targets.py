"""Ground truth of the map heads: :class:`MapInstances` of the samples as normalized tensors.

Class names are matched by name (a sample may list the classes in another order), instances
of classes the head does not predict are dropped, and instances are resampled by arc length
to the head's number of points when the pipeline made another count.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from ...structures.det_sample import DetSample
from ...structures.map_instances import MapInstances
from .geometry import normalize, resample_polyline


class MapTargetError(ValueError):
    """Raised when a sample has no map ground truth or classes the head cannot map."""


@dataclass
class MapTargets:
    """One sample's targets: ``labels`` ``(M,)`` into the head's classes, ``points`` ``(M, P, 2)``
    normalized to the map range, ``closed`` ``(M,)`` bool."""

    labels: Tensor
    points: Tensor
    closed: Tensor

    def repeat(self, times: int) -> "MapTargets":
        """Every instance ``times`` times (one-to-many matching)."""
        return MapTargets(self.labels.repeat(times), self.points.repeat(times, 1, 1),
                          self.closed.repeat(times))


def instances_to_targets(gt: MapInstances, class_names: Sequence[str], num_points: int,
                         map_range: Sequence[float], device: torch.device) -> MapTargets:
    """:class:`MapTargets` of one :class:`MapInstances` (module doc)."""
    lookup = {name: i for i, name in enumerate(class_names)}
    remap = np.array([lookup.get(name, -1) for name in gt.class_names], dtype=np.int64)
    labels = remap[gt.labels] if len(gt) else np.zeros(0, dtype=np.int64)
    keep = labels >= 0
    pts, closed = gt.points[keep], gt.closed[keep]
    if len(pts) and pts.shape[1] != num_points:
        pts = np.stack([resample_polyline(p, num_points, bool(c)) for p, c in zip(pts, closed)])
    points = torch.as_tensor(np.asarray(pts, dtype=np.float32).reshape(-1, num_points, 2), device=device)
    return MapTargets(torch.as_tensor(labels[keep], device=device),
                      normalize(points, map_range), torch.as_tensor(closed, device=device))


def samples_to_targets(samples: Sequence[DetSample], class_names: Sequence[str], num_points: int,
                       map_range: Sequence[float], device: torch.device) -> list[MapTargets]:
    """Targets of every sample; raises :class:`MapTargetError` naming a sample without ``gt_map``."""
    out = []
    for sample in samples:
        if sample.gt_map is None:
            raise MapTargetError(f"sample {sample.token}: gt_map is None; add LoadVectorMapGT to the "
                                 f"training pipeline")
        out.append(instances_to_targets(sample.gt_map, class_names, num_points, map_range, device))
    return out
