"""Rasterize nuScenes map-expansion layers into a BEV segmentation grid (BEVFusion's classes).

The six classes and the map layers each is made of (BEVFusion's ``LoadBEVSegmentation``):

* ``drivable_area``: union of ``road_segment`` and ``lane`` polygons;
* ``ped_crossing``, ``walkway``, ``stop_line``, ``carpark_area``: the layer's polygons;
* ``divider``: ``road_divider`` and ``lane_divider`` lines drawn ``line_width`` metres wide.

A cell is set when its *centre* lies inside the (buffered) geometry, so a known polygon lands
in exactly predictable cells.  Geometries are mapped into the grid's pixel frame by one 2-D
affine map (world -> augmented LiDAR frame -> pixels), which carries rotations, scalings,
translations and mirrors alike.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from shapely import STRtree
from shapely.affinity import affine_transform
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

from ..structures.bev_seg_classes import BEV_SEG_CLASSES  # noqa: F401  (re-exported: its old home)
from ..structures.geometry import BEVGrid, yaw_of_rotation


DEFAULT_CLASS_LAYERS: Mapping[str, tuple[str, ...]] = {
    "drivable_area": ("road_segment", "lane"),
    "ped_crossing": ("ped_crossing",),
    "walkway": ("walkway",),
    "stop_line": ("stop_line",),
    "carpark_area": ("carpark_area",),
    "divider": ("road_divider", "lane_divider"),
}
"""Map-expansion layers that make each class (a class missing here is read from its own layer)."""


class BEVSegAugmentationError(ValueError):
    """The recorded 3-D augmentation cannot be applied to a BEV raster (e.g. it tilts z)."""


def class_layers(classes: Sequence[str],
                 overrides: Mapping[str, Sequence[str]] | None = None) -> dict[str, tuple[str, ...]]:
    """Layers of each class: ``overrides`` first, then :data:`DEFAULT_CLASS_LAYERS`, else itself."""
    overrides = dict(overrides or {})
    return {name: tuple(overrides.get(name, DEFAULT_CLASS_LAYERS.get(name, (name,)))) for name in classes}


def record_geometries(nusc_map: object, layer: str, line_width: float) -> list[BaseGeometry]:
    """Shapely geometries of every record of ``layer`` (lines buffered to ``line_width`` metres)."""
    records = getattr(nusc_map, layer, None)
    if records is None:
        raise KeyError(f"map has no layer {layer!r}")
    geometries: list[BaseGeometry] = []
    for record in records:
        if "line_token" in record:
            line = nusc_map.extract_line(record["line_token"])
            if len(line.coords) >= 2:
                geometries.append(line.buffer(line_width / 2.0, cap_style="flat"))
            continue
        tokens = record.get("polygon_tokens") or [record["polygon_token"]]
        for token in tokens:
            polygon = nusc_map.extract_polygon(token)
            if not polygon.is_valid:
                polygon = polygon.buffer(0)
            if not polygon.is_empty:
                geometries.append(polygon)
    return geometries


@dataclass
class ClassIndex:
    """The geometries of one class in world coordinates with a spatial index."""

    geometries: list[BaseGeometry]
    tree: STRtree

    @classmethod
    def of(cls, geometries: list[BaseGeometry]) -> "ClassIndex":
        return cls(geometries, STRtree(geometries))

    def query(self, region: BaseGeometry) -> list[BaseGeometry]:
        return [self.geometries[int(i)] for i in self.tree.query(region, predicate="intersects")]


def build_class_indices(nusc_map: object, layers: Mapping[str, Sequence[str]],
                        line_width: float) -> dict[str, ClassIndex]:
    """One :class:`ClassIndex` per class from the map's layers (absent layers count as empty)."""
    indices = {}
    for name, names in layers.items():
        geometries: list[BaseGeometry] = []
        for layer in names:
            if getattr(nusc_map, layer, None) is not None:
                geometries.extend(record_geometries(nusc_map, layer, line_width))
        indices[name] = ClassIndex.of(geometries)
    return indices


def planar_pose(lidar2global: np.ndarray) -> np.ndarray:
    """3x3 2-D pose (yaw and x, y translation) of a 4x4 LiDAR pose; roll and pitch are dropped,
    as the map is a ground plane (BEVFusion does the same)."""
    lidar2global = np.asarray(lidar2global, dtype=np.float64)
    yaw = yaw_of_rotation(lidar2global[:3, :3])
    pose = np.eye(3)
    pose[:2, :2] = [[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]]
    pose[:2, 2] = lidar2global[:2, 3]
    return pose


def planar_augmentation(lidar_aug_matrix: np.ndarray | None) -> np.ndarray:
    """3x3 2-D part of a 4x4 augmentation; raises if it mixes z into x, y or vice versa."""
    if lidar_aug_matrix is None:
        return np.eye(3)
    matrix = np.asarray(lidar_aug_matrix, dtype=np.float64)
    if matrix.shape != (4, 4) or not np.isfinite(matrix).all():
        raise BEVSegAugmentationError(f"lidar_aug_matrix must be a finite 4x4 matrix, got shape {matrix.shape}")
    if np.abs(matrix[:2, 2]).max() > 1e-6 or np.abs(matrix[2, :2]).max() > 1e-6:
        raise BEVSegAugmentationError(
            "the recorded 3-D augmentation rotates out of the ground plane; a BEV map raster "
            f"cannot follow it (lidar_aug_matrix=\n{matrix})")
    linear = matrix[:2, :2]
    singular = np.linalg.svd(linear, compute_uv=False)
    if singular.min() <= 0 or singular.max() / singular.min() > 1.0 + 1e-6:
        raise BEVSegAugmentationError(
            f"the recorded augmentation is not a rotation/scale/mirror in BEV (singular values {singular})")
    planar = np.eye(3)
    planar[:2, :2] = linear
    planar[:2, 2] = matrix[:2, 3]
    return planar


def world_to_pixel(lidar2global: np.ndarray, grid: BEVGrid,
                   lidar_aug_matrix: np.ndarray | None = None) -> np.ndarray:
    """3x3 affine map from world ``(x, y)`` to continuous grid pixels ``(col, row)``.

    Cell ``(i, j)`` spans ``[j, j + 1) x [i, i + 1)`` in pixel coordinates, so its centre is
    ``(j + 0.5, i + 0.5)``.
    """
    lidar2pixel = np.array([[1.0 / grid.resolution, 0.0, -grid.x_range[0] / grid.resolution],
                            [0.0, 1.0 / grid.resolution, -grid.y_range[0] / grid.resolution],
                            [0.0, 0.0, 1.0]])
    world2lidar = np.linalg.inv(planar_pose(lidar2global))
    return lidar2pixel @ planar_augmentation(lidar_aug_matrix) @ world2lidar


def grid_footprint(world2pixel: np.ndarray, grid: BEVGrid) -> Polygon:
    """The grid's rectangle in world coordinates (to query the map indices)."""
    height, width = grid.shape
    corners = np.array([[0, 0, 1], [width, 0, 1], [width, height, 1], [0, height, 1]], dtype=np.float64)
    world = corners @ np.linalg.inv(world2pixel).T
    return Polygon(world[:, :2])


def rasterize(geometries: Sequence[BaseGeometry], world2pixel: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` bool mask of the cells whose centre lies in the union of ``geometries``."""
    height, width = shape
    mask = np.zeros((height, width), dtype=bool)
    if not geometries:
        return mask
    a, b, xoff = world2pixel[0]
    d, e, yoff = world2pixel[1]
    union = affine_transform(unary_union(list(geometries)), [a, b, d, e, xoff, yoff])
    if union.is_empty:
        return mask
    min_x, min_y, max_x, max_y = union.bounds
    cols = np.arange(max(0, int(np.floor(min_x - 0.5))), min(width, int(np.ceil(max_x + 0.5))))
    rows = np.arange(max(0, int(np.floor(min_y - 0.5))), min(height, int(np.ceil(max_y + 0.5))))
    if cols.size == 0 or rows.size == 0:
        return mask
    centre_x, centre_y = np.meshgrid(cols + 0.5, rows + 0.5)
    shapely.prepare(union)
    inside = shapely.contains_xy(union, centre_x.ravel(), centre_y.ravel()).reshape(centre_x.shape)
    mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] = inside
    return mask


def rasterize_classes(indices: Mapping[str, ClassIndex], classes: Sequence[str], world2pixel: np.ndarray,
                      grid: BEVGrid) -> np.ndarray:
    """``(C, H, W)`` bool masks of ``classes`` for one frame (see :func:`world_to_pixel`)."""
    footprint = grid_footprint(world2pixel, grid)
    masks = np.zeros((len(classes), *grid.shape), dtype=bool)
    for channel, name in enumerate(classes):
        masks[channel] = rasterize(indices[name].query(footprint), world2pixel, grid.shape)
    return masks
