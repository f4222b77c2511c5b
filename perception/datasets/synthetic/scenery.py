"""Static objects: buildings and poles of a location, parked vehicles and road works of a scene.

Buildings and poles depend only on the location (seeded from its name); parked vehicles,
cones and barriers are drawn per scene from the scene's generator.
"""
from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

import numpy as np
from shapely.geometry import Polygon
from shapely.strtree import STRtree

from . import polyline as pl
from .catalog import KINDS, jittered_size, track_id
from .types import ObjectState

if TYPE_CHECKING:
    from .world import Town


def footprint(center: np.ndarray, size: np.ndarray, yaw: float) -> Polygon:
    """The ground rectangle of a box."""
    c, s = np.cos(yaw), np.sin(yaw)
    half = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]]) * np.asarray(size[:2]) / 2
    return Polygon(half @ np.array([[c, s], [-s, c]]) + np.asarray(center[:2]))


def static_object(kind: str, key: tuple, xy: np.ndarray, size: np.ndarray, yaw: float,
                  attribute: str = "") -> ObjectState:
    """A motionless object standing on the ground."""
    center = np.array([xy[0], xy[1], size[2] / 2])
    return ObjectState(track_id(*key), KINDS[kind].category, center, np.asarray(size, float), float(yaw),
                       np.zeros(2), attribute)


def _stations(rng: np.random.Generator, length: float, gap: tuple[float, float], size: tuple[float, float]
              ) -> list[tuple[float, float]]:
    """Random ``(start, length)`` intervals along a line separated by random gaps."""
    out, s = [], rng.uniform(0.0, gap[1])
    while True:
        extent = rng.uniform(*size)
        if s + extent > length:
            return out
        out.append((s, extent))
        s += extent + rng.uniform(*gap)


def place_statics(town: "Town", location: str) -> list[ObjectState]:
    """Buildings in rows behind the sidewalks and street-light poles along the kerbs."""
    rng = np.random.default_rng(zlib.crc32(location.encode()))
    spec = town.spec
    keep_out = town.drivable.buffer(spec.sidewalk_width + 0.3)
    placed: list[Polygon] = []
    objects: list[ObjectState] = []
    for road in town.roads.values():
        ref, cum = road.reference, pl.cumulative_length(road.reference)
        for sign in (1.0, -1.0):
            for start, length in _stations(rng, cum[-1], (2.0, 7.0), (10.0, 24.0)):
                depth, height = rng.uniform(8.0, 16.0), rng.uniform(6.0, 22.0)
                setback = road.half_width + spec.sidewalk_width + rng.uniform(0.8, 3.0) + depth / 2
                point, heading = pl.sample_at(ref, cum, np.array([start + length / 2]))
                normal = np.array([-np.sin(heading[0]), np.cos(heading[0])])
                xy = point[0] + sign * setback * normal
                size = np.array([length, depth, height])
                shape = footprint(xy, size, heading[0])
                if shape.intersects(keep_out) or any(shape.distance(p) < 1.0 for p in placed):
                    continue
                placed.append(shape)
                objects.append(static_object("building", (location, "building", len(objects)), xy, size,
                                             heading[0]))
            stations = np.arange(rng.uniform(5.0, 15.0), cum[-1], 28.0)
            points, headings = pl.sample_at(ref, cum, stations)
            normals = np.stack([-np.sin(headings), np.cos(headings)], axis=1)
            for xy, heading in zip(points + sign * (road.half_width + 0.5) * normals, headings):
                objects.append(static_object("pole", (location, "pole", len(objects)), xy,
                                             np.asarray(KINDS["pole"].size), heading))
    return objects


def place_parked(town: "Town", rng: np.random.Generator, scene_key: tuple) -> list[ObjectState]:
    """Parked cars, a trailer and a construction vehicle in the parking strips, with road
    works (cones before, barriers after) around the construction vehicle."""
    slots = []
    for index, line in enumerate(town.parking_lines):
        cum = pl.cumulative_length(line)
        for start, length in _stations(rng, cum[-1], (1.0, 12.0), (5.5, 5.5)):
            point, heading = pl.sample_at(line, cum, np.array([start + length / 2]))
            if np.linalg.norm(point[0]) > town.junction_half + 14.0:
                slots.append((index, start + length / 2, point[0], heading[0]))
    straight = [k for k, slot in enumerate(slots) if pl.min_radius(town.parking_lines[slot[0]]) > 1e3]
    order = rng.permutation(straight)  # long vehicles only where the strip is straight
    special = {int(order[0]): "construction", int(order[1]): "trailer"} if len(order) > 2 else {}
    objects: list[ObjectState] = []
    occupied: list[Polygon] = []
    for k, (index, station, xy, heading) in enumerate(slots):
        kind = special.get(k, "car" if rng.uniform() < 0.55 else None)
        if kind is None:
            continue
        size = jittered_size(kind, rng)
        line = town.parking_lines[index]
        cum = pl.cumulative_length(line)
        xy, heading = (a[0] for a in pl.sample_at(line, cum, np.array([station])))
        shape = footprint(xy, size, heading)
        if any(shape.distance(p) < 0.8 for p in occupied):
            continue
        occupied.append(shape)
        objects.append(static_object(kind, (*scene_key, "parked", k), xy, size, heading, "vehicle.parked"))
        if kind != "construction":
            continue
        # road works: three cones before the vehicle, barriers behind it
        for j, offset in enumerate((-(size[0] / 2 + 1.5), -(size[0] / 2 + 3.0), -(size[0] / 2 + 4.5))):
            p, h = pl.sample_at(line, cum, np.array([station + offset]))
            objects.append(static_object("cone", (*scene_key, "cone", k, j), p[0], jittered_size("cone", rng), h[0]))
        for j in range(3):
            p, h = pl.sample_at(line, cum, np.array([station + size[0] / 2 + 2.5 + j * 2.6]))
            objects.append(static_object("barrier", (*scene_key, "barrier", k, j), p[0],
                                         jittered_size("barrier", rng), h[0] + np.pi / 2))
        occupied.append(footprint(xy, size + np.array([22.0, 0.0, 0.0]), heading))
    return objects


def overlapping(objects: list[ObjectState]) -> list[tuple[int, int]]:
    """Index pairs of objects whose footprints overlap (a check used by the tests)."""
    shapes = [footprint(o.center, o.size, o.yaw) for o in objects]
    tree = STRtree(shapes)
    pairs = []
    for i, shape in enumerate(shapes):
        for j in tree.query(shape):
            if j > i and shapes[i].intersection(shapes[j]).area > 1e-6:
                pairs.append((i, int(j)))
    return pairs
