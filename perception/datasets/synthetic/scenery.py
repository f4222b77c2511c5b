"""Static scenery of a location: buildings, street trees and poles (map furniture, no
detection class).  It depends only on the location (seeded from its name); the kerbside
objects of a scene (parked vehicles, road works) are in :mod:`.kerbside`.
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


def random_intervals(rng: np.random.Generator, length: float, gap: tuple[float, float], size: tuple[float, float]
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
    """Buildings in rows behind the sidewalks, street trees in the verge between sidewalk and
    buildings (mostly in the gaps of the rows) and street-light poles along the kerbs."""
    rng = np.random.default_rng(zlib.crc32(location.encode()))
    spec = town.spec
    keep_out = town.drivable.buffer(spec.sidewalk_width + 0.3)
    placed: list[Polygon] = []
    objects: list[ObjectState] = []
    for road in town.roads.values():
        ref, cum = road.reference, pl.cumulative_length(road.reference)
        for sign in (1.0, -1.0):
            for start, length in random_intervals(rng, cum[-1], (2.0, 7.0), (10.0, 24.0)):
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
    return objects + _trees(town, location, rng, keep_out, placed)


def _trees(town: "Town", location: str, rng: np.random.Generator, keep_out: Polygon,
           buildings: list[Polygon]) -> list[ObjectState]:
    """Columnar street trees every 7-11 m just behind the sidewalks, clear of the buildings."""
    tree = STRtree(buildings)
    lateral = town.spec.sidewalk_width + 1.0
    trees: list[Polygon] = []
    objects: list[ObjectState] = []
    for road in town.roads.values():
        ref, cum = road.reference, pl.cumulative_length(road.reference)
        for sign in (1.0, -1.0):
            stations = np.cumsum(rng.uniform(7.0, 11.0, int(cum[-1] / 7.0) + 1))
            points, headings = pl.sample_at(ref, cum, stations[stations < cum[-1]])
            normals = np.stack([-np.sin(headings), np.cos(headings)], axis=1)
            for xy, heading in zip(points + sign * (road.half_width + lateral) * normals, headings):
                size = jittered_size("tree", rng)
                shape = footprint(xy, size, heading)
                near = [buildings[i] for i in tree.query(shape.buffer(0.3))]
                if shape.intersects(keep_out) or any(shape.distance(p) < 0.3 for p in near + trees[-4:]):
                    continue
                trees.append(shape)
                objects.append(static_object("tree", (location, "tree", len(objects)), xy, size, heading))
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
