"""Camera images by per-pixel ray casting: ground plane coloured from the ground raster,
objects as Lambert-shaded boxes in their class colour, sky above the horizon.

Every pixel's ray is intersected exactly with the ground (``z = 0`` world) and with the
boxes (:func:`.raycast.cast`, each box only over the image rectangle it projects to); the
nearest wins (a z-buffer in ray distance).
"""
from __future__ import annotations

import numpy as np

from .ground import GroundRaster
from .raycast import BoxSet, Window, cast
from .types import CameraRig

CLASS_COLOURS: dict[str, tuple[int, int, int]] = {
    "vehicle.car": (200, 40, 40),
    "vehicle.truck": (230, 130, 20),
    "vehicle.trailer": (150, 90, 50),
    "vehicle.bus": (240, 210, 30),
    "vehicle.construction": (250, 170, 0),
    "vehicle.bicycle": (40, 170, 230),
    "vehicle.motorcycle": (150, 60, 210),
    "human.pedestrian": (30, 200, 90),
    "movable_object.trafficcone": (255, 100, 0),
    "movable_object.barrier": (235, 235, 235),
    "static.building": (175, 160, 145),
    "static.pole": (95, 95, 100),
    "static.vegetation": (70, 120, 55),
}
"""Category prefix -> RGB colour of its boxes (before shading)."""
SURFACE_COLOURS = np.array([(84, 122, 66), (72, 72, 76), (160, 155, 145), (235, 235, 230), (225, 185, 40)],
                           dtype=np.float32)
"""RGB of grass, asphalt, sidewalk, white and yellow paint (indexed by surface class)."""
SUN = np.array([0.35, 0.45, 0.82]) / np.linalg.norm([0.35, 0.45, 0.82])
AMBIENT = 0.5
SKY_HORIZON, SKY_ZENITH = np.array([205, 218, 232], np.float32), np.array([95, 140, 205], np.float32)
NEAR_PLANE = 0.05


def class_colour(category: str) -> np.ndarray:
    """The unshaded RGB colour of ``category`` (grey for unknown categories)."""
    for prefix, colour in CLASS_COLOURS.items():
        if category.startswith(prefix):
            return np.asarray(colour, dtype=np.float32)
    return np.array([128, 128, 128], dtype=np.float32)


def shade(normal: np.ndarray) -> np.ndarray:
    """Lambert factor of faces with world ``normal`` ``(..., 3)`` under the fixed sun."""
    return AMBIENT + (1 - AMBIENT) * np.clip(normal @ SUN.astype(np.float32), 0.0, None)


def pixel_rays(camera: CameraRig) -> np.ndarray:
    """``(H, W, 3)`` unit ray directions through the pixel centres in the camera frame."""
    u, v = np.meshgrid(np.arange(camera.width) + 0.5, np.arange(camera.height) + 0.5)
    rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(camera.cam2img).T
    return (rays / np.linalg.norm(rays, axis=-1, keepdims=True)).astype(np.float32)


_EDGES = np.array([(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1])


def _windows(camera: CameraRig, boxes: BoxSet, cam2world: np.ndarray):
    """Per box, the image rectangle its near-plane-clipped corners project to."""
    world2cam = np.linalg.inv(cam2world)
    corners = boxes.corners() @ world2cam[:3, :3].T + world2cam[:3, 3]

    def windows(b: int) -> list[Window]:
        pts = corners[b]
        front = pts[:, 2] >= NEAR_PLANE
        if not front.any():
            return []
        a, c = pts[_EDGES[:, 0]], pts[_EDGES[:, 1]]
        crossing = (a[:, 2] >= NEAR_PLANE) != (c[:, 2] >= NEAR_PLANE)
        t = (NEAR_PLANE - a[crossing, 2]) / (c[crossing, 2] - a[crossing, 2])
        clipped = np.concatenate([pts[front], a[crossing] + t[:, None] * (c[crossing] - a[crossing])])
        uv = clipped @ camera.cam2img.T
        uv = uv[:, :2] / uv[:, 2:3]
        c0, r0 = np.floor(uv.min(axis=0)).astype(int) - 1
        c1, r1 = np.ceil(uv.max(axis=0)).astype(int) + 1
        c0, c1 = max(c0, 0), min(c1, camera.width)
        r0, r1 = max(r0, 0), min(r1, camera.height)
        return [(r0, r1, c0, c1)] if c0 < c1 and r0 < r1 else []

    return windows


def render(camera: CameraRig, ego2global: np.ndarray, boxes: BoxSet, ground: GroundRaster,
           texture: np.ndarray, rays: np.ndarray | None = None, max_distance: float = 400.0) -> np.ndarray:
    """The camera's ``(H, W, 3)`` uint8 RGB image.  ``texture`` is a small 2-D brightness
    tile (deterministic noise) tiled over the ground; ``rays`` may be passed to reuse
    :func:`pixel_rays`."""
    cam2world = ego2global @ camera.cam2ego
    rays = pixel_rays(camera) if rays is None else rays
    dirs = rays @ cam2world[:3, :3].T.astype(np.float32)
    origin = cam2world[:3, 3]
    hits = cast(origin.astype(np.float32), dirs, boxes, _windows(camera, boxes, cam2world), max_distance)

    image = np.empty(dirs.shape, dtype=np.float32)
    up = np.clip(dirs[..., 2], 0.0, 1.0)[..., None]
    image[:] = SKY_HORIZON + (SKY_ZENITH - SKY_HORIZON) * np.sqrt(up)
    with np.errstate(divide="ignore"):
        t_ground = np.where(dirs[..., 2] < 0, -origin[2] / dirs[..., 2], np.inf).astype(np.float32)
    on_ground = (t_ground < hits.depth) & (t_ground < max_distance)
    if on_ground.any():
        xy = origin[:2] + dirs[on_ground][:, :2] * t_ground[on_ground][:, None]
        rows, cols = ground.cells(xy)
        grain = texture[rows % texture.shape[0], cols % texture.shape[1]][:, None]
        image[on_ground] = SURFACE_COLOURS[ground.lookup(xy)] * grain
    on_box = (hits.index >= 0) & (hits.depth <= t_ground)
    if on_box.any():
        palette = np.stack([class_colour(c) for c in boxes.categories])
        image[on_box] = palette[hits.index[on_box]] * shade(hits.normal[on_box])[:, None]
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def ground_texture(size: int = 64, seed: int = 7) -> np.ndarray:
    """A deterministic brightness tile in ``[0.9, 1.1]`` giving the ground some grain."""
    return np.random.default_rng(seed).uniform(0.9, 1.1, (size, size)).astype(np.float32)
