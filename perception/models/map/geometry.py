"""Point geometry shared by the map heads: normalization to a BEV range, sampling grids,
arc-length resampling of ground truth and the sinusoidal embedding of reference points.

A *range* is ``(x_min, y_min, x_max, y_max)`` in metres of the LiDAR frame; normalized points
are in ``[0, 1]`` with ``0`` at the minimum.  ``F.grid_sample`` coordinates are ``[-1, 1]``
with x along the width (columns, +x) and y along the height (rows, +y), the stack's BEV
convention (:mod:`perception.structures.conventions`), with ``align_corners=False`` so the
range edges are the outer cell edges.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import Tensor


class MapGeometryError(ValueError):
    """Raised for a malformed BEV range or point array."""


def check_range(bev_range: Sequence[float], name: str = "range") -> tuple[float, float, float, float]:
    """``(x_min, y_min, x_max, y_max)`` as floats; raises on a wrong length or an empty box.
    A 6-value point-cloud range ``(x0, y0, z0, x1, y1, z1)`` is accepted too."""
    values = [float(v) for v in bev_range]
    if len(values) == 6:
        values = [values[0], values[1], values[3], values[4]]
    if len(values) != 4 or values[2] <= values[0] or values[3] <= values[1]:
        raise MapGeometryError(f"{name} must be (x_min, y_min, x_max, y_max) with max > min, got {list(bev_range)}")
    return values[0], values[1], values[2], values[3]


def normalize(points: Tensor, bev_range: Sequence[float]) -> Tensor:
    """Metric ``(..., 2)`` points -> ``[0, 1]`` coordinates of ``bev_range``."""
    x0, y0, x1, y1 = check_range(bev_range)
    lo = points.new_tensor([x0, y0])
    return (points - lo) / points.new_tensor([x1 - x0, y1 - y0])


def denormalize(points: Tensor, bev_range: Sequence[float]) -> Tensor:
    """``[0, 1]`` coordinates of ``bev_range`` -> metric ``(..., 2)`` points."""
    x0, y0, x1, y1 = check_range(bev_range)
    return points * points.new_tensor([x1 - x0, y1 - y0]) + points.new_tensor([x0, y0])


def to_grid(points_norm: Tensor, map_range: Sequence[float], bev_range: Sequence[float]) -> Tensor:
    """``grid_sample`` coordinates in the feature map covering ``bev_range`` of points
    normalized in ``map_range`` (the two ranges may differ: a map head may look at a window
    of a larger LiDAR BEV)."""
    if tuple(check_range(map_range)) == tuple(check_range(bev_range)):
        return points_norm * 2.0 - 1.0
    return normalize(denormalize(points_norm, map_range), bev_range) * 2.0 - 1.0


def inverse_sigmoid(x: Tensor, eps: float = 1e-5) -> Tensor:
    """The logit of ``x`` clamped to ``[eps, 1 - eps]`` (reference point refinement)."""
    x = x.clamp(eps, 1 - eps)
    return torch.log(x / (1 - x))


def sine_embedding(points_norm: Tensor, num_feats: int, temperature: float = 10000.0) -> Tensor:
    """DETR-style sinusoidal embedding of ``(..., 2)`` normalized points: ``(..., 2 * num_feats)``
    (``num_feats`` sin/cos features per coordinate, y first as in DETR)."""
    if num_feats % 2:
        raise MapGeometryError(f"sine_embedding: num_feats must be even, got {num_feats}")
    dim_t = torch.arange(num_feats, dtype=points_norm.dtype, device=points_norm.device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_feats)
    scaled = points_norm * (2 * math.pi)
    pos = scaled[..., None] / dim_t  # (..., 2, num_feats)
    pos = torch.stack((pos[..., 0::2].sin(), pos[..., 1::2].cos()), dim=-1).flatten(-2)
    return torch.cat((pos[..., 1, :], pos[..., 0, :]), dim=-1)


def resample_polyline(points: np.ndarray, num_points: int, closed: bool) -> np.ndarray:
    """``num_points`` points evenly spaced by arc length along ``points`` ``(K, 2)``.

    Open lines keep both end points; closed polygons go round the whole perimeter (closing
    edge included) starting at the first vertex, without repeating it.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 0:
        raise MapGeometryError("resample_polyline: an instance has no points")
    if closed:
        pts = np.concatenate([pts, pts[:1]], axis=0)
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    if cum[-1] <= 0:
        return np.repeat(pts[:1], num_points, axis=0).astype(np.float32)
    if closed:
        targets = np.linspace(0.0, cum[-1], num_points + 1)[:-1]
    else:
        targets = np.linspace(0.0, cum[-1], num_points)
    x = np.interp(targets, cum, pts[:, 0])
    y = np.interp(targets, cum, pts[:, 1])
    return np.stack([x, y], axis=1).astype(np.float32)
