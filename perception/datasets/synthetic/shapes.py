"""Object silhouettes for ray casting: a few boxes inside each annotated box.

A plain cuboid looks the same from the front and from the back, so neither a LiDAR nor a
camera could tell which way a parked car faces; real vehicles are not symmetric.  Cars are a
full-length lower body plus a cabin set back from the bonnet; trucks a tall cargo box behind
a lower cab.  Annotations keep the full box (the parts fill its length, width and height).

Each part is ``(x0, x1, z0, z1, width)``: the part's extent along the heading as fractions of
the length in ``[-0.5, 0.5]`` (front is +), its height as fractions of the box height from the
bottom in ``[0, 1]``, and its width as a fraction of the box width.
"""
from __future__ import annotations

import numpy as np

Part = tuple[float, float, float, float, float]

PARTS: dict[str, tuple[Part, ...]] = {
    "vehicle.car": ((-0.5, 0.5, 0.0, 0.55, 1.0), (-0.38, 0.18, 0.55, 1.0, 0.9)),
    "vehicle.truck": ((-0.5, 0.2, 0.0, 1.0, 1.0), (0.24, 0.5, 0.0, 0.78, 1.0)),
}
"""Category prefix -> parts; other categories are one full box."""

FULL_BOX: tuple[Part, ...] = ((-0.5, 0.5, 0.0, 1.0, 1.0),)


def parts_of(category: str) -> tuple[Part, ...]:
    """The silhouette parts of ``category`` (the full box when it has none)."""
    return next((parts for prefix, parts in PARTS.items() if category.startswith(prefix)), FULL_BOX)


def part_boxes(category: str, size: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(centre offset in the box frame (3,), half extents (3,))`` of each part of a box of
    ``size`` (l, w, h) whose gravity centre is the origin."""
    length, width, height = (float(v) for v in size)
    boxes = []
    for x0, x1, z0, z1, w in parts_of(category):
        centre = np.array([(x0 + x1) / 2 * length, 0.0, ((z0 + z1) / 2 - 0.5) * height])
        half = np.array([(x1 - x0) / 2 * length, w * width / 2, (z1 - z0) / 2 * height])
        boxes.append((centre, half))
    return boxes
