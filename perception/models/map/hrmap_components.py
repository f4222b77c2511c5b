"""Map elements read back from a prior raster: connected components -> ordered point sequences.

For HRMapNet's query initialization in ``"components"`` mode: each confident connected component
of a class channel becomes one candidate element with ``num_points`` points spanning the whole
component (not a short segment around a peak), so a seeded query starts on the full element.

* open classes (dividers, boundaries): the cells are ordered along the component's principal
  axis and cut into ``num_points`` equal-count bins; each point is its bin's mean (the two ends
  the mean of the extreme cells) -- follows
  gentle curves, an approximation for sharply bent or branching components;
* closed classes (pedestrian crossings): the cells are binned by angle around the centroid and
  each point is the farthest cell of its bin (the outline, counter-clockwise).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def _open_points(xy: np.ndarray, num_points: int) -> np.ndarray:
    centred = xy - xy.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    order = np.argsort(centred @ vt[0], kind="stable")
    ordered = xy[order]
    bins = np.array_split(ordered, num_points)
    points = np.stack([b.mean(0) if len(b) else ordered[-1] for b in bins])
    edge = max(1, len(ordered) // (4 * num_points))  # the ends reach the component's extremes
    points[0], points[-1] = ordered[:edge].mean(0), ordered[-edge:].mean(0)
    return points


def _closed_points(xy: np.ndarray, num_points: int) -> np.ndarray:
    centre = xy.mean(0)
    offsets = xy - centre
    angle = np.arctan2(offsets[:, 1], offsets[:, 0])
    radius = np.hypot(offsets[:, 0], offsets[:, 1])
    edges = np.linspace(-np.pi, np.pi, num_points + 1)
    points = []
    for k in range(num_points):
        inside = (angle >= edges[k]) & (angle < edges[k + 1])
        if inside.any():
            points.append(xy[inside][np.argmax(radius[inside])])
        else:  # an empty sector: the ray at its middle angle, at the mean radius
            mid = 0.5 * (edges[k] + edges[k + 1])
            points.append(centre + radius.mean() * np.array([np.cos(mid), np.sin(mid)]))
    return np.stack(points)


def component_elements(prior: np.ndarray, threshold: float, num_points: int, closed_labels: Sequence[int] = (),
                       min_cells: int = 8, max_count: int | None = None,
                       aspect: tuple[float, float] = (1.0, 1.0)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Components of ``prior`` ``(C, h, w)`` above ``threshold``: ``scores (K,)`` (mean value),
    ``labels (K,)`` and ``points (K, num_points, 2)`` normalized ``(x, y)`` in ``[0, 1]`` (column
    ``+x``, row ``+y``), the most confident first.  ``aspect`` is the metric size ``(width, height)``
    of the raster, so the principal axes are taken in metres."""
    channels, height, width = prior.shape
    scale = np.array([aspect[0], aspect[1]], dtype=np.float64)
    scores, labels, points = [], [], []
    for label in range(channels):
        components, count = ndimage.label(prior[label] >= threshold, structure=EIGHT_CONNECTED)
        if not count:
            continue
        for index, cells in enumerate(ndimage.find_objects(components), start=1):
            rows, cols = np.nonzero(components[cells] == index)
            if len(rows) < min_cells:
                continue
            rows, cols = rows + cells[0].start, cols + cells[1].start
            xy = np.stack([(cols + 0.5) / width, (rows + 0.5) / height], axis=1) * scale
            ordered = _closed_points(xy, num_points) if label in closed_labels else _open_points(xy, num_points)
            scores.append(float(prior[label, rows, cols].mean()))
            labels.append(label)
            points.append(ordered / scale)
    if not scores:
        return np.zeros(0, np.float32), np.zeros(0, np.int64), np.zeros((0, num_points, 2), np.float32)
    order = np.argsort(-np.asarray(scores), kind="stable")[:max_count]
    return (np.asarray(scores, np.float32)[order], np.asarray(labels, np.int64)[order],
            np.asarray(points, np.float32)[order])
