"""The voxel grid (size, range, cell counts) and the input checks shared by every path.

Coordinates follow mmcv / spconv: a voxel coordinate is ``(z, y, x)`` (batched: ``(b, z, y, x)``)
and a point at ``p`` falls in cell ``floor((p - range_min) / voxel_size)`` per axis, computed in
the *compute dtype* (float64 for float64 points, float32 otherwise) so that every implementation
(reference, torch, Triton) produces bit-identical cells.  A point is inside when every cell
index lies in ``[0, grid_size)``; NaN/Inf coordinates fail that test and are dropped like
points outside the range.  ``grid_size = round((range_max - range_min) / voxel_size)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

SUPPORTED_DEVICES: tuple[str, ...] = ("cpu", "cuda")
MAX_CELLS = 2**62
"""Upper bound of ``batch_size * nx * ny * nz`` so int64 linear keys never overflow."""


@dataclass(frozen=True)
class VoxelGrid:
    """A validated voxel grid; all tuples are in ``(x, y, z)`` order."""

    voxel_size: tuple[float, float, float]
    range_min: tuple[float, float, float]
    range_max: tuple[float, float, float]
    grid_size: tuple[int, int, int]

    @classmethod
    def build(cls, voxel_size: Sequence[float] | torch.Tensor,
              point_cloud_range: Sequence[float] | torch.Tensor) -> "VoxelGrid":
        """Check ``voxel_size`` (3 positive numbers) and ``point_cloud_range``
        (``[x_min, y_min, z_min, x_max, y_max, z_max]``, max > min) and derive the cell counts."""
        size = _as_floats(voxel_size, "voxel_size", 3)
        rng = _as_floats(point_cloud_range, "point_cloud_range", 6)
        if any(not s > 0 for s in size):
            raise ValueError(f"voxel_size must be > 0 on every axis, got {list(size)}")
        lo, hi = rng[:3], rng[3:]
        if any(not h > l for l, h in zip(lo, hi)):
            raise ValueError(f"point_cloud_range needs max > min on every axis, got {list(rng)}")
        counts = tuple(int(round((h - l) / s)) for l, h, s in zip(lo, hi, size))
        if any(c < 1 for c in counts):
            raise ValueError(f"voxel_size {list(size)} is larger than point_cloud_range {list(rng)}: "
                             f"grid size {list(counts)} has an empty axis")
        if any(c >= 2**31 for c in counts) or math.prod(counts) >= MAX_CELLS:
            raise ValueError(f"grid {list(counts)} (from voxel_size {list(size)}) is too large for "
                             "int32 coordinates / int64 keys")
        return cls(size, lo, hi, counts)  # type: ignore[arg-type]

    @property
    def num_cells(self) -> int:
        """Cells of one sample's grid, ``nx * ny * nz``."""
        return math.prod(self.grid_size)

    def params(self, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """``(6,)`` tensor ``[vx, vy, vz, x_min, y_min, z_min]`` in ``dtype``; every path reads
        the grid from this so they all round the Python floats identically."""
        return torch.tensor(self.voxel_size + self.range_min, dtype=dtype, device=device)

    def check_batch_size(self, batch_size: int) -> None:
        """Raise if ``batch_size`` grids would overflow the int64 linear key."""
        if batch_size * self.num_cells >= MAX_CELLS:
            raise ValueError(f"batch_size {batch_size} x {self.num_cells} cells overflows int64 keys")


def _as_floats(value: Sequence[float] | torch.Tensor, name: str, length: int) -> tuple[float, ...]:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().reshape(-1).tolist()
    try:
        floats = tuple(float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be {length} numbers, got {value!r}") from exc
    if len(floats) != length:
        raise ValueError(f"{name} must have {length} numbers, got {len(floats)}: {list(floats)}")
    if not all(math.isfinite(v) for v in floats):
        raise ValueError(f"{name} must be finite, got {list(floats)}")
    return floats


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Dtype in which cells are computed: float64 for float64 points, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def check_points(points: object, name: str = "points", min_features: int = 3) -> torch.Tensor:
    """Raise ``ValueError`` unless ``points`` is a floating ``(N, C>=min_features)`` tensor on a
    supported device."""
    if not isinstance(points, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(points).__name__}")
    if points.dim() != 2 or points.shape[1] < min_features:
        raise ValueError(f"{name} must have shape (N, C>={min_features}), got {tuple(points.shape)}")
    if not points.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor (float16/bfloat16/float32/float64), "
                         f"got {points.dtype}")
    check_device(points, name)
    return points


def check_device(tensor: torch.Tensor, name: str) -> None:
    """Raise for devices other than CPU and CUDA (e.g. ``meta``, ``mps``)."""
    if tensor.device.type not in SUPPORTED_DEVICES:
        raise ValueError(f"{name} is on device {tensor.device}; voxelize ops support "
                         f"{' and '.join(SUPPORTED_DEVICES)} tensors only")


def check_positive_int(value: object, name: str) -> int:
    """Raise unless ``value`` is an int >= 1 (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def check_coords(coords: object, num_points: int, name: str = "point_coords") -> torch.Tensor:
    """Raise unless ``coords`` is an integer ``(N, K)`` tensor matching ``num_points`` rows."""
    if not isinstance(coords, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(coords).__name__}")
    if coords.dim() != 2 or coords.shape[0] != num_points or coords.shape[1] < 1:
        raise ValueError(f"{name} must have shape ({num_points}, K), got {tuple(coords.shape)}")
    if coords.is_floating_point() or coords.is_complex() or coords.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer tensor, got {coords.dtype}")
    check_device(coords, name)
    return coords
