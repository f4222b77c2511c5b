"""Vector map elements of an AV2 log near the ego, in the city (world) frame.

From :class:`av2.map.map_api.ArgoverseStaticMap`:

* ``divider``: painted lane-segment boundaries (mark type other than ``NONE``), shared
  boundaries of neighbouring lanes emitted once; ``element_id`` is
  ``lane_segment/<id>/<left|right>`` and ``attributes["mark_type"]`` the AV2 mark type.
  Unpainted (``NONE``) boundaries are curbs, covered by ``boundary``, or virtual lines
  inside intersections, and are skipped.
* ``ped_crossing``: polygons built from each crossing's ``edge1``/``edge2``.
* ``drivable_area`` polygons and their outlines as ``boundary`` polylines, clipped (with
  shapely) to the square of half-side ``radius`` around the ego: AV2 drivable areas
  can span the whole log.
* ``lane_centerline``: av2's interpolated lane-segment centerlines.

Lane segments and crossings are selected as av2 does (any waypoint within ``radius`` by
the L-infinity norm) and kept whole.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import shapely
from av2.map.lane_segment import LaneMarkType
from av2.map.map_api import ArgoverseStaticMap
from shapely.geometry import LineString, Polygon, box

from perception.structures import FrameError, MapElement


def load_static_map(map_dir: str | Path) -> ArgoverseStaticMap:
    """The vector map of a log (no rasters), raising :class:`FrameError` naming the folder."""
    map_dir = Path(map_dir)
    try:
        return ArgoverseStaticMap.from_map_dir(map_dir, build_raster=False)
    except (RuntimeError, OSError, KeyError, ValueError) as error:
        raise FrameError(f"cannot load AV2 map from {map_dir}: {error}") from error


def map_elements_near(avm: ArgoverseStaticMap, center_xy: np.ndarray, radius: float) -> list[MapElement]:
    """Dividers, crossings, drivable areas, boundaries and centerlines within ``radius`` m."""
    center_xy = np.asarray(center_xy, dtype=np.float64)[:2]
    return (
        lane_dividers(avm, center_xy, radius)
        + ped_crossings(avm, center_xy, radius)
        + drivable_areas(avm, center_xy, radius)
        + lane_centerlines(avm, center_xy, radius)
    )


def mark_type_of(element: MapElement) -> str:
    """The AV2 lane mark type of a ``divider`` element."""
    if element.category != "divider" or "mark_type" not in element.attributes:
        raise ValueError(f"map element {element.element_id!r} is not an AV2 divider")
    return element.attributes["mark_type"]


def lane_dividers(avm: ArgoverseStaticMap, center_xy: np.ndarray, radius: float) -> list[MapElement]:
    """Painted lane boundaries near the ego, each physical line once."""
    elements: list[MapElement] = []
    seen: set[bytes] = set()
    for segment in avm.get_nearby_lane_segments(center_xy, radius):
        for marking in (segment.left_lane_marking, segment.right_lane_marking):
            if marking.mark_type == LaneMarkType.NONE:
                continue
            key = _polyline_key(marking.polyline)
            if key in seen:
                continue
            seen.add(key)
            element_id = f"lane_segment/{segment.id}/{marking.bound_side}"
            attributes = {"mark_type": marking.mark_type.value}
            elements.append(MapElement("divider", marking.polyline, False, element_id, attributes))
    return elements


def ped_crossings(avm: ArgoverseStaticMap, center_xy: np.ndarray, radius: float) -> list[MapElement]:
    """Crossing polygons (edge1 start, edge1 end, edge2 end, edge2 start) near the ego."""
    elements = []
    for crossing in avm.get_scenario_ped_crossings():
        polygon = crossing.polygon[:-1]  # av2 repeats the first vertex
        if _within(polygon, center_xy, radius):
            elements.append(MapElement("ped_crossing", polygon, True, f"ped_crossing/{crossing.id}"))
    return elements


def drivable_areas(avm: ArgoverseStaticMap, center_xy: np.ndarray, radius: float) -> list[MapElement]:
    """Drivable-area polygons and their ``boundary`` outlines, clipped to the ego square (2D)."""
    window = box(center_xy[0] - radius, center_xy[1] - radius, center_xy[0] + radius, center_xy[1] + radius)
    elements = []
    for area in avm.get_scenario_vector_drivable_areas():
        outline = area.xyz[:, :2]
        polygon = shapely.make_valid(Polygon(outline))
        clipped = polygon.intersection(window)
        for index, part in enumerate(_parts(clipped, "Polygon")):
            ring = np.asarray(part.exterior.coords)[:-1]
            if len(ring) >= 3:
                elements.append(MapElement("drivable_area", ring, True, f"drivable_area/{area.id}/{index}"))
        lines = LineString(outline).intersection(window)
        for index, part in enumerate(_parts(lines, "LineString")):
            coords = np.asarray(part.coords)
            if len(coords) >= 2:
                elements.append(MapElement("boundary", coords, False, f"drivable_area/{area.id}/boundary/{index}"))
    return elements


def lane_centerlines(avm: ArgoverseStaticMap, center_xy: np.ndarray, radius: float) -> list[MapElement]:
    """Centerlines of the lane segments near the ego."""
    return [
        MapElement("lane_centerline", avm.get_lane_segment_centerline(segment.id), False,
                   f"lane_segment/{segment.id}")
        for segment in avm.get_nearby_lane_segments(center_xy, radius)
    ]


def _within(points: np.ndarray, center_xy: np.ndarray, radius: float) -> bool:
    """Whether any vertex lies within ``radius`` of the centre (L-infinity, as av2's queries)."""
    return bool(np.any(np.abs(points[:, :2] - center_xy).max(axis=1) <= radius))


def _polyline_key(polyline: np.ndarray) -> bytes:
    """Direction-independent key of a polyline (centimetre-rounded vertices)."""
    rounded = np.round(polyline[:, :2] * 100).astype(np.int64)
    forward, backward = rounded.tobytes(), rounded[::-1].tobytes()
    return min(forward, backward)


def _parts(geometry: shapely.Geometry, kind: str) -> list[shapely.Geometry]:
    """The single ``kind`` geometries (``Polygon``/``LineString``) inside a shapely result."""
    if geometry.is_empty:
        return []
    if geometry.geom_type == kind:
        return [geometry]
    if hasattr(geometry, "geoms"):
        return [part for sub in geometry.geoms for part in _parts(sub, kind)]
    return []
