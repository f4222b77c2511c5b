"""Public voxelization functions: validate, then dispatch by device.

CPU tensors run the vectorized torch path (:mod:`.cpu`); CUDA tensors run the Triton kernels
(:mod:`.triton_kernels`), or the torch path with a warning when triton is not installed.
Any other device raises ``ValueError``.

Conventions (mmcv / spconv): coords are int32 ``(z, y, x)``, batched ``(b, z, y, x)``; a point
lies in cell ``floor((p - range_min) / voxel_size)`` (float32 maths, float64 for float64
points) and is dropped when any cell index is outside ``[0, grid_size)``.  Points with
NaN/Inf in x, y or z are dropped by the same rule (other columns are copied as they are).
Empty inputs give empty outputs of the documented shapes and dtypes.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import torch

from . import cpu
from .grid import VoxelGrid, check_coords, check_points, check_positive_int
from .triton_kernels import (TRITON_AVAILABLE, dynamic_voxelize_triton, hard_voxelize_triton,
                             voxel_pooling_triton)

POOLING_MODES: tuple[str, ...] = ("mean", "max", "sum")
VoxelizeResult = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _use_triton(tensor: torch.Tensor) -> bool:
    if tensor.device.type != "cuda":
        return False
    if not TRITON_AVAILABLE:
        warnings.warn("triton is not installed: voxelize ops on CUDA fall back to the slower "
                      "torch path", RuntimeWarning, stacklevel=3)
    return TRITON_AVAILABLE


def hard_voxelize(points: torch.Tensor, voxel_size: Sequence[float], point_cloud_range: Sequence[float],
                  max_points_per_voxel: int, max_voxels: int, deterministic: bool = True) -> VoxelizeResult:
    """Group one point cloud ``(N, C>=3)`` into at most ``max_voxels`` voxels of at most
    ``max_points_per_voxel`` points, with mmcv's ``Voxelization`` semantics.

    Returns ``voxels (M, max_points, C)`` (points' dtype, zero padded), ``coords (M, 3)`` int32
    ``(z, y, x)`` and ``num_points_per_voxel (M,)`` int32.  Each voxel keeps its first points in
    input order; once ``max_voxels`` voxels exist, points of new voxels are dropped.  With
    ``deterministic=True`` voxels are in order of first appearance; with ``False`` the order
    (and which voxels survive a ``max_voxels`` overflow) is implementation-defined (here: by
    ``(z, y, x)``), which skips one sort.  No points in range: ``M = 0``.
    """
    grid = VoxelGrid.build(voxel_size, point_cloud_range)
    check_points(points)
    voxels, coords, num = _hard(points, grid, max_points_per_voxel, max_voxels, deterministic, None, 1)
    return voxels, coords[:, 1:].contiguous(), num


def hard_voxelize_batch(points: Sequence[torch.Tensor] | torch.Tensor, voxel_size: Sequence[float],
                        point_cloud_range: Sequence[float], max_points_per_voxel: int, max_voxels: int,
                        deterministic: bool = True, batch_idx: torch.Tensor | None = None,
                        batch_size: int | None = None) -> VoxelizeResult:
    """:func:`hard_voxelize` of a batch, in one pass; ``max_voxels`` applies per sample.

    ``points`` is a list of ``(N_b, C)`` clouds, or one ``(N, C)`` tensor with ``batch_idx (N,)``
    (``batch_size`` defaults to ``max(batch_idx) + 1``).  Returns ``voxels (M, P, C)``, coords
    ``(M, 4)`` int32 ``(b, z, y, x)`` as spconv expects (sample by sample) and ``num_points (M,)``.
    """
    grid = VoxelGrid.build(voxel_size, point_cloud_range)
    flat, batch, size = _flatten_batch(points, batch_idx, batch_size)
    grid.check_batch_size(size)
    return _hard(flat, grid, max_points_per_voxel, max_voxels, deterministic, batch, size)


def _hard(points: torch.Tensor, grid: VoxelGrid, max_points: int, max_voxels: int, deterministic: bool,
          batch: torch.Tensor | None, batch_size: int) -> VoxelizeResult:
    check_positive_int(max_points, "max_points_per_voxel")
    check_positive_int(max_voxels, "max_voxels")
    if not isinstance(deterministic, bool):
        raise ValueError(f"deterministic must be a bool, got {deterministic!r}")
    impl = hard_voxelize_triton if _use_triton(points) else cpu.hard_voxelize_torch
    return impl(points, grid, max_points, max_voxels, deterministic, batch, batch_size)


def dynamic_voxelize(points: torch.Tensor, voxel_size: Sequence[float],
                     point_cloud_range: Sequence[float]) -> torch.Tensor:
    """Cell of every point: ``(N, 3)`` int32 ``(z, y, x)``, rows of -1 for dropped points."""
    grid = VoxelGrid.build(voxel_size, point_cloud_range)
    check_points(points)
    impl = dynamic_voxelize_triton if _use_triton(points) else cpu.dynamic_voxelize_torch
    return impl(points, grid)


def dynamic_voxelize_batch(points: Sequence[torch.Tensor] | torch.Tensor, voxel_size: Sequence[float],
                           point_cloud_range: Sequence[float], batch_idx: torch.Tensor | None = None,
                           batch_size: int | None = None) -> torch.Tensor:
    """:func:`dynamic_voxelize` of a batch (list, or points + ``batch_idx``): ``(N, 4)`` int32
    ``(b, z, y, x)`` for the concatenated points, whole rows of -1 for dropped points."""
    flat, batch, _ = _flatten_batch(points, batch_idx, batch_size)
    cells = dynamic_voxelize(flat, voxel_size, point_cloud_range)
    batch_col = torch.where(cells[:, :1] >= 0, batch[:, None].to(torch.int32), -1)
    return torch.cat([batch_col, cells], dim=1)


def voxel_pooling(features: torch.Tensor, point_coords: torch.Tensor, mode: str = "mean"
                  ) -> VoxelizeResult:
    """Pool the rows of ``features (N, C)`` that share a row of ``point_coords (N, K)`` integer
    coords (e.g. from :func:`dynamic_voxelize`, K = 3 or 4); rows with a negative entry are
    ignored.  ``mode`` is ``'mean'``, ``'max'`` or ``'sum'``; gradients flow to ``features``
    (``max`` splits them evenly among tied points).

    Returns ``pooled (M, C)`` in the features' dtype, ``unique_coords (M, K)`` in the coords'
    dtype sorted lexicographically, and ``inverse (N,)`` int64: the output row of each input
    row, -1 for ignored rows.
    """
    check_points(features, "features", min_features=1)
    check_coords(point_coords, features.shape[0])
    if point_coords.device != features.device:
        raise ValueError(f"point_coords is on {point_coords.device} but features on {features.device}")
    if mode not in POOLING_MODES:
        raise ValueError(f"mode must be one of {POOLING_MODES}, got {mode!r}")
    if _use_triton(features):
        return voxel_pooling_triton(features, point_coords, mode)
    unique, inverse, valid = cpu.unique_rows(point_coords)
    return cpu.pool_torch(features, inverse, valid, unique.shape[0], mode), unique, inverse


def select_sweeps(points: torch.Tensor, time_lag_column: int, max_lag: float) -> torch.Tensor:
    """Rows of a multi-sweep cloud whose time lag (seconds, 0 for the keyframe; see
    ``perception.structures.conventions``) is ``<= max_lag``; NaN lags are dropped."""
    check_points(points)
    if isinstance(time_lag_column, bool) or not isinstance(time_lag_column, int) or not (
            -points.shape[1] <= time_lag_column < points.shape[1]) or time_lag_column % points.shape[1] < 3:
        raise ValueError(f"time_lag_column must index a feature column (>= 3) of {points.shape[1]}, "
                         f"got {time_lag_column!r}")
    if not float(max_lag) >= 0:
        raise ValueError(f"max_lag must be >= 0 seconds, got {max_lag!r}")
    return points[points[:, time_lag_column] <= max_lag]


def _flatten_batch(points: Sequence[torch.Tensor] | torch.Tensor, batch_idx: torch.Tensor | None,
                   batch_size: int | None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Concatenated points, their ``(N,)`` int64 batch index and the batch size."""
    if isinstance(points, torch.Tensor):
        check_points(points)
        if not isinstance(batch_idx, torch.Tensor) or batch_idx.shape != (points.shape[0],):
            raise ValueError(f"batch_idx must be a ({points.shape[0]},) integer tensor when points is "
                             f"a tensor, got {batch_idx if batch_idx is None else tuple(batch_idx.shape)}")
        if (batch_idx.is_floating_point() or batch_idx.dtype == torch.bool
                or batch_idx.device != points.device):
            raise ValueError(f"batch_idx must be an integer tensor on {points.device}, "
                             f"got {batch_idx.dtype} on {batch_idx.device}")
        if batch_size is None:
            batch_size = int(batch_idx.max()) + 1 if batch_idx.numel() else 1
        check_positive_int(batch_size, "batch_size")
        if batch_idx.numel() and not bool(((batch_idx >= 0) & (batch_idx < batch_size)).all()):
            raise ValueError(f"batch_idx values must lie in [0, {batch_size})")
        return points, batch_idx.long(), batch_size
    if batch_idx is not None:
        raise ValueError("batch_idx is only used with a single points tensor, not with a list")
    if not isinstance(points, (list, tuple)) or not points:
        raise ValueError(f"points must be a non-empty list of (N, C) tensors, got {type(points).__name__}")
    for b, p in enumerate(points):
        check_points(p, f"points[{b}]")
        if p.shape[1] != points[0].shape[1] or p.dtype != points[0].dtype or p.device != points[0].device:
            raise ValueError(f"points[{b}] is {tuple(p.shape)} {p.dtype} on {p.device}, unlike points[0] "
                             f"{tuple(points[0].shape)} {points[0].dtype} on {points[0].device}")
    if batch_size is not None and batch_size != len(points):
        raise ValueError(f"batch_size {batch_size} does not match the {len(points)} point clouds")
    lengths = torch.tensor([p.shape[0] for p in points], device=points[0].device)
    batch = torch.repeat_interleave(torch.arange(len(points), device=points[0].device), lengths)
    return torch.cat(list(points)), batch, len(points)
