"""HRMapNet's global historical raster map: one growable uint8 ``(C, H, W)`` raster per location.

The map lives in the world frame of each location (a nuScenes location, an AV2 city, a synthetic
location id).  Cell ``(r, c)`` of a location's raster covers ``x in [x0 + c * res, x0 + (c+1) * res)``
and ``y in [y0 + r * res, ...)`` -- the stack's BEV convention (columns along +x, rows along +y),
drawn in the world frame.  Bounds are not known in advance: they grow by whole tiles of
``tile_cells`` cells from the poses seen, and tiles sit on a lattice anchored at the world origin,
so two maps of one location always align cell for cell (what makes a rank merge a plain union).

Updates are *pending* until :meth:`GlobalRasterMap.commit`:

* ``fusion="max"``: pending = elementwise max of the observed probabilities (scaled to 0..255);
  commit: ``base = max(base, pending)``.
* ``fusion="probabilistic"``: every observed cell adds ``+increment`` where the prediction is
  positive (``>= threshold``) and ``-decay`` where it is negative; pending holds the signed int16
  sum, commit: ``base = clip(base + pending, 0, 255)``.

Keeping updates pending makes them order independent (max and sum commute), so rank maps merged
with :meth:`merge_from` equal the map one process builds from the same frames (see
:mod:`.hrmap_distributed`).  ``online=True`` commits after every update instead: HRMapNet's
sequential per-frame increment/decay with clamping, which is order dependent.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...structures.geometry import BEVGrid
from ...utils.atomic import atomic_open

FUSIONS: tuple[str, ...] = ("max", "probabilistic")
FORMAT_VERSION = 1


class GlobalMapError(ValueError):
    """Raised for bad inputs to the global raster map (shapes, poses, settings, files)."""


@dataclass
class LocationRaster:
    """The raster of one location: ``base`` committed uint8 ``(C, H, W)``, ``pending`` the
    uncommitted updates (uint8 for max, int16 for probabilistic) or None, and ``tile_origin`` the
    ``(tx, ty)`` tile index of the lower-left tile (world ``x0 = tx * tile_cells * res``)."""

    base: np.ndarray
    tile_origin: tuple[int, int]
    pending: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.base.shape[1]), int(self.base.shape[2])


@dataclass
class GlobalRasterMap:
    """Per-location historical raster maps (module doc).

    ``num_classes`` channels, ``resolution`` metres per cell (default 0.3 m), ``tile_cells``
    the growth step in cells, ``increment`` / ``decay`` / ``threshold`` the probabilistic update.
    """

    num_classes: int
    resolution: float = 0.3
    fusion: str = "max"
    tile_cells: int = 128
    increment: int = 25
    decay: int = 5
    threshold: float = 0.5
    online: bool = False
    locations: dict[str, LocationRaster] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise GlobalMapError(f"GlobalRasterMap: fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if self.num_classes <= 0 or self.resolution <= 0 or self.tile_cells <= 0:
            raise GlobalMapError(f"GlobalRasterMap: num_classes, resolution and tile_cells must be positive, "
                                 f"got {self.num_classes}, {self.resolution}, {self.tile_cells}")
        if not (0 <= self.increment <= 255 and 0 <= self.decay <= 255):
            raise GlobalMapError(f"GlobalRasterMap: increment/decay must be in 0..255, got "
                                 f"{self.increment}/{self.decay}")

    # ------------------------------------------------------------------ geometry
    @property
    def tile_metres(self) -> float:
        return self.tile_cells * self.resolution

    def world_origin(self, location: str) -> tuple[float, float]:
        """World ``(x0, y0)`` of the lower-left corner of ``location``'s raster."""
        tx, ty = self.locations[location].tile_origin
        return tx * self.tile_metres, ty * self.tile_metres

    def _pending_dtype(self) -> type:
        return np.uint8 if self.fusion == "max" else np.int16

    def _ensure_bounds(self, location: str, xy_min: np.ndarray, xy_max: np.ndarray) -> None:
        """Grow ``location``'s raster by whole tiles until it covers the world box."""
        t_lo = np.floor(np.asarray(xy_min) / self.tile_metres).astype(np.int64)
        t_hi = np.floor(np.asarray(xy_max) / self.tile_metres).astype(np.int64)  # inclusive
        raster = self.locations.get(location)
        if raster is not None:
            tx, ty = raster.tile_origin
            h_t, w_t = raster.shape[0] // self.tile_cells, raster.shape[1] // self.tile_cells
            if t_lo[0] >= tx and t_lo[1] >= ty and t_hi[0] < tx + w_t and t_hi[1] < ty + h_t:
                return
            t_lo = np.minimum(t_lo, [tx, ty])
            t_hi = np.maximum(t_hi, [tx + w_t - 1, ty + h_t - 1])
        self._reallocate(location, (int(t_lo[0]), int(t_lo[1])), (int(t_hi[0]), int(t_hi[1])))

    def _reallocate(self, location: str, t_lo: tuple[int, int], t_hi: tuple[int, int]) -> None:
        """Give ``location`` the tile box ``t_lo..t_hi`` (inclusive), copying what it held."""
        height = (t_hi[1] - t_lo[1] + 1) * self.tile_cells
        width = (t_hi[0] - t_lo[0] + 1) * self.tile_cells
        base = np.zeros((self.num_classes, height, width), np.uint8)
        old = self.locations.get(location)
        pending = None
        if old is not None:
            r0 = (old.tile_origin[1] - t_lo[1]) * self.tile_cells
            c0 = (old.tile_origin[0] - t_lo[0]) * self.tile_cells
            h, w = old.shape
            base[:, r0:r0 + h, c0:c0 + w] = old.base
            if old.pending is not None:
                pending = np.zeros(base.shape, old.pending.dtype)
                pending[:, r0:r0 + h, c0:c0 + w] = old.pending
        self.locations[location] = LocationRaster(base, t_lo, pending)

    # ------------------------------------------------------------------ reading
    def crop_to_ego(self, location: str, lidar2global: np.ndarray, grid: BEVGrid,
                    device: torch.device | str | None = None) -> torch.Tensor:
        """The committed map of ``location`` seen from the LiDAR pose ``lidar2global``:
        ``(C, H, W)`` float in [0, 1] on ``grid`` (columns +x, rows +y of the LiDAR frame);
        zeros where the map has never been observed (or for an unknown location)."""
        height, width = grid.shape
        if location not in self.locations:
            return torch.zeros(self.num_classes, height, width, device=device)
        ego_xy = _grid_centres(grid)                                   # (H*W, 2) lidar frame
        world_xy = ego_xy @ _rot2(lidar2global).T + _trans2(lidar2global)
        raster = self.locations[location]
        x0, y0 = self.world_origin(location)
        # sample only the window the crop touches (a city raster is large), with a one-cell margin
        # so that bilinear sampling inside the window equals sampling the whole raster
        cells = (world_xy - (x0, y0)) / self.resolution - 0.5
        lo = np.maximum(np.floor(cells.min(0)).astype(int) - 1, 0)
        hi = np.minimum(np.ceil(cells.max(0)).astype(int) + 2, (raster.shape[1], raster.shape[0]))
        if np.any(hi <= lo):
            return torch.zeros(self.num_classes, height, width, device=device)
        window = raster.base[:, lo[1]:hi[1], lo[0]:hi[0]]
        x0, y0 = x0 + lo[0] * self.resolution, y0 + lo[1] * self.resolution
        h, w = window.shape[1:]
        norm = np.stack([2.0 * (world_xy[:, 0] - x0) / (w * self.resolution) - 1.0,
                         2.0 * (world_xy[:, 1] - y0) / (h * self.resolution) - 1.0], axis=1)
        source = torch.from_numpy(np.ascontiguousarray(window)).float().div_(255.0)[None]
        sample = torch.from_numpy(norm.astype(np.float32)).view(1, height, width, 2)
        out = F.grid_sample(source, sample, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
        return out if device is None else out.to(device)

    def __contains__(self, location: str) -> bool:
        return location in self.locations

    # ------------------------------------------------------------------ writing
    def update(self, location: str, lidar2global: np.ndarray, probs: torch.Tensor | np.ndarray,
               grid: BEVGrid) -> None:
        """Fuse one frame's BEV prediction ``probs`` ``(C, H, W)`` in [0, 1] (LiDAR-frame ``grid``)
        into ``location``'s pending map: every world cell whose centre falls inside the ego BEV
        samples the prediction bilinearly (vectorized with ``grid_sample``)."""
        probs = torch.as_tensor(probs).detach().float().cpu()
        if probs.ndim != 3 or probs.shape[0] != self.num_classes or tuple(probs.shape[1:]) != grid.shape:
            raise GlobalMapError(f"GlobalRasterMap.update: probs must be ({self.num_classes}, "
                                 f"{grid.shape[0]}, {grid.shape[1]}), got {tuple(probs.shape)}")
        corners = np.array([[grid.x_range[0], grid.y_range[0]], [grid.x_range[1], grid.y_range[0]],
                            [grid.x_range[0], grid.y_range[1]], [grid.x_range[1], grid.y_range[1]]])
        world_corners = corners @ _rot2(lidar2global).T + _trans2(lidar2global)
        self._ensure_bounds(location, world_corners.min(0), world_corners.max(0))
        raster = self.locations[location]
        x0, y0 = self.world_origin(location)
        res = self.resolution
        c_lo, r_lo = np.floor((world_corners.min(0) - (x0, y0)) / res).astype(int)
        c_hi, r_hi = np.ceil((world_corners.max(0) - (x0, y0)) / res).astype(int)
        c_lo, r_lo = max(c_lo, 0), max(r_lo, 0)
        c_hi, r_hi = min(c_hi, raster.shape[1]), min(r_hi, raster.shape[0])
        cols = x0 + (np.arange(c_lo, c_hi) + 0.5) * res
        rows = y0 + (np.arange(r_lo, r_hi) + 0.5) * res
        wx, wy = np.meshgrid(cols, rows)                                 # (h, w) world centres
        world = np.stack([wx.ravel(), wy.ravel()], axis=1)
        ego = (world - _trans2(lidar2global)) @ np.linalg.inv(_rot2(lidar2global)).T  # poses may scale
        gh, gw = grid.shape
        norm = np.stack([2.0 * (ego[:, 0] - grid.x_range[0]) / (gw * grid.resolution) - 1.0,
                         2.0 * (ego[:, 1] - grid.y_range[0]) / (gh * grid.resolution) - 1.0], axis=1)
        inside = torch.from_numpy((np.abs(norm) <= 1.0).all(axis=1).reshape(wy.shape))
        sample = torch.from_numpy(norm.astype(np.float32)).view(1, *wy.shape, 2)
        values = F.grid_sample(probs[None], sample, mode="bilinear", padding_mode="border",
                               align_corners=False)[0]                  # (C, h, w)
        self._fuse_window(raster, (slice(r_lo, r_hi), slice(c_lo, c_hi)), values.clamp_(0, 1), inside)
        if self.online:
            self.commit(location)

    def _fuse_window(self, raster: LocationRaster, window: tuple[slice, slice], values: torch.Tensor,
                     inside: torch.Tensor) -> None:
        if raster.pending is None:
            raster.pending = np.zeros(raster.base.shape, self._pending_dtype())
        target = raster.pending[(slice(None), *window)]
        mask = inside.numpy()[None].repeat(self.num_classes, 0)
        if self.fusion == "max":
            scaled = torch.round(values * 255.0).to(torch.uint8).numpy()
            np.maximum(target, np.where(mask, scaled, 0).astype(np.uint8), out=target)
        else:
            positive = values.numpy() >= self.threshold
            delta = np.where(positive, self.increment, -self.decay).astype(np.int32)
            summed = target.astype(np.int32) + np.where(mask, delta, 0)
            target[...] = np.clip(summed, np.iinfo(np.int16).min, np.iinfo(np.int16).max)

    def commit(self, location: str | None = None) -> None:
        """Fold the pending updates of ``location`` (all locations when None) into the base map."""
        names = list(self.locations) if location is None else [location]
        for name in names:
            raster = self.locations[name]
            if raster.pending is None:
                continue
            if self.fusion == "max":
                np.maximum(raster.base, raster.pending, out=raster.base)
            else:
                raster.base[...] = np.clip(raster.base.astype(np.int32) + raster.pending, 0, 255)
            raster.pending = None

    def has_pending(self) -> bool:
        return any(r.pending is not None for r in self.locations.values())

    # ------------------------------------------------------------------ merging
    def merge_from(self, other: "GlobalRasterMap") -> None:
        """Fold ``other`` (same settings, any bounds) into this map: bases by max, pending
        updates by max (``max`` fusion) or sum (``probabilistic``) -- commutative, so the merged
        map does not depend on the order ranks are merged in."""
        if (other.num_classes, other.resolution, other.fusion, other.tile_cells) != \
                (self.num_classes, self.resolution, self.fusion, self.tile_cells):
            raise GlobalMapError("GlobalRasterMap.merge_from: maps differ in num_classes/resolution/fusion/"
                                 f"tile_cells: {self.settings()} vs {other.settings()}")
        for name, theirs in other.locations.items():
            tx, ty = theirs.tile_origin
            h_t, w_t = theirs.shape[0] // self.tile_cells, theirs.shape[1] // self.tile_cells
            lo = np.array([tx, ty]) * self.tile_metres + 0.5 * self.resolution
            hi = np.array([tx + w_t, ty + h_t]) * self.tile_metres - 0.5 * self.resolution
            self._ensure_bounds(name, lo, hi)
            mine = self.locations[name]
            r0 = (ty - mine.tile_origin[1]) * self.tile_cells
            c0 = (tx - mine.tile_origin[0]) * self.tile_cells
            window = (slice(None), slice(r0, r0 + theirs.shape[0]), slice(c0, c0 + theirs.shape[1]))
            np.maximum(mine.base[window], theirs.base, out=mine.base[window])
            if theirs.pending is None:
                continue
            if mine.pending is None:
                mine.pending = np.zeros(mine.base.shape, self._pending_dtype())
            if self.fusion == "max":
                np.maximum(mine.pending[window], theirs.pending, out=mine.pending[window])
            else:
                summed = mine.pending[window].astype(np.int32) + theirs.pending
                mine.pending[window] = np.clip(summed, np.iinfo(np.int16).min, np.iinfo(np.int16).max)

    # ------------------------------------------------------------------ files
    def settings(self) -> dict:
        return dict(num_classes=self.num_classes, resolution=self.resolution, fusion=self.fusion,
                    tile_cells=self.tile_cells, increment=self.increment, decay=self.decay,
                    threshold=self.threshold, online=self.online)

    def save(self, path: str | Path) -> Path:
        """Write the committed maps to ``path`` (``.npz``) atomically; pending updates are not
        saved (commit first)."""
        if self.has_pending():
            raise GlobalMapError("GlobalRasterMap.save: there are pending updates; call commit() first")
        names = sorted(self.locations)
        arrays: dict[str, np.ndarray] = {"meta": np.frombuffer(json.dumps(
            {"version": FORMAT_VERSION, "settings": self.settings(), "locations": names}).encode(), np.uint8)}
        for index, name in enumerate(names):
            arrays[f"base_{index}"] = self.locations[name].base
            arrays[f"origin_{index}"] = np.asarray(self.locations[name].tile_origin, np.int64)
        with atomic_open(path, "wb") as stream:
            np.savez_compressed(stream, **arrays)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, **overrides) -> "GlobalRasterMap":
        """A map saved by :meth:`save`; ``overrides`` replace update settings (e.g. ``online``)."""
        path = Path(path)
        if not path.is_file():
            raise GlobalMapError(f"GlobalRasterMap.load: no map file at {path}")
        with np.load(path) as content:
            meta = json.loads(content["meta"].tobytes().decode())
            if meta.get("version") != FORMAT_VERSION:
                raise GlobalMapError(f"GlobalRasterMap.load: {path} has format version "
                                     f"{meta.get('version')}, expected {FORMAT_VERSION}")
            settings = {**meta["settings"], **overrides}
            fixed = ("num_classes", "resolution", "tile_cells")
            changed = [k for k in fixed if k in overrides and overrides[k] != meta["settings"][k]]
            if changed:
                raise GlobalMapError(f"GlobalRasterMap.load: cannot override {changed} of a saved map")
            out = cls(**settings)
            for index, name in enumerate(meta["locations"]):
                origin = content[f"origin_{index}"]
                out.locations[name] = LocationRaster(content[f"base_{index}"].copy(),
                                                     (int(origin[0]), int(origin[1])))
        return out

    def world_extent(self, location: str) -> tuple[float, float, float, float]:
        """``(x_min, x_max, y_min, y_max)`` of ``location``'s raster in world metres."""
        x0, y0 = self.world_origin(location)
        h, w = self.locations[location].shape
        return x0, x0 + w * self.resolution, y0, y0 + h * self.resolution


def _rot2(pose: np.ndarray) -> np.ndarray:
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape != (4, 4):
        raise GlobalMapError(f"lidar2global must be 4x4, got {pose.shape}")
    return pose[:2, :2]


def _trans2(pose: np.ndarray) -> np.ndarray:
    return np.asarray(pose, dtype=np.float64)[:2, 3]


def _grid_centres(grid: BEVGrid) -> np.ndarray:
    """``(H*W, 2)`` metric centres of ``grid``'s cells, row-major (row = y, column = x)."""
    height, width = grid.shape
    xs = grid.x_range[0] + (np.arange(width) + 0.5) * grid.resolution
    ys = grid.y_range[0] + (np.arange(height) + 0.5) * grid.resolution
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def bev_grid(x_range: tuple[float, float], y_range: tuple[float, float], resolution: float) -> BEVGrid:
    """A :class:`BEVGrid` from config values (lists accepted)."""
    return BEVGrid(tuple(map(float, x_range)), tuple(map(float, y_range)), float(resolution))

