"""Vectorized torch voxelization: sort / unique / scatter, no Python loop over points.

This is the fast CPU path.  It only uses device-agnostic torch ops, so it is also the CUDA
fallback when Triton is missing, and the Triton path reuses its grouping stage
(:func:`assign_points`, :func:`unique_rows`).  Inputs are assumed validated (see :mod:`.api`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .grid import MAX_CELLS, VoxelGrid, compute_dtype


@dataclass(frozen=True)
class VoxelAssignment:
    """Where the kept points of a hard voxelization go.

    ``point_index[k]`` (a row of the input) is written to flat slot ``target[k]`` =
    ``voxel * max_points + slot`` of the output; ``voxel_keys`` are the kept voxels' linear keys
    (``b * cells + (z * ny + y) * nx + x``) in output order and ``num_points`` their counts."""

    point_index: torch.Tensor
    target: torch.Tensor
    voxel_keys: torch.Tensor
    num_points: torch.Tensor


def point_cells(points: torch.Tensor, grid: VoxelGrid,
                batch_idx: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, 3)`` int64 ``(z, y, x)`` cells (-1 rows outside) and ``(N,)`` int64 linear keys
    (``-1`` outside) of every point; ``batch_idx`` offsets keys by ``b * nx * ny * nz``."""
    dtype = compute_dtype(points.dtype)
    params = grid.params(dtype, points.device)
    cell = torch.floor((points[:, :3].to(dtype) - params[3:]) / params[:3])
    grid_size = torch.tensor(grid.grid_size, dtype=dtype, device=points.device)
    outside = ~((cell >= 0) & (cell < grid_size)).all(dim=1)
    cell = cell.masked_fill_(outside[:, None], -1.0).long()
    nx, ny, _ = grid.grid_size
    keys = (cell[:, 2] * ny + cell[:, 1]) * nx + cell[:, 0]
    if batch_idx is not None:
        keys += batch_idx.long() * grid.num_cells
    return cell.flip(1), keys.masked_fill_(outside, -1)


def decode_keys(keys: torch.Tensor, grid: VoxelGrid) -> torch.Tensor:
    """``(M, 4)`` int32 ``(b, z, y, x)`` of linear voxel keys."""
    nx, ny, _ = grid.grid_size
    batch, rest = keys // grid.num_cells, keys % grid.num_cells
    x, rest = rest % nx, rest // nx
    y, z = rest % ny, rest // ny
    return torch.stack([batch, z, y, x], dim=1).int()


def assign_points(keys: torch.Tensor, num_cells: int, batch_size: int, max_points: int,
                  max_voxels: int, deterministic: bool) -> VoxelAssignment:
    """Group points by key (``-1`` = dropped) with mmcv's hard-voxelize rules, per batch element.

    A stable sort puts each voxel's points together in input order, so a point's slot is its
    rank inside its group.  Deterministic mode orders voxels by first appearance (per batch
    element); otherwise by key.  Each batch element keeps its first ``max_voxels`` voxels."""
    device = keys.device
    valid_idx = torch.nonzero(keys >= 0).squeeze(1)
    sorted_keys, perm = torch.sort(keys[valid_idx], stable=True)
    point_sorted = valid_idx[perm]  # input rows grouped by voxel, input order inside a group
    ukeys, counts = torch.unique_consecutive(sorted_keys, return_counts=True)
    num_groups = ukeys.numel()
    starts = torch.cumsum(counts, 0) - counts
    group = torch.repeat_interleave(torch.arange(num_groups, device=device), counts)
    slot = torch.arange(point_sorted.numel(), device=device) - starts[group]
    ubatch = ukeys // num_cells
    if deterministic:  # first appearance, grouped by batch element
        order = torch.argsort(ubatch * keys.numel() + point_sorted[starts])
    else:
        order = torch.arange(num_groups, device=device)
    obatch = ubatch[order]
    per_batch = torch.bincount(obatch, minlength=batch_size)
    rank = torch.arange(num_groups, device=device) - (torch.cumsum(per_batch, 0) - per_batch)[obatch]
    keep = rank < max_voxels
    out_ordered = torch.where(keep, torch.cumsum(keep, 0) - 1, torch.full_like(rank, -1))
    group_out = torch.empty_like(out_ordered)
    group_out[order] = out_ordered
    point_out = group_out[group]
    kept = (point_out >= 0) & (slot < max_points)
    return VoxelAssignment(
        point_index=point_sorted[kept],
        target=point_out[kept] * max_points + slot[kept],
        voxel_keys=ukeys[order][keep],
        num_points=counts[order][keep].clamp(max=max_points).int(),
    )


def hard_voxelize_torch(points: torch.Tensor, grid: VoxelGrid, max_points: int, max_voxels: int,
                        deterministic: bool, batch_idx: torch.Tensor | None = None, batch_size: int = 1
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hard voxelization; coords are ``(M, 4)`` = (b, z, y, x) int32."""
    _, keys = point_cells(points, grid, batch_idx)
    plan = assign_points(keys, grid.num_cells, batch_size, max_points, max_voxels, deterministic)
    m = plan.voxel_keys.numel()
    voxels = points.new_zeros((m * max_points, points.shape[1]))
    voxels[plan.target] = points[plan.point_index]
    return voxels.view(m, max_points, points.shape[1]), decode_keys(plan.voxel_keys, grid), plan.num_points


def dynamic_voxelize_torch(points: torch.Tensor, grid: VoxelGrid) -> torch.Tensor:
    """``(N, 3)`` int32 ``(z, y, x)`` per point, -1 rows outside the range."""
    return point_cells(points, grid)[0].int()


def unique_rows(coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unique rows of an integer ``(N, K)`` tensor among rows without negative entries, sorted
    lexicographically: ``(unique (M, K) same dtype, inverse (N,) int64 with -1, valid (N,))``."""
    valid = (coords >= 0).all(dim=1)
    rows = coords[valid].long()
    inverse = torch.full((coords.shape[0],), -1, dtype=torch.int64, device=coords.device)
    if rows.shape[0] == 0:
        return coords.new_zeros((0, coords.shape[1])), inverse, valid
    extent = (rows.amax(dim=0) + 1).tolist()
    if math.prod(extent) < MAX_CELLS:  # pack each row in one int64: a 1-D sort is much faster
        strides = [math.prod(extent[k + 1:]) for k in range(len(extent))]
        keys = rows @ torch.tensor(strides, dtype=torch.int64, device=coords.device)
        ukeys, inv = torch.unique(keys, sorted=True, return_inverse=True)
        unique = torch.stack([(ukeys // s) % e for s, e in zip(strides, extent)], dim=1)
    else:
        unique, inv = torch.unique(rows, dim=0, sorted=True, return_inverse=True)
    inverse[valid] = inv
    return unique.to(coords.dtype), inverse, valid


def pool_torch(features: torch.Tensor, inverse: torch.Tensor, valid: torch.Tensor, num_voxels: int,
               mode: str) -> torch.Tensor:
    """Reduce rows of ``features`` into ``num_voxels`` rows by ``inverse`` (autograd-capable)."""
    feats, idx = features[valid], inverse[valid]
    channels = features.shape[1]
    if mode == "max":
        out = features.new_zeros((num_voxels, channels))
        return out.scatter_reduce(0, idx[:, None].expand(-1, channels), feats, "amax", include_self=False)
    out = features.new_zeros((num_voxels, channels)).index_add(0, idx, feats)
    if mode == "mean":
        counts = torch.bincount(idx, minlength=num_voxels).clamp(min=1)
        out = out / counts[:, None].to(out.dtype)
    return out
