"""Vector map elements around the ego from the nuScenes map expansion (MapTR-style).

* ``divider``: ``lane_divider`` and ``road_divider`` lines, clipped to the query disc;
* ``ped_crossing``: ``ped_crossing`` polygons intersected with the disc (closed);
* ``boundary``: outlines (exteriors and holes) of the union of ``road_segment`` and
  ``lane`` polygons, clipped to the disc, as MapTR builds road boundaries.

Everything stays in the world (nuScenes global = map) frame.  Geometries of a location are
extracted once with the devkit and indexed with a shapely STRtree, so a query costs a tree
lookup instead of the devkit's scan over every record.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from shapely import STRtree
from shapely.geometry import LineString, MultiLineString, Point
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

from ...structures import MapElement
from .map_api import load_nuscenes_map

LINE_LAYERS: dict[str, str] = {"lane_divider": "divider", "road_divider": "divider"}
CROSSING_LAYERS: dict[str, str] = {"ped_crossing": "ped_crossing"}
BOUNDARY_SOURCE_LAYERS: tuple[str, ...] = ("road_segment", "lane")


@dataclass
class _LocationIndex:
    """All relevant geometries of one map with their category, token and a spatial index."""

    geometries: list[BaseGeometry]
    categories: list[str]
    tokens: list[str]
    tree: STRtree

    def query(self, disc: BaseGeometry) -> list[int]:
        return [int(i) for i in self.tree.query(disc, predicate="intersects")]


def _build_index(nusc_map: object) -> _LocationIndex:
    entries: list[tuple[BaseGeometry, str, str]] = []
    for layer, category in LINE_LAYERS.items():
        for record in getattr(nusc_map, layer):
            line = nusc_map.extract_line(record["line_token"])
            if len(line.coords) >= 2:
                entries.append((line, category, record["token"]))
    for layer, category in CROSSING_LAYERS.items():
        for record in getattr(nusc_map, layer):
            entries.append((nusc_map.extract_polygon(record["polygon_token"]), category, record["token"]))
    for layer in BOUNDARY_SOURCE_LAYERS:
        for record in getattr(nusc_map, layer):
            polygon = nusc_map.extract_polygon(record["polygon_token"])
            if polygon.is_valid and not polygon.is_empty:
                entries.append((polygon, "_road", record["token"]))
    geometries = [entry[0] for entry in entries]
    return _LocationIndex(geometries, [e[1] for e in entries], [e[2] for e in entries], STRtree(geometries))


def _line_parts(geometry: BaseGeometry) -> list[np.ndarray]:
    """Coordinates of each LineString inside a (multi-part) clipping result."""
    if geometry.is_empty:
        return []
    if isinstance(geometry, LineString):
        return [np.asarray(geometry.coords)] if len(geometry.coords) >= 2 else []
    if isinstance(geometry, MultiLineString) or hasattr(geometry, "geoms"):
        return [part for sub in geometry.geoms for part in _line_parts(sub)]
    return []


def _polygons(geometry: BaseGeometry) -> list:
    if geometry.is_empty:
        return []
    if geometry.geom_type == "Polygon":
        return [geometry]
    return [poly for sub in getattr(geometry, "geoms", []) for poly in _polygons(sub)]


def elements_in_disc(index: _LocationIndex, center_xy: np.ndarray, radius: float) -> list[MapElement]:
    """Map elements within ``radius`` metres of ``center_xy`` (world frame)."""
    disc = Point(float(center_xy[0]), float(center_xy[1])).buffer(radius)
    elements: list[MapElement] = []
    road: list[BaseGeometry] = []
    for i in index.query(disc):
        geometry, category, token = index.geometries[i], index.categories[i], index.tokens[i]
        if category == "_road":
            road.append(geometry)
        elif category == "ped_crossing":
            for polygon in _polygons(geometry.intersection(disc)):
                ring = np.asarray(polygon.exterior.coords)[:-1]
                if len(ring) >= 3:
                    elements.append(MapElement(category, ring, closed=True, element_id=token))
        else:
            for part in _line_parts(geometry.intersection(disc)):
                elements.append(MapElement(category, part, closed=False, element_id=token))
    for polygon in _polygons(unary_union(road)) if road else []:
        for ring in [polygon.exterior, *polygon.interiors]:
            for part in _line_parts(LineString(ring.coords).intersection(disc)):
                elements.append(MapElement("boundary", part, closed=False))
    return elements


class NuScenesMapCache:
    """Lazily loaded :class:`NuScenesMap` indices per location, owned by one dataset."""

    def __init__(self, dataroot: str | Path) -> None:
        self.dataroot = Path(dataroot)
        self._indices: dict[str, _LocationIndex] = {}

    def __getstate__(self) -> dict:
        """Pickle without the loaded maps (dataloader workers rebuild what they use)."""
        return {"dataroot": self.dataroot, "_indices": {}}

    def index(self, location: str) -> _LocationIndex:
        """The index of ``location``, loading ``maps/expansion/<location>.json`` on first use."""
        if location not in self._indices:
            path = self.dataroot / "maps" / "expansion" / f"{location}.json"
            if not path.is_file():
                raise FileNotFoundError(
                    f"nuScenes map expansion for location {location!r} not found: {path} "
                    "(download the map expansion pack or set with_map=False)"
                )
            self._indices[location] = _build_index(load_nuscenes_map(self.dataroot, location))
        return self._indices[location]

    def elements_around(self, location: str, center_xy: np.ndarray, radius: float) -> list[MapElement]:
        """Map elements of ``location`` within ``radius`` metres of ``center_xy``."""
        return elements_in_disc(self.index(location), center_xy, radius)
