"""Object kinds of the synthetic world: nuScenes categories, typical sizes, speeds, attributes.

Sizes ``(l, w, h)`` are close to the nuScenes per-class means.  Categories starting with
``static.`` (buildings, trees, poles) are scenery: sensors see them but they are no detection class
and the writers do not annotate them.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

STATIC_PREFIX = "static."


@dataclass(frozen=True)
class Kind:
    """One object kind: category, mean size, relative size jitter, desired speed (m/s)."""

    category: str
    size: tuple[float, float, float]
    jitter: float = 0.06
    speed: float = 0.0
    accel: float = 1.5
    decel: float = 3.0


KINDS: dict[str, Kind] = {
    "car": Kind("vehicle.car", (4.63, 1.95, 1.73), speed=11.0, accel=1.8),
    "truck": Kind("vehicle.truck", (6.9, 2.5, 2.85), speed=9.0, accel=1.0, decel=2.5),
    "bus": Kind("vehicle.bus.rigid", (11.0, 2.95, 3.5), jitter=0.03, speed=8.5, accel=0.9, decel=2.5),
    "motorcycle": Kind("vehicle.motorcycle", (2.1, 0.8, 1.5), speed=11.0, accel=2.5),
    "bicycle": Kind("vehicle.bicycle", (1.75, 0.62, 1.7), speed=5.0, accel=1.0),
    "pedestrian": Kind("human.pedestrian.adult", (0.73, 0.67, 1.77), jitter=0.08, speed=1.35),
    "trailer": Kind("vehicle.trailer", (12.0, 2.9, 3.9), jitter=0.04),
    "construction": Kind("vehicle.construction", (6.4, 2.8, 3.2)),
    "cone": Kind("movable_object.trafficcone", (0.41, 0.41, 0.8)),
    "barrier": Kind("movable_object.barrier", (0.5, 2.5, 1.0)),
    "building": Kind("static.building", (16.0, 12.0, 12.0)),
    "pole": Kind("static.pole", (0.3, 0.3, 7.0), jitter=0.0),
    "tree": Kind("static.vegetation", (1.4, 1.4, 8.0), jitter=0.2),
}
"""Kind name -> :class:`Kind` (the ten detection classes plus scenery)."""

CYCLES = ("vehicle.bicycle", "vehicle.motorcycle")
MOVING_SPEED = 0.2
"""m/s above which a pedestrian or vehicle counts as moving (the rule of the nuScenes
detection output, :func:`perception.evaluation.nuscenes_detection.attribute_of`)."""


def jittered_size(kind: str, rng: np.random.Generator) -> np.ndarray:
    """Mean size of ``kind`` scaled by a small random factor per dimension."""
    spec = KINDS[kind]
    return np.asarray(spec.size) * (1.0 + spec.jitter * rng.uniform(-1.0, 1.0, 3))


def track_id(*parts: object) -> str:
    """A stable 32-hex-digit id (nuScenes-token-like) from the parts' text."""
    return hashlib.md5("/".join(str(p) for p in parts).encode()).hexdigest()


def attribute_of(category: str, speed: float, parked: bool) -> str:
    """The nuScenes attribute of an object of ``category`` moving at ``speed`` m/s."""
    if category.startswith("human.pedestrian"):
        return "pedestrian.moving" if speed > MOVING_SPEED else "pedestrian.standing"
    if category in CYCLES:
        return "cycle.without_rider" if parked else "cycle.with_rider"
    if category.startswith("vehicle."):
        if parked:
            return "vehicle.parked"
        return "vehicle.moving" if speed > MOVING_SPEED else "vehicle.stopped"
    return ""
