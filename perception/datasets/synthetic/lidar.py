"""A spinning 32-beam LiDAR (HDL-32E-like, as nuScenes' LIDAR_TOP) cast against the ground
plane and the objects' boxes.

A sweep is one full turn sampled at ``azimuth_steps`` directions for every beam; rays
return the nearest of the ground (``z = 0`` world) and the boxes, with intensity from the
ground raster's surface (paint bright, asphalt dark) or the object's class, gaussian range
noise and random dropout.  The ego is assumed still during a sweep (no motion
distortion): all rays of a sweep start from the pose at its timestamp.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ground import GroundRaster
from .raycast import BoxSet, Window, cast

SURFACE_INTENSITY = np.array([6.0, 10.0, 24.0, 95.0, 70.0], dtype=np.float32)
"""Mean intensity of grass, asphalt, sidewalk, white and yellow paint (0-255)."""
OBJECT_INTENSITY = {"vehicle": 35.0, "human": 18.0, "movable_object.trafficcone": 160.0,
                    "movable_object.barrier": 80.0, "static.building": 45.0, "static.pole": 60.0,
                    "static.vegetation": 22.0}
FRONT_GAIN = {"vehicle": 3.0, "human": 1.8}
"""Intensity gain on the front face of vehicles (headlights, grille, licence plate) and of
people (faces, clothing fronts): the world's boxes are symmetric, so without it a parked
car's heading would be ambiguous by pi in the LiDAR data."""


@dataclass(frozen=True)
class LidarSpec:
    """Beam layout, range and noise of the LiDAR."""

    num_beams: int = 32
    elevation_min_deg: float = -30.67
    elevation_max_deg: float = 10.67
    azimuth_steps: int = 1084
    max_range: float = 100.0
    min_range: float = 1.0
    range_noise: float = 0.02
    dropout: float = 0.03

    def elevations(self) -> np.ndarray:
        """``(num_beams,)`` beam elevations in radians, lowest first (ring 0)."""
        return np.radians(np.linspace(self.elevation_min_deg, self.elevation_max_deg, self.num_beams))

    def azimuths(self) -> np.ndarray:
        """``(azimuth_steps,)`` ray azimuths in the LiDAR frame, ``[-pi, pi)``."""
        step = 2 * np.pi / self.azimuth_steps
        return -np.pi + (np.arange(self.azimuth_steps) + 0.5) * step

    def directions(self) -> np.ndarray:
        """``(num_beams, azimuth_steps, 3)`` unit ray directions in the LiDAR frame."""
        el, az = np.meshgrid(self.elevations(), self.azimuths(), indexing="ij")
        return np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1).astype(np.float32)


def _object_intensity(category: str) -> float:
    for prefix, value in OBJECT_INTENSITY.items():
        if category.startswith(prefix):
            return value
    return 30.0


def _front_gain(boxes: BoxSet, box_index: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Per point, :data:`FRONT_GAIN` of its box's category when it hit the box's front face
    (face normal along the heading), else 1 (and 1 for ground points, ``box_index`` -1)."""
    gains = np.array([next((g for prefix, g in FRONT_GAIN.items() if c.startswith(prefix)), 1.0)
                      for c in boxes.categories] + [1.0], dtype=np.float32)
    heading = np.stack([np.cos(boxes.yaws), np.sin(boxes.yaws)], axis=1).astype(np.float32)
    heading = np.concatenate([heading, np.zeros((1, 2), np.float32)])
    front = (normals[:, :2] * heading[box_index]).sum(axis=1) > 0.7
    return np.where(front, gains[box_index], 1.0).astype(np.float32)


def _windows(spec: LidarSpec, boxes: BoxSet, lidar2world: np.ndarray):
    """Per box, the beam rows and azimuth columns (split at the seam) that can see it."""
    origin = lidar2world[:3, 3]
    corners = (boxes.corners() - origin) @ lidar2world[:3, :3]  # lidar frame
    planar = boxes.planar_distance(origin)
    elevations = spec.elevations()
    step = 2 * np.pi / spec.azimuth_steps
    beam_margin = np.radians(0.1)

    def windows(b: int) -> list[Window]:
        far = np.hypot(corners[b, :, 0], corners[b, :, 1]).max()
        z_low, z_high = corners[b, :, 2].min(), corners[b, :, 2].max()
        near = max(planar[b], 1e-3)
        el_low = np.arctan2(z_low, near if z_low < 0 else far)
        el_high = np.arctan2(z_high, near if z_high > 0 else far)
        rows = np.flatnonzero((elevations >= el_low - beam_margin) & (elevations <= el_high + beam_margin))
        if len(rows) == 0:
            return []
        r0, r1 = int(rows[0]), int(rows[-1]) + 1
        if planar[b] <= 0:
            return [(r0, r1, 0, spec.azimuth_steps)]
        az = np.arctan2(corners[b, :, 1], corners[b, :, 0])
        mid = np.arctan2(*np.mean(np.stack([np.sin(az), np.cos(az)]), axis=1))
        rel = (az - mid + np.pi) % (2 * np.pi) - np.pi
        c0 = int(np.floor((mid + rel.min() + np.pi) / step)) - 1
        c1 = int(np.ceil((mid + rel.max() + np.pi) / step)) + 1
        n = spec.azimuth_steps
        if c0 < 0:
            return [(r0, r1, 0, c1), (r0, r1, c0 + n, n)]
        if c1 > n:
            return [(r0, r1, c0, n), (r0, r1, 0, c1 - n)]
        return [(r0, r1, c0, c1)]

    return windows


def sweep(spec: LidarSpec, lidar2world: np.ndarray, boxes: BoxSet, ground: GroundRaster,
          rng: np.random.Generator, return_index: bool = False, local_dirs: np.ndarray | None = None
          ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """One sweep: ``(N, 5)`` float32 ``x, y, z, intensity, ring`` in the LiDAR frame.

    With ``return_index`` also the ``(N,)`` index of the box each point hit (-1: ground);
    ``local_dirs`` may pass :meth:`LidarSpec.directions` to reuse it across sweeps.
    """
    origin = lidar2world[:3, 3]
    rotation = lidar2world[:3, :3]
    local_dirs = spec.directions() if local_dirs is None else local_dirs
    dirs = (local_dirs.reshape(-1, 3) @ rotation.T.astype(np.float32)).reshape(local_dirs.shape)
    planar = boxes.planar_distance(origin)
    keep = np.flatnonzero(planar < spec.max_range)
    visible = BoxSet(boxes.centers[keep], boxes.sizes[keep], boxes.yaws[keep], [boxes.categories[k] for k in keep])
    hits = cast(origin.astype(np.float32), dirs, visible, _windows(spec, visible, lidar2world), spec.max_range)

    with np.errstate(divide="ignore"):
        t_ground = np.where(dirs[..., 2] < 0, -origin[2] / dirs[..., 2], np.inf).astype(np.float32)
    ground_first = t_ground < hits.depth
    depth = np.where(ground_first, t_ground, hits.depth)
    valid = (depth < spec.max_range) & (depth > spec.min_range) & (rng.uniform(size=depth.shape) >= spec.dropout)
    depth = depth + rng.normal(0.0, spec.range_noise, size=depth.shape).astype(np.float32)

    rows, cols = np.nonzero(valid)
    d = depth[rows, cols]
    world = origin + dirs[rows, cols] * d[:, None]
    on_ground = ground_first[rows, cols]
    surface = ground.lookup(world[:, :2])
    base = np.where(on_ground, SURFACE_INTENSITY[surface], 0.0).astype(np.float32)
    box_index = np.where(on_ground, -1, hits.index[rows, cols])
    table = np.array([_object_intensity(c) for c in visible.categories] + [0.0], dtype=np.float32)
    incidence = np.abs((dirs[rows, cols] * hits.normal[rows, cols]).sum(-1))
    base = np.where(on_ground, base, table[box_index] * (0.4 + 0.6 * incidence))
    base = base * _front_gain(visible, box_index, hits.normal[rows, cols])
    intensity = np.clip(base * rng.uniform(0.8, 1.2, size=len(d)) + rng.normal(0, 1.5, len(d)), 0, 255)
    points = np.empty((len(d), 5), dtype=np.float32)
    points[:, :3] = local_dirs[rows, cols] * d[:, None]
    points[:, 3] = np.round(intensity)
    points[:, 4] = rows
    if return_index:
        return points, np.where(box_index >= 0, keep[np.maximum(box_index, 0)], -1)
    return points
