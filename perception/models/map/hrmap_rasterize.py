"""Draw vectorized map instances (polylines / polygon outlines with scores) into a BEV raster.

HRMapNet stores the map head's *vector* predictions in its raster map, so every frame's
:class:`~perception.structures.map_instances.MapInstances` is drawn onto the LiDAR-frame BEV grid
first: a cell of class ``k`` gets the highest score of the class-``k`` instances passing within
``half_width`` metres of its centre (a thick line; polygons are drawn by their outline, as the
map elements are).  Vectorized in torch: distances of all cell centres to all segments, chunked.
"""
from __future__ import annotations

import numpy as np
import torch

from ...structures.geometry import BEVGrid
from ...structures.map_instances import MapInstances


def instance_segments(instances: MapInstances) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(S, 2, 2)`` segments of all instances (closed ones get their closing edge), their
    class ``(S,)`` and score ``(S,)`` (1 for ground truth)."""
    starts, ends, labels, scores = [], [], [], []
    inst_scores = np.ones(len(instances), np.float32) if instances.scores is None else instances.scores
    for points, label, closed, score in zip(instances.points, instances.labels, instances.closed, inst_scores):
        nxt = np.roll(points, -1, axis=0) if closed else points[1:]
        cur = points if closed else points[:-1]
        starts.append(cur)
        ends.append(nxt)
        labels.append(np.full(len(cur), label))
        scores.append(np.full(len(cur), score, np.float32))
    if not starts:
        return np.zeros((0, 2, 2), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32)
    segments = np.stack([np.concatenate(starts), np.concatenate(ends)], axis=1).astype(np.float32)
    return segments, np.concatenate(labels).astype(np.int64), np.concatenate(scores)


def rasterize_instances(instances: MapInstances, grid: BEVGrid, half_width: float = 0.5,
                        score_threshold: float = 0.0, chunk: int = 256) -> torch.Tensor:
    """``(C, H, W)`` float raster (C = ``len(instances.class_names)``) on ``grid`` (module doc);
    instances scoring below ``score_threshold`` are left out."""
    num_classes = len(instances.class_names)
    height, width = grid.shape
    out = torch.zeros(num_classes, height * width)
    if instances.scores is not None and len(instances):
        instances = instances.select(instances.scores >= score_threshold)
    segments, labels, scores = instance_segments(instances)
    if not len(segments):
        return out.view(num_classes, height, width)
    xs = grid.x_range[0] + (torch.arange(width, dtype=torch.float32) + 0.5) * grid.resolution
    ys = grid.y_range[0] + (torch.arange(height, dtype=torch.float32) + 0.5) * grid.resolution
    centres = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).view(-1, 2)   # (N, 2) row-major
    seg = torch.from_numpy(segments)
    lab = torch.from_numpy(labels)
    sco = torch.from_numpy(scores)
    for start in range(0, len(seg), chunk):
        a, b = seg[start:start + chunk, 0], seg[start:start + chunk, 1]           # (s, 2)
        ab = b - a
        denom = (ab * ab).sum(-1).clamp_min(1e-12)
        t = (((centres[:, None] - a[None]) * ab[None]).sum(-1) / denom).clamp(0, 1)   # (N, s)
        nearest = a[None] + t[..., None] * ab[None]
        near = (centres[:, None] - nearest).norm(dim=-1) <= half_width              # (N, s)
        value = torch.where(near, sco[start:start + chunk][None], torch.zeros(()))
        for label in lab[start:start + chunk].unique().tolist():
            mask = lab[start:start + chunk] == label
            out[label] = torch.maximum(out[label], value[:, mask].amax(dim=1))
    return out.view(num_classes, height, width)
