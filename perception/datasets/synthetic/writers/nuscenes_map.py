"""Write a :class:`RoadMap` as a nuScenes map expansion (``maps/expansion/<location>.json``)
plus the semantic-prior PNG that the ``map`` table of ``NuScenes`` points to.

Layer mapping: road segments -> ``road_segment`` (and one ``drivable_area`` made of all their
polygons, one ``road_block`` per non-intersection segment); lanes -> ``lane`` (lanes with
``is_intersection`` go to ``lane_connector``), each with an ``arcline_path_3`` entry made of
straight pieces between centreline vertices and a ``connectivity`` entry; dividers
``lane_dashed`` / ``lane_solid`` -> ``lane_divider``, ``road_divider`` -> ``road_divider``;
crossings, walkways -> ``ped_crossing``, ``walkway``; stop-line polylines -> thin ``stop_line``
polygons.  ``carpark_area`` and ``traffic_light`` are empty.

The devkit's ``NuScenesMap`` asserts that the map name is one of the four real nuScenes
locations; :func:`perception.datasets.nuscenes.map_api.load_nuscenes_map` opens a synthetic location anyway.  Its ``basemap`` PNG
is only used by ``render_*`` with ``BitMap``; get_records_in_radius / get_map_geom /
discretize_lanes do not need it.  World coordinates are kept as they are (the same frame as
the AV2 city frame); the devkit assumes canvases start at 0, so ``canvas_edge`` is the largest
x / y and the semantic-prior PNG (``MapMask``, only used for rendering) covers x, y >= 0 only.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from shapely.geometry import LineString, Point, Polygon

from ..types import RoadMap
from . import stable_token

MAP_VERSION = "1.3"
PRIOR_RESOLUTION = 0.1
"""Metres per pixel of the semantic prior PNG (the devkit's MapMask assumes 0.1)."""
LANE_DIVIDER_TYPES = {"dashed": "DOUBLE_DASHED_WHITE", "solid": "SINGLE_SOLID_WHITE", "road_edge": "NIL"}
DIVIDER_KIND_TYPES = {"lane_dashed": "DOUBLE_DASHED_WHITE", "lane_solid": "SINGLE_SOLID_WHITE"}
STOP_LINE_HALF_WIDTH = 0.25
CROSSING_CUE_DISTANCE = 8.0


class _Geometry:
    """Accumulates the node / line / polygon tables with deterministic tokens."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.tables: dict[str, list[dict[str, Any]]] = {"node": [], "line": [], "polygon": []}

    def _token(self, kind: str) -> str:
        return stable_token(self.location, kind, len(self.tables[kind]))

    def nodes(self, coords: np.ndarray) -> list[str]:
        tokens = []
        for x, y in np.asarray(coords, dtype=float)[:, :2]:
            tokens.append(self._token("node"))
            self.tables["node"].append({"token": tokens[-1], "x": float(x), "y": float(y)})
        return tokens

    def line(self, coords: np.ndarray) -> str:
        token = self._token("line")
        self.tables["line"].append({"token": token, "node_tokens": self.nodes(coords)})
        return token

    def polygon(self, coords: np.ndarray) -> str:
        coords = np.asarray(coords, dtype=float)[:, :2]
        if len(coords) > 3 and np.allclose(coords[0], coords[-1]):
            coords = coords[:-1]
        token = self._token("polygon")
        self.tables["polygon"].append({"token": token, "exterior_node_tokens": self.nodes(coords), "holes": []})
        return token


def _edges_of(polygon: np.ndarray, geometry: _Geometry) -> tuple[str, str]:
    """Lines along the two short sides of a polygon's minimum rotated rectangle."""
    rect = np.asarray(Polygon(polygon[:, :2]).minimum_rotated_rectangle.exterior.coords)[:4]
    sides = [(rect[i], rect[(i + 1) % 4]) for i in range(4)]
    lengths = [np.linalg.norm(b - a) for a, b in sides]
    first = int(np.argmin(lengths))
    return (geometry.line(np.array(sides[first])), geometry.line(np.array(sides[(first + 2) % 4])))


def _arcline(centerline: np.ndarray) -> list[dict[str, Any]]:
    """Straight arcline pieces (shape ``LSL`` with zero-length arcs) between vertices."""
    pieces = []
    for (x0, y0), (x1, y1) in zip(centerline[:-1, :2], centerline[1:, :2]):
        length = float(np.hypot(x1 - x0, y1 - y0))
        if length == 0.0:
            continue
        yaw = float(np.arctan2(y1 - y0, x1 - x0))
        pieces.append({"start_pose": [float(x0), float(y0), yaw], "end_pose": [float(x1), float(y1), yaw],
                       "shape": "LSL", "radius": 999.0, "segment_length": [0.0, length, 0.0]})
    return pieces


def _all_xy(road_map: RoadMap) -> np.ndarray:
    arrays = [lane.left_boundary for lane in road_map.lanes] + [lane.right_boundary for lane in road_map.lanes]
    arrays += [poly for poly, _ in road_map.road_segments] + list(road_map.ped_crossings)
    arrays += list(road_map.walkways) + [line for line, _ in road_map.dividers] + list(road_map.boundaries)
    arrays += list(road_map.stop_lines)
    return np.concatenate([np.asarray(a, dtype=float)[:, :2] for a in arrays] + [np.zeros((0, 2))])


def _canvas(road_map: RoadMap) -> list[float]:
    """``[x_max, y_max]`` of the map: its bounds or its geometry, whichever is larger."""
    xy = np.concatenate([_all_xy(road_map), [[road_map.bounds[2], road_map.bounds[3]], [1.0, 1.0]]])
    return [float(xy[:, 0].max()), float(xy[:, 1].max())]


def build_map_expansion(road_map: RoadMap) -> dict[str, Any]:
    """The map expansion JSON object of ``road_map`` (all layers the devkit loads)."""
    geo = _Geometry(road_map.location)
    layers: dict[str, Any] = {name: [] for name in (
        "drivable_area", "road_segment", "road_block", "lane", "ped_crossing", "walkway", "stop_line",
        "carpark_area", "road_divider", "lane_divider", "traffic_light", "lane_connector")}
    drivable_token = stable_token(road_map.location, "drivable_area", 0)
    segment_shapes = []
    for i, (polygon, is_intersection) in enumerate(road_map.road_segments):
        token = stable_token(road_map.location, "road_segment", i)
        poly_token = geo.polygon(polygon)
        segment_shapes.append((token, Polygon(np.asarray(polygon)[:, :2])))
        layers["road_segment"].append({"token": token, "polygon_token": poly_token,
                                       "is_intersection": bool(is_intersection),
                                       "drivable_area_token": drivable_token})
        if not is_intersection:
            from_edge, to_edge = _edges_of(np.asarray(polygon), geo)
            layers["road_block"].append({"token": stable_token(road_map.location, "road_block", i),
                                         "polygon_token": poly_token, "from_edge_line_token": from_edge,
                                         "to_edge_line_token": to_edge, "road_segment_token": token})
    if layers["road_segment"]:
        layers["drivable_area"].append({"token": drivable_token, "polygon_tokens": [
            record["polygon_token"] for record in layers["road_segment"]]})

    def segment_of(coords: np.ndarray) -> str:
        middle = Point(np.asarray(coords)[len(coords) // 2, :2])
        return next((token for token, shape in segment_shapes if shape.buffer(1e-6).contains(middle)), "")

    lane_tokens = {lane.lane_id: stable_token(road_map.location, "lane", lane.lane_id) for lane in road_map.lanes}
    incoming: dict[str, list[str]] = {token: [] for token in lane_tokens.values()}
    for lane in road_map.lanes:
        for successor in lane.successors:
            if successor not in lane_tokens:
                raise ValueError(f"map {road_map.location}: lane {lane.lane_id} has unknown successor {successor}")
            incoming[lane_tokens[successor]].append(lane_tokens[lane.lane_id])
    arclines, connectivity = {}, {}
    for lane in road_map.lanes:
        token = lane_tokens[lane.lane_id]
        left, right = np.asarray(lane.left_boundary)[:, :2], np.asarray(lane.right_boundary)[:, :2]
        poly_token = geo.polygon(np.concatenate([left, right[::-1]]))
        record = {"token": token, "polygon_token": poly_token, "lane_type": "CAR",
                  "from_edge_line_token": geo.line(np.stack([left[0], right[0]])),
                  "to_edge_line_token": geo.line(np.stack([left[-1], right[-1]])),
                  "left_lane_divider_segments": [
                      {"node_token": n, "segment_type": LANE_DIVIDER_TYPES.get(lane.left_type, "NIL")}
                      for n in geo.nodes(left)],
                  "right_lane_divider_segments": [
                      {"node_token": n, "segment_type": LANE_DIVIDER_TYPES.get(lane.right_type, "NIL")}
                      for n in geo.nodes(right)]}
        if lane.is_intersection:
            polygon = geo.tables["polygon"][-1]
            record.update(exterior_node_tokens=polygon["exterior_node_tokens"], holes=[])
            layers["lane_connector"].append(record)
        else:
            layers["lane"].append(record)
        arclines[token] = _arcline(np.asarray(lane.centerline, dtype=float))
        connectivity[token] = {"incoming": incoming[token],
                               "outgoing": [lane_tokens[s] for s in lane.successors]}
    for i, (coords, kind) in enumerate(road_map.dividers):
        line_token = geo.line(coords)
        token = stable_token(road_map.location, "divider", i)
        if kind == "road_divider":
            layers["road_divider"].append({"token": token, "line_token": line_token,
                                           "road_segment_token": segment_of(coords)})
        elif kind in DIVIDER_KIND_TYPES:
            nodes = geo.tables["line"][-1]["node_tokens"]
            layers["lane_divider"].append({"token": token, "line_token": line_token, "lane_divider_segments": [
                {"node_token": n, "segment_type": DIVIDER_KIND_TYPES[kind]} for n in nodes]})
        else:
            raise ValueError(f"map {road_map.location}: divider {i} has unknown kind {kind!r}")
    crossing_shapes = []
    for i, polygon in enumerate(road_map.ped_crossings):
        token = stable_token(road_map.location, "ped_crossing", i)
        crossing_shapes.append((token, Polygon(np.asarray(polygon)[:, :2])))
        layers["ped_crossing"].append({"token": token, "polygon_token": geo.polygon(polygon),
                                       "road_segment_token": segment_of(polygon)})
    for i, polygon in enumerate(road_map.walkways):
        layers["walkway"].append({"token": stable_token(road_map.location, "walkway", i),
                                  "polygon_token": geo.polygon(polygon)})
    for i, coords in enumerate(road_map.stop_lines):
        line = LineString(np.asarray(coords)[:, :2])
        shape = line.buffer(STOP_LINE_HALF_WIDTH, cap_style="flat")
        cues = [t for t, crossing in crossing_shapes if crossing.distance(line) <= CROSSING_CUE_DISTANCE]
        layers["stop_line"].append({
            "token": stable_token(road_map.location, "stop_line", i),
            "polygon_token": geo.polygon(np.asarray(shape.exterior.coords)),
            "stop_line_type": "PED_CROSSING" if cues else "STOP_SIGN", "ped_crossing_tokens": cues,
            "traffic_light_tokens": [], "road_block_token": ""})
    return {"version": MAP_VERSION, "canvas_edge": _canvas(road_map), **geo.tables, **layers,
            "arcline_path_3": arclines, "connectivity": connectivity}


def write_map_expansion(root: Path, road_map: RoadMap) -> Path:
    """Write ``<root>/maps/expansion/<location>.json``; returns its path."""
    path = Path(root) / "maps" / "expansion" / f"{road_map.location}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(build_map_expansion(road_map)))
    return path


def write_semantic_prior(root: Path, road_map: RoadMap) -> str:
    """Write the drivable-area mask PNG that the ``map`` table names; returns its relative path.

    Laid out as the devkit's ``MapMask`` reads it: 0.1 m per pixel, row 0 at the top (largest y),
    origin at world (0, 0): parts of the map at negative coordinates are not drawn.
    """
    canvas = _canvas(road_map)
    width, height = (max(1, int(np.ceil(v / PRIOR_RESOLUTION))) for v in canvas)
    image = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(image)
    for polygon, _ in road_map.road_segments:
        xy = np.asarray(polygon, dtype=float)[:, :2] / PRIOR_RESOLUTION
        draw.polygon([(float(x), float(height - y)) for x, y in xy], fill=255)
    relative = f"maps/{stable_token('map', road_map.location)}.png"
    (Path(root) / "maps").mkdir(parents=True, exist_ok=True)
    image.save(Path(root) / relative, format="PNG")
    return relative
