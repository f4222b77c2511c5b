"""Shapely 2 helpers of the vector-map ground truth: clip to the BEV patch, merge, orient, resample.

Every function works on numpy arrays of shapely geometries with shapely 2's vectorized
functions (``shapely.intersection``, ``shapely.get_parts``, ``shapely.line_interpolate_point``...),
so the cost per frame is a handful of GEOS calls over arrays rather than a Python loop over
elements.  Coordinates are 2D, in the frame the patch is given in (the LiDAR BEV plane).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely

SNAP_DECIMALS = 4
"""Vertices are rounded to 0.1 mm before merging, so endpoints shared in the source map meet exactly."""


def patch_box(pc_range: Sequence[float]) -> shapely.Geometry:
    """The rectangle ``(x_min, y_min, x_max, y_max)`` as a shapely polygon."""
    x_min, y_min, x_max, y_max = (float(v) for v in pc_range)
    return shapely.box(x_min, y_min, x_max, y_max)


def make_lines(polylines: Sequence[np.ndarray]) -> np.ndarray:
    """Array of LineStrings from ``(K, 2)`` vertex arrays (snapped, K >= 2 each)."""
    return np.array([shapely.linestrings(np.round(p, SNAP_DECIMALS)) for p in polylines], dtype=object)


def make_polygons(rings: Sequence[np.ndarray]) -> np.ndarray:
    """Array of valid (``make_valid``) polygonal geometries from ``(K, 2)`` rings (K >= 3)."""
    if not rings:
        return np.empty(0, dtype=object)
    polygons = np.array([shapely.polygons(np.round(r, SNAP_DECIMALS)) for r in rings], dtype=object)
    return shapely.make_valid(polygons)


def parts_of_type(geometries: np.ndarray | shapely.Geometry, geom_type: str) -> np.ndarray:
    """Single ``geom_type`` parts (``"LineString"`` / ``"Polygon"``) of (collections of) geometries.

    Collections (``make_valid`` and ``intersection`` results) are flattened recursively;
    empty parts and parts of other types (points of a line touching the patch corner) dropped.
    """
    parts = shapely.get_parts(np.atleast_1d(np.asarray(geometries, dtype=object)))
    while True:
        nested = shapely.get_type_id(parts) == 7  # GeometryCollection
        if not nested.any():
            break
        parts = np.concatenate([parts[~nested], shapely.get_parts(parts[nested])])
    multi = np.isin(shapely.get_type_id(parts), (4, 5, 6))
    if multi.any():
        parts = np.concatenate([parts[~multi], shapely.get_parts(parts[multi])])
    wanted = {"LineString": 1, "Polygon": 3}[geom_type]
    keep = (shapely.get_type_id(parts) == wanted) & ~shapely.is_empty(parts)
    return parts[keep]


def merge_lines(lines: np.ndarray) -> np.ndarray:
    """Join lines that meet end to end at a vertex of degree two (``shapely.line_merge``)."""
    if len(lines) < 2:
        return lines
    return parts_of_type(shapely.line_merge(shapely.multilinestrings(lines)), "LineString")


def clip_lines(lines: np.ndarray, patch: shapely.Geometry, merge: bool) -> np.ndarray:
    """The parts of ``lines`` inside ``patch``, each part a separate LineString.

    With ``merge``, pieces that share an endpoint after clipping are joined again: a closed
    ring cut by the patch is otherwise split at its first vertex as well.
    """
    if len(lines) == 0:
        return lines
    pieces = parts_of_type(shapely.intersection(lines, patch), "LineString")
    return merge_lines(pieces) if merge else pieces


def main_directions(polygons: np.ndarray) -> np.ndarray:
    """Angle (rad, in ``[0, pi)``) of the long side of each polygon's minimum rotated rectangle."""
    rectangles = shapely.oriented_envelope(polygons)
    corners = shapely.get_coordinates(shapely.get_exterior_ring(rectangles)).reshape(len(polygons), -1, 2)[:, :3]
    first, second = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 1]
    longer = np.where((np.linalg.norm(first, axis=1) >= np.linalg.norm(second, axis=1))[:, None], first, second)
    return np.mod(np.arctan2(longer[:, 1], longer[:, 0]), np.pi)


def merge_parallel_polygons(polygons: np.ndarray, max_angle_deg: float) -> np.ndarray:
    """Union the polygons that overlap *and* run in nearly the same direction (MapTR's rule for
    crossings drawn in pieces); crossings meeting at an intersection corner stay apart."""
    polygons = parts_of_type(polygons, "Polygon")
    if len(polygons) < 2:
        return polygons
    left, right = shapely.STRtree(polygons).query(polygons, predicate="intersects")
    pairs = left < right
    left, right = left[pairs], right[pairs]
    angle = np.abs(main_directions(polygons)[left] - main_directions(polygons)[right])
    angle = np.minimum(angle, np.pi - angle)
    overlap = shapely.area(shapely.intersection(polygons[left], polygons[right])) > 0
    keep = overlap & (angle <= np.deg2rad(max_angle_deg))
    group = np.arange(len(polygons))
    for a, b in zip(left[keep], right[keep]):  # union-find over the few merged pairs
        root_a, root_b = _root(group, a), _root(group, b)
        group[max(root_a, root_b)] = min(root_a, root_b)
    roots = np.array([_root(group, i) for i in range(len(polygons))])
    merged = [shapely.union_all(polygons[roots == r]) for r in np.unique(roots)]
    return parts_of_type(np.array(merged, dtype=object), "Polygon")


def _root(group: np.ndarray, index: int) -> int:
    while group[index] != index:
        index = int(group[index])
    return int(index)


def clip_polygons(polygons: np.ndarray, patch: shapely.Geometry, merge_angle_deg: float | None) -> np.ndarray:
    """Polygons inside ``patch``; overlapping near-parallel ones unioned first unless
    ``merge_angle_deg`` is None."""
    if len(polygons) == 0:
        return np.empty(0, dtype=object)
    if merge_angle_deg is not None:
        polygons = merge_parallel_polygons(polygons, merge_angle_deg)
    return parts_of_type(shapely.intersection(polygons, patch), "Polygon")


def oriented_rings(polygons: np.ndarray, holes: bool) -> np.ndarray:
    """Rings of ``polygons`` as LineStrings: exteriors clockwise, holes (when asked) counter-clockwise.

    The fixed orientation (MapTR's) makes the ground truth deterministic; matching and the
    Chamfer metric do not depend on it.
    """
    if len(polygons) == 0:
        return np.empty(0, dtype=object)
    rings = [shapely.get_exterior_ring(polygons)]
    clockwise = [np.ones(len(polygons), dtype=bool)]
    if holes:
        counts = shapely.get_num_interior_rings(polygons)
        owner = np.repeat(np.arange(len(polygons)), counts)
        index = np.concatenate([np.arange(c) for c in counts]) if counts.sum() else np.empty(0, int)
        rings.append(shapely.get_interior_ring(polygons[owner], index))
        clockwise.append(np.zeros(len(owner), dtype=bool))
    all_rings = np.concatenate(rings)
    want_cw = np.concatenate(clockwise)
    flip = shapely.is_ccw(all_rings) == want_cw
    coords = [shapely.get_coordinates(ring)[::-1] if f else shapely.get_coordinates(ring)
              for ring, f in zip(all_rings, flip)]
    return np.array([shapely.linestrings(c) for c in coords], dtype=object)


def resample_lines(lines: np.ndarray, num_points: int, closed: bool) -> np.ndarray:
    """``(M, num_points, 2)`` points evenly spaced by arc length along each line.

    Open lines: first and last vertices included.  Closed rings (a LineString whose last
    vertex repeats the first): ``num_points`` points starting at the first vertex, the
    first not repeated at the end.
    """
    if num_points < 2:
        raise ValueError(f"resample_lines: num_points must be >= 2, got {num_points}")
    if len(lines) == 0:
        return np.zeros((0, num_points, 2), dtype=np.float64)
    fractions = np.arange(num_points) / num_points if closed else np.linspace(0.0, 1.0, num_points)
    distances = shapely.length(lines)[:, None] * fractions[None, :]
    points = shapely.line_interpolate_point(lines[:, None], distances)
    return shapely.get_coordinates(points.ravel()).reshape(len(lines), num_points, 2)
