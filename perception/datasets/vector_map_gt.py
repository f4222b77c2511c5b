"""Vectorized map ground truth (MapTR protocol) from a frame's world-frame map elements.

The loaders (:mod:`.nuscenes.map_elements` through ``NuScenesMap``, :mod:`.av2.map_elements`
through ``ArgoverseStaticMap``, and the synthetic world through either writer or
:func:`.vector_map_sources.road_map_elements`) put :class:`MapElement` objects in the world
frame into ``Frame.map_elements``.  :func:`build_map_instances` turns them into
:class:`MapInstances` in the (augmented) LiDAR frame:

* every element is moved to the local frame with one 4x4 ``world2local`` matrix (its 2D
  projection is kept);
* ``divider``: ``divider`` polylines, joined where they meet end to end (AV2 paints one
  marking per lane segment) when ``merge_dividers``, clipped to the patch;
* ``ped_crossing``: ``ped_crossing`` polygons, overlapping ones running within
  ``crossing_merge_angle_deg`` of each other unioned (MapTR's rule: a crossing drawn in
  pieces becomes one, the four crossings around a junction stay four), intersected with the
  patch, exteriors as **closed** instances (first vertex not repeated);
* ``boundary``: the outline (exteriors and holes) of the union of ``drivable_area``
  polygons (``boundary_source="drivable_area"``, AV2 and synthetic AV2), or the ready-made
  ``boundary`` polylines (``"lines"``, nuScenes: the loader already outlines the union of
  road segments and lanes); ``"auto"`` picks the first when the frame has drivable areas;
* clipping results with several parts become several instances; parts shorter than
  ``min_length`` metres (lines) or with a perimeter below it (polygons) are dropped;
* each instance is resampled to ``num_points`` points evenly spaced by arc length.

The patch must lie inside the region the loader extracted (``map_radius`` of the datasets,
50 m by default, covers MapTR's 30 m x 60 m patch in any rotation), or boundaries and
crossings would be cut by the loader's window instead of the patch.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely

from ..structures import MapElement, MapInstances
from .vector_map_geometry import (
    clip_lines,
    clip_polygons,
    make_lines,
    make_polygons,
    merge_lines,
    oriented_rings,
    parts_of_type,
    patch_box,
    resample_lines,
)

MAP_CLASSES: tuple[str, ...] = ("divider", "ped_crossing", "boundary")
"""Vector-map classes and their label order (the interface shared with heads and metrics)."""
BOUNDARY_SOURCES: tuple[str, ...] = ("auto", "lines", "drivable_area")


class VectorMapGTError(ValueError):
    """Bad configuration or input of the vector-map ground truth (the message names it)."""


@dataclass(frozen=True)
class VectorMapGTConfig:
    """How ground truth is built.  ``pc_range`` is ``(x_min, y_min, x_max, y_max)`` in metres of
    the local (LiDAR) frame: MapTR's ``(-15, -30, 15, 30)`` for nuScenes LiDAR (y forward),
    ``(-30, -15, 30, 15)`` for ego-aligned frames (AV2, synthetic AV2)."""

    pc_range: tuple[float, float, float, float] = (-15.0, -30.0, 15.0, 30.0)
    num_points: int = 20
    class_names: tuple[str, ...] = MAP_CLASSES
    boundary_source: str = "auto"
    merge_dividers: bool = True
    merge_crossings: bool = True
    crossing_merge_angle_deg: float = 10.0
    min_length: float = 0.1
    sources: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: {
        "divider": ("divider",), "ped_crossing": ("ped_crossing",), "boundary": ("boundary",),
        "drivable_area": ("drivable_area",)})
    """Element categories read for each role (e.g. add ``"road_divider"`` to ``divider``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "pc_range", tuple(float(v) for v in self.pc_range))
        object.__setattr__(self, "class_names", tuple(self.class_names))
        if len(self.pc_range) != 4 or not (self.pc_range[0] < self.pc_range[2] and self.pc_range[1] < self.pc_range[3]):
            raise VectorMapGTError(f"pc_range must be (x_min, y_min, x_max, y_max) with min < max, "
                                   f"got {self.pc_range}")
        if int(self.num_points) != self.num_points or self.num_points < 2:
            raise VectorMapGTError(f"num_points must be an integer >= 2, got {self.num_points}")
        unknown = [name for name in self.class_names if name not in CLASS_BUILDERS]
        if unknown or not self.class_names or len(set(self.class_names)) != len(self.class_names):
            raise VectorMapGTError(f"class_names must be distinct names among {tuple(CLASS_BUILDERS)}, "
                                   f"got {self.class_names}")
        if self.boundary_source not in BOUNDARY_SOURCES:
            raise VectorMapGTError(f"boundary_source must be one of {BOUNDARY_SOURCES}, got {self.boundary_source!r}")
        missing = {"divider", "ped_crossing", "boundary", "drivable_area"} - set(self.sources)
        if missing:
            raise VectorMapGTError(f"sources must name the categories of {sorted(missing)} too, "
                                   f"got {dict(self.sources)}")
        if self.min_length < 0:
            raise VectorMapGTError(f"min_length must be >= 0, got {self.min_length}")


@dataclass
class _LocalElements:
    """Elements of one frame in the local 2D frame, grouped by category."""

    polylines: dict[str, list[np.ndarray]]
    polygons: dict[str, list[np.ndarray]]

    def lines(self, categories: Sequence[str]) -> list[np.ndarray]:
        return [line for c in categories for line in self.polylines.get(c, [])]

    def rings(self, categories: Sequence[str]) -> list[np.ndarray]:
        return [ring for c in categories for ring in self.polygons.get(c, [])]


def to_local(elements: Sequence[MapElement], world2local: np.ndarray) -> _LocalElements:
    """All elements moved by ``world2local`` in one matrix product and split back per element."""
    world2local = np.asarray(world2local, dtype=np.float64)
    if world2local.shape != (4, 4) or not np.isfinite(world2local).all():
        raise VectorMapGTError(f"world2local must be a finite 4x4 matrix, got shape {world2local.shape}")
    polylines: dict[str, list[np.ndarray]] = {}
    polygons: dict[str, list[np.ndarray]] = {}
    if not elements:
        return _LocalElements(polylines, polygons)
    stacked = np.concatenate([e.points if e.points.shape[1] == 3 else np.pad(e.points, ((0, 0), (0, 1)))
                              for e in elements])
    local = stacked @ world2local[:3, :3].T + world2local[:3, 3]
    splits = np.cumsum([len(e.points) for e in elements])[:-1]
    for element, xy in zip(elements, np.split(local[:, :2], splits)):
        target = polygons if element.closed else polylines
        if len(xy) >= (3 if element.closed else 2):
            target.setdefault(element.category, []).append(xy)
    return _LocalElements(polylines, polygons)


def _long_enough(lines: np.ndarray, min_length: float) -> np.ndarray:
    return lines[shapely.length(lines) >= max(min_length, 1e-9)]


def _dividers(local: _LocalElements, config: VectorMapGTConfig) -> tuple[np.ndarray, bool]:
    lines = make_lines(local.lines(config.sources["divider"]))
    if config.merge_dividers:
        lines = merge_lines(lines)
    return clip_lines(lines, patch_box(config.pc_range), merge=False), False


def _crossings(local: _LocalElements, config: VectorMapGTConfig) -> tuple[np.ndarray, bool]:
    polygons = make_polygons(local.rings(config.sources["ped_crossing"]))
    clipped = clip_polygons(polygons, patch_box(config.pc_range),
                            config.crossing_merge_angle_deg if config.merge_crossings else None)
    return oriented_rings(clipped, holes=False), True


def _boundaries(local: _LocalElements, config: VectorMapGTConfig) -> tuple[np.ndarray, bool]:
    areas = local.rings(config.sources["drivable_area"])
    use_areas = config.boundary_source == "drivable_area" or (config.boundary_source == "auto" and bool(areas))
    patch = patch_box(config.pc_range)
    if use_areas:
        union = make_polygons(areas)
        union = np.array([shapely.union_all(union)], dtype=object) if len(union) else union
        rings = oriented_rings(parts_of_type(union, "Polygon"), holes=True)
        return clip_lines(rings, patch, merge=True), False
    return clip_lines(make_lines(local.lines(config.sources["boundary"])), patch, merge=True), False


CLASS_BUILDERS: dict[str, Callable[[_LocalElements, VectorMapGTConfig], tuple[np.ndarray, bool]]] = {
    "divider": _dividers, "ped_crossing": _crossings, "boundary": _boundaries}
"""Class name -> function returning its clipped LineStrings (rings for polygons) and ``closed``."""


def build_map_instances(elements: Sequence[MapElement], world2local: np.ndarray,
                        config: VectorMapGTConfig | None = None) -> MapInstances:
    """Ground-truth :class:`MapInstances` of ``elements`` (world frame) in the frame of ``world2local``.

    ``world2local`` is ``inv(lidar2global)``, composed on the left with the LiDAR
    augmentation (``lidar_aug_matrix``) when the points were augmented.
    """
    config = config or VectorMapGTConfig()
    local = to_local(elements, world2local)
    points, labels, closed = [], [], []
    for label, name in enumerate(config.class_names):
        lines, is_closed = CLASS_BUILDERS[name](local, config)
        lines = _long_enough(lines, config.min_length)
        points.append(resample_lines(lines, config.num_points, closed=is_closed))
        labels.append(np.full(len(lines), label, dtype=np.int64))
        closed.append(np.full(len(lines), is_closed, dtype=bool))
    return MapInstances(np.concatenate(points).astype(np.float32), np.concatenate(labels), config.class_names,
                        np.concatenate(closed))
