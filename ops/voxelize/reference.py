"""Plain-PyTorch reference voxelization: slow, readable, mirrors mmcv's CPU loops.

Used only to check the fast paths.  Inputs are assumed validated (see :mod:`.api`).
"""
from __future__ import annotations

import torch

from .grid import VoxelGrid, compute_dtype


def point_cells_reference(points: torch.Tensor, grid: VoxelGrid) -> torch.Tensor:
    """``(N, 3)`` int64 ``(z, y, x)`` cell of every point, rows of -1 outside the range / NaN."""
    dtype = compute_dtype(points.dtype)
    params = grid.params(dtype, points.device)
    voxel_size, range_min = params[:3], params[3:]
    cell = torch.floor((points[:, :3].to(dtype) - range_min) / voxel_size)  # (N, 3) as x, y, z
    grid_size = torch.tensor(grid.grid_size, dtype=dtype, device=points.device)
    inside = ((cell >= 0) & (cell < grid_size)).all(dim=1)
    cell = torch.where(inside[:, None], cell, torch.full_like(cell, -1.0))
    return cell.long().flip(1)


def dynamic_voxelize_reference(points: torch.Tensor, grid: VoxelGrid) -> torch.Tensor:
    """``(N, 3)`` int32 cells, like :func:`point_cells_reference`."""
    return point_cells_reference(points, grid).int()


def hard_voxelize_reference(points: torch.Tensor, grid: VoxelGrid, max_points: int,
                            max_voxels: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """mmcv's ``hard_voxelize`` loop: voxels in order of first appearance, the first
    ``max_points`` points of each voxel in input order, new voxels ignored after ``max_voxels``."""
    cells = point_cells_reference(points, grid).tolist()
    voxel_of_cell: dict[tuple[int, int, int], int] = {}
    voxels = points.new_zeros((max_voxels, max_points, points.shape[1]))
    coords: list[tuple[int, int, int]] = []
    num_points: list[int] = []
    for i, cell in enumerate(cells):
        if cell[0] < 0:
            continue  # outside the range
        key = (cell[0], cell[1], cell[2])
        v = voxel_of_cell.get(key)
        if v is None:
            if len(coords) >= max_voxels:
                continue  # no room for a new voxel; later points of kept voxels still count
            v = len(coords)
            voxel_of_cell[key] = v
            coords.append(key)
            num_points.append(0)
        if num_points[v] < max_points:
            voxels[v, num_points[v]] = points[i]
            num_points[v] += 1
    m = len(coords)
    return (voxels[:m].clone(), torch.tensor(coords, dtype=torch.int32).reshape(m, 3).to(points.device),
            torch.tensor(num_points, dtype=torch.int32, device=points.device))


def hard_voxelize_batch_reference(points_list: list[torch.Tensor], grid: VoxelGrid, max_points: int,
                                  max_voxels: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample :func:`hard_voxelize_reference`, concatenated, coords ``(M, 4)`` = (b, z, y, x)."""
    outs = [hard_voxelize_reference(p, grid, max_points, max_voxels) for p in points_list]
    coords = [torch.cat([torch.full_like(c[:, :1], b), c], dim=1) for b, (_, c, _) in enumerate(outs)]
    return torch.cat([o[0] for o in outs]), torch.cat(coords), torch.cat([o[2] for o in outs])


def voxel_pooling_reference(features: torch.Tensor, coords: torch.Tensor, mode: str
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pool features of points sharing a coordinate row (rows with a negative entry ignored);
    voxels sorted lexicographically by coordinate.  ``amax`` splits gradients among ties."""
    rows_of: dict[tuple[int, ...], list[int]] = {}
    for i, row in enumerate(coords.tolist()):
        if min(row) >= 0:
            rows_of.setdefault(tuple(row), []).append(i)
    keys = sorted(rows_of)
    inverse = torch.full((coords.shape[0],), -1, dtype=torch.int64, device=coords.device)
    pooled = []
    for v, key in enumerate(keys):
        idx = torch.tensor(rows_of[key], device=features.device)
        inverse[idx] = v
        group = features[idx]
        if mode == "mean":
            pooled.append(group.mean(dim=0))
        elif mode == "sum":
            pooled.append(group.sum(dim=0))
        else:
            pooled.append(group.amax(dim=0))
    out = torch.stack(pooled) if pooled else features.new_zeros((0, features.shape[1]))
    ucoords = torch.tensor(keys, dtype=coords.dtype, device=coords.device).reshape(len(keys), coords.shape[1])
    return out, ucoords, inverse
