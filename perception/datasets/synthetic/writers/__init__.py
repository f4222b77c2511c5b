"""Writers that turn a :class:`~perception.datasets.synthetic.types.SyntheticScene` into real
dataset layouts (nuScenes tables + map expansion, Argoverse 2 sensor logs, AV2 motion
scenarios).  This module holds what they share: deterministic ids and the choice of which
objects of a tick get a ground-truth annotation.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from ....structures import Boxes3D, invert_transform
from ..types import ObjectState, Tick

ANNOTATION_RANGE_M = 60.0
"""Objects farther than this (xy distance to the ego) are not annotated (nuScenes' sensor range)."""
MIN_LIDAR_POINTS = 1
"""Objects with fewer LiDAR points of the tick inside their box are not annotated."""


def stable_token(*parts: object) -> str:
    """32 hex characters, a deterministic hash of ``parts`` (nuScenes token format)."""
    text = "\x1f".join(str(part) for part in parts)
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def stable_uuid(*parts: object) -> str:
    """A deterministic UUID-formatted id (Argoverse 2 log ids, track uuids)."""
    token = stable_token(*parts)
    return f"{token[:8]}-{token[8:12]}-{token[12:16]}-{token[16:20]}-{token[20:]}"


def stable_int(*parts: object, bits: int = 31) -> int:
    """A deterministic non-negative integer below ``2**bits`` (AV2 map element ids, seeds)."""
    return int(stable_token(*parts)[:16], 16) % (1 << bits)


def seconds_to_us(timestamp: float) -> int:
    """Float seconds to integer microseconds (nuScenes)."""
    return int(round(timestamp * 1e6))


def seconds_to_ns(timestamp: float) -> int:
    """Float seconds to integer nanoseconds (Argoverse 2); rounded to whole microseconds first
    so that the nuScenes and AV2 copies of a tick agree exactly."""
    return seconds_to_us(timestamp) * 1000


def is_annotated_category(category: str) -> bool:
    """Whether objects of a nuScenes category get boxes: the 10 detection classes only."""
    from nuscenes.eval.detection.utils import category_to_detection_name

    return category_to_detection_name(category) is not None


def objects_to_boxes(objects: list[ObjectState]) -> Boxes3D:
    """World-frame :class:`Boxes3D` of ``objects`` (gravity centre, ``l, w, h``, yaw, velocity)."""
    if not objects:
        return Boxes3D.empty()
    data = np.array(
        [[*o.center[:3], *o.size[:3], o.yaw, *np.asarray(o.velocity)[:2]] for o in objects],
        dtype=np.float64,
    )
    return Boxes3D(data, np.zeros(len(objects), dtype=np.int64), [o.track_id for o in objects])


@dataclass
class Annotated:
    """The annotated objects of one tick, their world boxes and LiDAR point counts."""

    objects: list[ObjectState]
    boxes_world: Boxes3D
    num_points: np.ndarray


def annotate_tick(
    tick: Tick,
    lidar2ego: np.ndarray,
    max_range: float = ANNOTATION_RANGE_M,
    min_points: int = MIN_LIDAR_POINTS,
) -> Annotated:
    """Select the objects of ``tick`` that get a box: a detection class, within ``max_range``
    of the ego (xy) and with at least ``min_points`` of the tick's LiDAR points inside the box.

    Point counts use the tick's own sweep: boxes go world -> lidar with
    ``inv(ego2global @ lidar2ego)`` and :meth:`Boxes3D.count_points`.
    """
    candidates = [o for o in tick.objects if is_annotated_category(o.category)]
    if not candidates:
        return Annotated([], Boxes3D.empty(), np.zeros(0, dtype=np.int64))
    boxes = objects_to_boxes(candidates)
    ego_xy = np.asarray(tick.ego2global)[:2, 3]
    near = np.linalg.norm(boxes.centers[:, :2] - ego_xy, axis=1) <= max_range
    world2lidar = invert_transform(np.asarray(tick.ego2global) @ np.asarray(lidar2ego))
    counts = np.zeros(len(candidates), dtype=np.int64)
    if near.any() and len(tick.points):
        counts[near] = boxes[near].transform(world2lidar).count_points(tick.points)
    keep = near & (counts >= min_points)
    indices = np.flatnonzero(keep)
    return Annotated([candidates[i] for i in indices], boxes[indices], counts[indices])


__all__ = [
    "ANNOTATION_RANGE_M", "MIN_LIDAR_POINTS", "Annotated", "annotate_tick", "is_annotated_category",
    "objects_to_boxes", "seconds_to_ns", "seconds_to_us", "stable_int", "stable_token", "stable_uuid",
]
