"""Two readable references of BEV pooling, written independently of the fast paths.

* :func:`pool_cumsum`: the LSS "cumsum trick" (Philion & Fidler, ``QuickCumsum`` in
  ``lift-splat-shoot/src/tools.py``): sort the points by rank, take a running sum over all of
  them, keep the last row of each rank and subtract the previous kept row.  Its custom
  backward is LSS's: every point of a run gets the gradient of its run.
* :func:`pool_index_add`: drop the points outside the grid and ``index_add_`` the rest into
  their rows (autograd differentiates it).

Both take ``features (N, C)`` and ``ranks (N,)`` (output row per point, -1 = dropped, see
:mod:`.plan`) and return the pooled ``(rows, C)``; :func:`bev_pool_reference` does the whole
op from the geometry with its own cell arithmetic (BEVFusion's), returning ``(B, C, Z, Y, X)``.
The cumsum trick sums in one running total, so in float32 its error grows with the number of
points (catastrophic cancellation), not with the points per cell.
"""
from __future__ import annotations

import torch

from ..voxelize.grid import VoxelGrid


class _QuickCumsum(torch.autograd.Function):
    """LSS ``QuickCumsum``: per-run sums of sorted rows, with a gather backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, sorted_ranks: torch.Tensor):  # type: ignore[override]
        x = x.cumsum(0)
        last = torch.ones(x.shape[0], device=x.device, dtype=torch.bool)
        last[:-1] = sorted_ranks[1:] != sorted_ranks[:-1]
        x, run_ranks = x[last], sorted_ranks[last]
        x = torch.cat((x[:1], x[1:] - x[:-1]))
        ctx.save_for_backward(last)
        ctx.mark_non_differentiable(run_ranks)
        return x, run_ranks

    @staticmethod
    def backward(ctx, grad_x: torch.Tensor, grad_ranks: torch.Tensor):  # type: ignore[override]
        (last,) = ctx.saved_tensors
        run_of_point = torch.cumsum(last, 0)
        run_of_point[last] -= 1
        return grad_x[run_of_point], None


def pool_cumsum(features: torch.Tensor, ranks: torch.Tensor, num_rows: int,
                order: torch.Tensor | None = None) -> torch.Tensor:
    """``(num_rows, C)`` sums by the LSS cumsum trick (see the module doc).  LSS sorts the
    kept points by rank on every call; ``order`` (the kept points' indices already sorted by
    rank, e.g. a plan's) skips that, so a benchmark can time the trick alone."""
    if order is None:
        kept = torch.nonzero(ranks >= 0).squeeze(1)
        order = kept[torch.argsort(ranks[kept])]
    x, r = features[order], ranks[order]
    out = features.new_zeros((num_rows, features.shape[1]))
    if r.numel() == 0:
        return out + 0.0 * features.sum()  # keep the graph for an all-dropped input
    sums, run_ranks = _QuickCumsum.apply(x, r)
    return out.index_put((run_ranks,), sums)


def pool_index_add(features: torch.Tensor, ranks: torch.Tensor, num_rows: int) -> torch.Tensor:
    """``(num_rows, C)`` sums by ``index_add_`` of the kept points."""
    kept = ranks >= 0
    out = features.new_zeros((num_rows, features.shape[1]))
    return out.index_add(0, ranks[kept], features[kept])


REFERENCES = {"cumsum": pool_cumsum, "index_add": pool_index_add}
"""Name -> reference pooling function."""


def reference_ranks(geometry: torch.Tensor, grid: VoxelGrid) -> torch.Tensor:
    """Ranks of ``geometry (B, ..., 3)`` the way BEVFusion's ``bev_pool`` writes it: cell
    indices per axis, a kept mask, then the row ``((b * Y + y) * X + x) * Z + z``."""
    batch = geometry.shape[0]
    dtype = torch.float64 if geometry.dtype == torch.float64 else torch.float32
    points = geometry.reshape(batch, -1, 3).to(dtype)
    lower = torch.tensor(grid.range_min, dtype=dtype)
    step = torch.tensor(grid.voxel_size, dtype=dtype)
    nx, ny, nz = grid.grid_size
    ijk = torch.floor((points - lower.to(points.device)) / step.to(points.device))
    x, y, z = ijk[..., 0], ijk[..., 1], ijk[..., 2]
    kept = (x >= 0) & (x < nx) & (y >= 0) & (y < ny) & (z >= 0) & (z < nz)  # NaN: False
    x, y, z = (torch.where(kept, v, 0.0).long() for v in (x, y, z))
    b = torch.arange(batch, device=geometry.device).view(batch, 1)
    rank = ((b * ny + y) * nx + x) * nz + z
    return torch.where(kept, rank, -1).reshape(-1)


def bev_pool_reference(features: torch.Tensor, geometry: torch.Tensor, grid: VoxelGrid,
                       method: str = "index_add") -> torch.Tensor:
    """``(B, C, Z, Y, X)`` sums of ``features (N, C)`` over the cells of ``geometry (B, ..., 3)``."""
    if method not in REFERENCES:
        raise ValueError(f"method must be one of {sorted(REFERENCES)}, got {method!r}")
    batch = geometry.shape[0]
    nx, ny, nz = grid.grid_size
    pooled = REFERENCES[method](features, reference_ranks(geometry, grid), batch * grid.num_cells)
    return pooled.view(batch, ny, nx, nz, -1).permute(0, 4, 3, 1, 2)
