"""BEV non-maximum suppression for 3D detectors, in plain torch (no compiled ops needed).

* :func:`bev_rotated_iou`: pairwise IoU of rotated BEV rectangles ``(x, y, l, w, yaw)``
  (yaw CCW from +x, ``l`` along the heading, as :mod:`perception.structures.conventions`).
  The intersection polygon of two convex quads is the convex hull of the corners of each
  inside the other plus the 16 edge/edge crossings; its area comes from sorting those
  points by angle around their mean and the shoelace formula, for all pairs at once.
  Pairs whose circumscribed circles do not touch are skipped (IoU 0), so the cost follows
  the number of overlapping pairs, not ``N * M``.
* :func:`rotated_nms`: greedy NMS on that IoU (mmcv's ``nms_bev`` semantics: suppress when
  IoU > threshold, optional ``pre_max_size`` / ``post_max_size``).
* :func:`circle_nms`: CenterPoint's centre-distance NMS; ``radius_sq`` is compared with the
  *squared* centre distance, which is how CenterPoint / mmdet3d use ``test_cfg.min_radius``.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

_INSIDE_EPS = 1e-6
"""Tolerance (metres) for a corner on the other box's boundary to count as inside."""
_CHUNK = 32768
"""Box pairs per vectorized intersection batch (bounds memory to a few tens of MB)."""
_EXACT = "donot_use_mm_for_euclid_dist"
"""cdist mode computing differences directly (the matmul shortcut loses precision)."""


def _check_boxes(boxes: Tensor, name: str) -> Tensor:
    if not isinstance(boxes, Tensor) or boxes.dim() != 2 or boxes.shape[1] != 5:
        shape = tuple(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__
        raise ValueError(f"{name} must be a (N, 5) tensor of x, y, l, w, yaw; got {shape}")
    return boxes


def bev_corners(boxes: Tensor) -> Tensor:
    """``(N, 4, 2)`` corners of ``(N, 5)`` BEV boxes, counter-clockwise from front-left."""
    unit = boxes.new_tensor([[0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5], [0.5, -0.5]])
    local = unit[None] * boxes[:, None, 2:4]
    cos, sin = torch.cos(boxes[:, 4])[:, None], torch.sin(boxes[:, 4])[:, None]
    x = local[..., 0] * cos - local[..., 1] * sin + boxes[:, None, 0]
    y = local[..., 0] * sin + local[..., 1] * cos + boxes[:, None, 1]
    return torch.stack([x, y], dim=-1)


def _cross(a: Tensor, b: Tensor) -> Tensor:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _inside(points: Tensor, polygon: Tensor) -> Tensor:
    """``(P, K)`` mask of ``points (P, K, 2)`` inside the CCW ``polygon (P, 4, 2)``."""
    edges = torch.roll(polygon, -1, dims=1) - polygon                    # (P, 4, 2)
    rel = points[:, :, None, :] - polygon[:, None, :, :]                 # (P, K, 4, 2)
    return (_cross(edges[:, None], rel) >= -_INSIDE_EPS).all(dim=2)


def _intersection_area(quad_a: Tensor, quad_b: Tensor) -> Tensor:
    """Area of the intersection of pairs of CCW convex quads ``(P, 4, 2)`` -> ``(P,)``."""
    start_a, start_b = quad_a, quad_b
    dir_a = torch.roll(quad_a, -1, dims=1) - quad_a                      # (P, 4, 2)
    dir_b = torch.roll(quad_b, -1, dims=1) - quad_b
    denom = _cross(dir_a[:, :, None], dir_b[:, None, :])                 # (P, 4, 4)
    offset = start_b[:, None, :, :] - start_a[:, :, None, :]             # (P, 4, 4, 2)
    safe = torch.where(denom.abs() > 1e-12, denom, torch.ones_like(denom))
    t = _cross(offset, dir_b[:, None, :]) / safe
    u = _cross(offset, dir_a[:, :, None]) / safe
    crossing = (denom.abs() > 1e-12) & (t >= 0) & (t <= 1) & (u >= 0) & (u <= 1)
    crossings = start_a[:, :, None, :] + t[..., None] * dir_a[:, :, None, :]
    points = torch.cat([quad_a, quad_b, crossings.flatten(1, 2)], dim=1)  # (P, 24, 2)
    valid = torch.cat([_inside(quad_a, quad_b), _inside(quad_b, quad_a),
                       crossing.flatten(1, 2)], dim=1)                   # (P, 24)
    count = valid.sum(dim=1)
    mean = (points * valid[..., None]).sum(dim=1) / count.clamp(min=1)[:, None]
    rel = points - mean[:, None, :]
    angle = torch.atan2(rel[..., 1], rel[..., 0]).masked_fill(~valid, 10.0)
    order = angle.argsort(dim=1)
    ordered = torch.gather(rel, 1, order[..., None].expand_as(rel))
    ordered_valid = torch.gather(valid, 1, order)
    # Invalid points sort last; replacing them by the first point makes their shoelace
    # terms vanish while the closing edge last-valid -> first is kept.
    ordered = torch.where(ordered_valid[..., None], ordered, ordered[:, :1])
    area = 0.5 * _cross(ordered, torch.roll(ordered, -1, dims=1)).sum(dim=1).abs()
    return torch.where(count >= 3, area, torch.zeros_like(area))


def _paired_iou(boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
    """IoU of aligned pairs of float64 boxes ``(P, 5)`` and ``(P, 5)`` -> ``(P,)``."""
    origin = boxes_a[:, None, :2]  # work relative to box a's centre for precision
    inter = _intersection_area(bev_corners(boxes_a) - origin, bev_corners(boxes_b) - origin)
    union = boxes_a[:, 2] * boxes_a[:, 3] + boxes_b[:, 2] * boxes_b[:, 3] - inter
    iou = (inter / union.clamp(min=1e-12)).clamp(max=1.0)  # rounding can overshoot 1
    return torch.where(union > 0, iou, torch.zeros_like(union))


def _near(a: Tensor, b: Tensor) -> Tensor:
    """``(N, M)`` mask of box pairs whose circumscribed circles touch (IoU can be > 0)."""
    reach_a = 0.5 * torch.hypot(a[:, 2], a[:, 3])
    reach_b = 0.5 * torch.hypot(b[:, 2], b[:, 3])
    distance = torch.cdist(a[:, :2], b[:, :2], compute_mode=_EXACT)
    return distance <= reach_a[:, None] + reach_b[None] + _INSIDE_EPS


def bev_rotated_iou(boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
    """``(N, M)`` IoU of rotated BEV boxes ``(N, 5)`` and ``(M, 5)`` as ``x, y, l, w, yaw``.

    Computed in float64 (returned in ``boxes_a``'s dtype); boxes with zero area have IoU 0.
    """
    _check_boxes(boxes_a, "boxes_a")
    _check_boxes(boxes_b, "boxes_b")
    a, b = boxes_a.double(), boxes_b.to(boxes_a.device).double()
    iou = a.new_zeros((len(a), len(b)))
    if len(a) == 0 or len(b) == 0:
        return iou.to(boxes_a.dtype)
    rows, cols = _near(a, b).nonzero(as_tuple=True)
    for start in range(0, len(rows), _CHUNK):
        r, c = rows[start:start + _CHUNK], cols[start:start + _CHUNK]
        iou[r, c] = _paired_iou(a[r], b[c])
    return iou.to(boxes_a.dtype)


def _check_scores(scores: Tensor, count: int) -> Tensor:
    if not isinstance(scores, Tensor) or scores.dim() != 1 or len(scores) != count:
        shape = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
        raise ValueError(f"scores must be a ({count},) tensor, got {shape}")
    return scores


def _as_keep(keep: list[int], order: Tensor) -> Tensor:
    return order[torch.as_tensor(keep, dtype=torch.long, device=order.device)]


def _greedy_keep(suppresses: np.ndarray, limit: int | None) -> list[int]:
    """Greedy NMS over boxes sorted by score: ``suppresses[i, j]`` says box ``i`` removes box
    ``j``; returns at most ``limit`` kept positions in score order."""
    removed = np.zeros(len(suppresses), dtype=bool)
    keep: list[int] = []
    for i in range(len(suppresses)):
        if removed[i]:
            continue
        keep.append(i)
        if limit is not None and len(keep) >= limit:
            break
        removed |= suppresses[i]
    return keep


def _lazy_greedy_keep(boxes: Tensor, near: np.ndarray, iou_threshold: float,
                      limit: int | None) -> list[int]:
    """:func:`_greedy_keep` for crowded boxes: IoU is only computed between each kept box and
    the lower-scoring boxes still alive near it, not for every near pair."""
    removed = np.zeros(len(boxes), dtype=bool)
    keep: list[int] = []
    for i in range(len(boxes)):
        if removed[i]:
            continue
        keep.append(i)
        if limit is not None and len(keep) >= limit:
            break
        rest = np.flatnonzero(near[i] & ~removed)
        if len(rest):
            others = boxes[torch.from_numpy(rest).to(boxes.device)]
            iou = _paired_iou(boxes[i].expand(len(rest), 5), others)
            removed[rest[(iou > iou_threshold).cpu().numpy()]] = True
    return keep


def rotated_nms(boxes_bev: Tensor, scores: Tensor, iou_threshold: float,
                pre_max_size: int | None = None, post_max_size: int | None = None) -> Tensor:
    """Indices (into ``boxes_bev``, highest score first) kept by greedy rotated-BEV NMS.

    ``boxes_bev`` is ``(N, 5)`` ``x, y, l, w, yaw``; a box is dropped when its IoU with a
    kept, higher-scoring box exceeds ``iou_threshold``. Only the ``pre_max_size`` best boxes
    enter NMS and at most ``post_max_size`` are returned.
    """
    _check_boxes(boxes_bev, "boxes_bev")
    _check_scores(scores, len(boxes_bev))
    order = torch.argsort(scores, descending=True, stable=True)[:pre_max_size]
    boxes = boxes_bev[order].double()
    near = torch.triu(_near(boxes, boxes), diagonal=1)
    rows, cols = near.nonzero(as_tuple=True)
    if len(rows) <= _CHUNK:  # few candidate pairs: all their IoUs in one vectorized call
        suppress = torch.zeros_like(near)
        suppress[rows, cols] = _paired_iou(boxes[rows], boxes[cols]) > iou_threshold
        return _as_keep(_greedy_keep(suppress.cpu().numpy(), post_max_size), order)
    return _as_keep(_lazy_greedy_keep(boxes, near.cpu().numpy(), iou_threshold, post_max_size),
                    order)


def circle_nms(centers_xy: Tensor, scores: Tensor, radius_sq: float,
               post_max_size: int | None = None) -> Tensor:
    """Indices (highest score first) kept by CenterPoint's circle NMS.

    A box is dropped when its squared BEV centre distance to a kept, higher-scoring box is
    ``<= radius_sq``; at most ``post_max_size`` boxes are returned.
    """
    if not isinstance(centers_xy, Tensor) or centers_xy.dim() != 2 or centers_xy.shape[1] != 2:
        raise ValueError(f"centers_xy must be a (N, 2) tensor, got "
                         f"{getattr(centers_xy, 'shape', type(centers_xy).__name__)}")
    _check_scores(scores, len(centers_xy))
    order = torch.argsort(scores, descending=True, stable=True)
    centers = centers_xy[order].double()
    dist_sq = torch.cdist(centers, centers, compute_mode=_EXACT) ** 2
    suppresses = (dist_sq <= radius_sq).cpu().numpy()
    return _as_keep(_greedy_keep(suppresses, post_max_size), order)
