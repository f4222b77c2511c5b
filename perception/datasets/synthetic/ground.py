"""A raster of the ground's surface classes (grass, asphalt, sidewalk, paint) for the sensors.

The LiDAR reads intensity and the cameras read colour from this raster where a ray meets
the ground plane; it is drawn once per scene from the :class:`~.types.RoadMap` with PIL.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from . import polyline as pl
from .types import RoadMap

GRASS, ASPHALT, SIDEWALK, WHITE_PAINT, YELLOW_PAINT = range(5)
SURFACES = ("grass", "asphalt", "sidewalk", "white_paint", "yellow_paint")
DASH_ON, DASH_OFF = 3.0, 6.0
LINE_WIDTH = 0.15


@dataclass
class GroundRaster:
    """Surface class per ``resolution``-metre cell; row ``i`` along +y, column ``j`` along +x."""

    classes: np.ndarray
    x_min: float
    y_min: float
    resolution: float

    def lookup(self, xy: np.ndarray) -> np.ndarray:
        """Surface class at world points ``(..., 2)`` (grass outside the raster)."""
        cols = np.floor((xy[..., 0] - self.x_min) / self.resolution).astype(np.int64)
        rows = np.floor((xy[..., 1] - self.y_min) / self.resolution).astype(np.int64)
        height, width = self.classes.shape
        inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        out = np.full(xy.shape[:-1], GRASS, dtype=np.uint8)
        out[inside] = self.classes[rows[inside], cols[inside]]
        return out

    def cells(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Integer ``(rows, cols)`` of world points (unclipped; for texture lookups)."""
        return (np.floor((xy[..., 1] - self.y_min) / self.resolution).astype(np.int64),
                np.floor((xy[..., 0] - self.x_min) / self.resolution).astype(np.int64))


def _dashes(line: np.ndarray) -> list[np.ndarray]:
    """Pieces of ``line`` painted as a dashed lane line."""
    dense = pl.resample(line, 0.5)
    cum = pl.cumulative_length(dense)
    painted = (cum % (DASH_ON + DASH_OFF)) < DASH_ON
    edges = np.flatnonzero(np.diff(np.concatenate([[0], painted.astype(int), [0]])))
    return [dense[a:b] for a, b in zip(edges[::2], edges[1::2]) if b - a >= 2]


def _zebra(polygon: np.ndarray) -> list[np.ndarray]:
    """0.5 m stripes along the traffic direction across a crossing rectangle."""
    p0, p1, _, p3 = polygon[:4]
    along, across = p1 - p0, p3 - p0
    width = np.linalg.norm(across)
    unit = across / width
    return [np.array([p0 + o * unit, p1 + o * unit, p1 + (o + 0.5) * unit, p0 + (o + 0.5) * unit])
            for o in np.arange(0.25, width - 0.5, 1.0)] if np.linalg.norm(along) > 0 else []


def rasterize(road_map: RoadMap, resolution: float = 0.1) -> GroundRaster:
    """Draw the road map's surfaces and markings into a :class:`GroundRaster`."""
    x_min, y_min, x_max, y_max = road_map.bounds
    width = int(np.ceil((x_max - x_min) / resolution))
    height = int(np.ceil((y_max - y_min) / resolution))
    if width <= 0 or height <= 0:
        raise ValueError(f"road map {road_map.location}: empty bounds {road_map.bounds}")
    image = Image.new("L", (width, height), GRASS)
    draw = ImageDraw.Draw(image)

    def px(points: np.ndarray) -> list[tuple[float, float]]:
        return [((x - x_min) / resolution, (y - y_min) / resolution) for x, y in points]

    line_px = max(int(round(LINE_WIDTH / resolution)), 1)
    for polygon in road_map.walkways:
        draw.polygon(px(polygon), fill=SIDEWALK)
    for polygon, _ in road_map.road_segments:
        draw.polygon(px(polygon), fill=ASPHALT)
    for line, kind in road_map.dividers:
        if kind == "lane_dashed":
            for dash in _dashes(line):
                draw.line(px(dash), fill=WHITE_PAINT, width=line_px)
        elif kind == "road_divider":
            for side in (-0.15, 0.15):
                draw.line(px(pl.offset(line, side)), fill=YELLOW_PAINT, width=line_px)
        else:
            draw.line(px(line), fill=WHITE_PAINT, width=line_px)
    for polygon in road_map.ped_crossings:
        for stripe in _zebra(polygon):
            draw.polygon(px(stripe), fill=WHITE_PAINT)
    for line in road_map.stop_lines:
        draw.line(px(line), fill=WHITE_PAINT, width=max(int(round(0.4 / resolution)), 1))
    return GroundRaster(np.asarray(image, dtype=np.uint8), float(x_min), float(y_min), resolution)
