"""The BEV grid of the pooling and the precomputed plan (ranks, sort, intervals).

A frustum point lies in cell ``floor((p - range_min) / step)`` per axis (the compute dtype of
:mod:`perception_ops.voxelize.grid`: float64 for float64 geometry, float32 otherwise) and is
dropped when any index is outside the grid or a coordinate is NaN/Inf.  Its **rank** is the
output row of its cell::

    rank = ((b * ny + y) * nx + x) * nz + z

so the pooled ``(rows, C)`` tensor is ``(B, ny, nx, nz, C)`` in memory: the ``(B, C, Z, Y, X)``
view and the collapsed ``(B, Z*C, Y, X)`` view (channel ``z * C + c``, BEVFusion's
``cat(x.unbind(2), 1)``) are both channels-last, without a copy.  Columns grow along +x and rows
along +y, as :mod:`perception.structures.conventions` says.

:class:`BEVPoolPlan` sorts the kept points by rank once (stable, so equal ranks keep input
order and every sum has a fixed order) and cuts them into intervals, one per non-empty cell;
it only depends on the geometry, so it is reused while the calibration is unchanged
(:mod:`.cache`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from ..voxelize.grid import VoxelGrid, compute_dtype

Bound = Sequence[float]


def grid_from_bounds(xbound: Bound, ybound: Bound, zbound: Bound) -> VoxelGrid:
    """The grid of BEVFusion-style bounds ``[min, max, step]`` per axis, e.g. nuScenes'
    ``xbound = ybound = [-54, 54, 0.3]``, ``zbound = [-10, 10, 20]`` (360 x 360 x 1 cells)."""
    bounds = []
    for name, bound in (("xbound", xbound), ("ybound", ybound), ("zbound", zbound)):
        values = [float(v) for v in bound]
        if len(values) != 3:
            raise ValueError(f"{name} must be [min, max, step], got {list(bound)}")
        bounds.append(values)
    return VoxelGrid.build([b[2] for b in bounds], [b[0] for b in bounds] + [b[1] for b in bounds])


def grid_shape(grid: VoxelGrid) -> tuple[int, int, int]:
    """``(Z, Y, X)`` cell counts of ``grid`` (Y = BEV rows along +y, X = columns along +x)."""
    nx, ny, nz = grid.grid_size
    return nz, ny, nx


def check_geometry(geometry: object) -> torch.Tensor:
    """Raise ``ValueError`` unless ``geometry`` is a floating ``(B, ..., 3)`` tensor."""
    if not isinstance(geometry, torch.Tensor):
        raise ValueError(f"geometry must be a torch.Tensor, got {type(geometry).__name__}")
    if geometry.dim() < 2 or geometry.shape[-1] != 3:
        raise ValueError("geometry must have shape (B, ..., 3), e.g. (B, Ncam, D, H, W, 3) frustum "
                         f"points in the LiDAR frame, got {tuple(geometry.shape)}")
    if not geometry.is_floating_point():
        raise ValueError(f"geometry must be a floating tensor, got {geometry.dtype}")
    return geometry


def compute_ranks(geometry: torch.Tensor, grid: VoxelGrid) -> torch.Tensor:
    """``(N,)`` int64 output row of each point of ``geometry (B, ..., 3)`` (flattened in
    C order), ``-1`` for points outside the grid."""
    check_geometry(geometry)
    batch = geometry.shape[0]
    points = geometry.reshape(batch, -1, 3)
    dtype = compute_dtype(geometry.dtype)
    params = grid.params(dtype, geometry.device)
    cells = torch.floor((points.to(dtype) - params[3:]) / params[:3])
    size = torch.tensor(grid.grid_size, dtype=dtype, device=geometry.device)
    inside = ((cells >= 0) & (cells < size)).all(dim=-1)
    cells = cells.masked_fill_(~inside[..., None], 0.0).long()
    nx, ny, nz = grid.grid_size
    b = torch.arange(batch, device=geometry.device).view(batch, 1)
    ranks = ((b * ny + cells[..., 1]) * nx + cells[..., 0]) * nz + cells[..., 2]
    return ranks.masked_fill_(~inside, -1).reshape(-1)


@dataclass(frozen=True, eq=False)
class BEVPoolPlan:
    """Everything the pooling needs from the geometry, computed once.

    ``ranks (N,)``: output row per point (-1 dropped), read by the backward gather;
    ``order (K,)``: the kept points sorted by rank; interval ``m`` is
    ``order[starts[m] : starts[m] + lengths[m]]`` and pools into row ``cells[m]``
    (all int64, on the geometry's device).  Compared by identity (``eq=False``): two plans
    are the same plan only if they are the same object, e.g. from one cache entry.
    """

    grid: VoxelGrid
    batch_size: int
    point_shape: tuple[int, ...]
    ranks: torch.Tensor
    order: torch.Tensor
    starts: torch.Tensor
    lengths: torch.Tensor
    cells: torch.Tensor

    @classmethod
    def build(cls, geometry: torch.Tensor, grid: VoxelGrid) -> "BEVPoolPlan":
        """Rank, sort and cut ``geometry (B, ..., 3)`` (e.g. ``(B, Ncam, D, H, W, 3)``)."""
        check_geometry(geometry)
        if geometry.shape[0] < 1:
            raise ValueError(f"geometry needs a batch size >= 1, got shape {tuple(geometry.shape)}")
        grid.check_batch_size(geometry.shape[0])
        ranks = compute_ranks(geometry, grid)
        kept = torch.nonzero(ranks >= 0).squeeze(1)
        sorted_ranks, perm = torch.sort(ranks[kept], stable=True)
        cells, lengths = torch.unique_consecutive(sorted_ranks, return_counts=True)
        starts = torch.cumsum(lengths, 0) - lengths
        return cls(grid, int(geometry.shape[0]), tuple(int(s) for s in geometry.shape[:-1]), ranks,
                   kept[perm], starts, lengths, cells)

    @property
    def num_points(self) -> int:
        """Points of the geometry, kept or not (rows the features must have)."""
        return int(self.ranks.shape[0])

    @property
    def num_kept(self) -> int:
        """Points inside the grid."""
        return int(self.order.shape[0])

    @property
    def num_rows(self) -> int:
        """Rows of the pooled ``(rows, C)`` tensor: ``B * ny * nx * nz``."""
        return self.batch_size * self.grid.num_cells

    @property
    def device(self) -> torch.device:
        return self.ranks.device

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        """``(B, Z, Y, X)``."""
        return (self.batch_size, *grid_shape(self.grid))

    def to(self, device: torch.device | str) -> "BEVPoolPlan":
        """The same plan with its index tensors on ``device``."""
        move = {name: getattr(self, name).to(device)
                for name in ("ranks", "order", "starts", "lengths", "cells")}
        return BEVPoolPlan(self.grid, self.batch_size, self.point_shape, **move)

    def describe(self) -> dict[str, object]:
        """Sizes for reports: points, kept points, intervals, cells, mean/max interval length."""
        lengths = self.lengths
        return {"points": self.num_points, "kept": self.num_kept, "intervals": int(lengths.numel()),
                "cells": self.num_rows, "grid_zyx": list(grid_shape(self.grid)),
                "mean_interval": float(lengths.double().mean()) if lengths.numel() else 0.0,
                "max_interval": int(lengths.max()) if lengths.numel() else 0,
                "kept_fraction": self.num_kept / max(1, self.num_points),
                "index_mib": sum(t.numel() * t.element_size() for t in (
                    self.ranks, self.order, self.starts, self.lengths, self.cells)) / 2**20,
                "point_shape": list(self.point_shape), "batch": self.batch_size,
                "grid_cells": math.prod(grid_shape(self.grid))}
