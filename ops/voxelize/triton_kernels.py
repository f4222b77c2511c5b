"""Triton kernels for the GPU path of voxelization.

Three kernels; the grouping between them (sort, unique) stays in torch (:mod:`.cpu`), which
calls cub's radix sort on CUDA:

* ``_point_cells_kernel``: per point cell + linear key, fused (one read of the points);
  IEEE-rounded division so cells match the torch paths bit for bit.
* ``_copy_rows_kernel``: scatter the kept points into the dense ``(M, P, C)`` voxel tensor.
* ``_segment_pool_kernel``: mean / sum / max over each voxel's points, one program per voxel
  and channel block, looping over the voxel's sorted points: deterministic, no atomics.

Works on CPU tensors under ``TRITON_INTERPRET=1`` (set before importing triton), which the
tests use.  ``TRITON_AVAILABLE`` is False when triton cannot be imported.
"""
from __future__ import annotations

import torch

from .cpu import VoxelAssignment, assign_points, decode_keys, unique_rows
from .grid import VoxelGrid, compute_dtype

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised only where triton is absent
    triton = None
    TRITON_AVAILABLE = False
else:
    TRITON_AVAILABLE = True

_BLOCK = 256
_MODES = {"mean": 0, "sum": 1, "max": 2}


def _require_triton() -> None:
    if not TRITON_AVAILABLE:
        raise RuntimeError("triton is not installed; install triton to use the GPU voxelize kernels")


if TRITON_AVAILABLE:

    @triton.jit
    def _point_cells_kernel(points_ptr, stride_n, stride_c, batch_ptr, params_ptr, cells_ptr, keys_ptr,
                            n, nx, ny, nz, num_cells,
                            HAS_BATCH: tl.constexpr, IS_FP64: tl.constexpr, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        row = points_ptr + offs.to(tl.int64) * stride_n
        cdt = tl.float64 if IS_FP64 else tl.float32
        x = tl.load(row, mask=mask, other=-1.0).to(cdt)
        y = tl.load(row + stride_c, mask=mask, other=-1.0).to(cdt)
        z = tl.load(row + 2 * stride_c, mask=mask, other=-1.0).to(cdt)
        vx = tl.load(params_ptr + 0)
        vy = tl.load(params_ptr + 1)
        vz = tl.load(params_ptr + 2)
        if IS_FP64:
            cx = tl.floor((x - tl.load(params_ptr + 3)) / vx)
            cy = tl.floor((y - tl.load(params_ptr + 4)) / vy)
            cz = tl.floor((z - tl.load(params_ptr + 5)) / vz)
        else:
            cx = tl.floor(tl.math.div_rn(x - tl.load(params_ptr + 3), vx))
            cy = tl.floor(tl.math.div_rn(y - tl.load(params_ptr + 4), vy))
            cz = tl.floor(tl.math.div_rn(z - tl.load(params_ptr + 5), vz))
        inside = (cx >= 0) & (cx < nx) & (cy >= 0) & (cy < ny) & (cz >= 0) & (cz < nz) & mask
        ix = tl.where(inside, cx, -1.0).to(tl.int64)
        iy = tl.where(inside, cy, -1.0).to(tl.int64)
        iz = tl.where(inside, cz, -1.0).to(tl.int64)
        key = (iz * ny + iy) * nx + ix
        if HAS_BATCH:
            key += tl.load(batch_ptr + offs, mask=mask, other=0).to(tl.int64) * num_cells
        key = tl.where(inside, key, -1)
        out = cells_ptr + offs.to(tl.int64) * 3
        tl.store(out, iz.to(tl.int32), mask=mask)
        tl.store(out + 1, iy.to(tl.int32), mask=mask)
        tl.store(out + 2, ix.to(tl.int32), mask=mask)
        tl.store(keys_ptr + offs, key, mask=mask)

    @triton.jit
    def _copy_rows_kernel(src_ptr, stride_n, stride_c, src_index_ptr, dst_ptr, dst_index_ptr, k, c,
                          BLOCK_K: tl.constexpr, BLOCK_C: tl.constexpr):
        rows = tl.program_id(0) * BLOCK_K + tl.arange(0, BLOCK_K)
        cols = tl.arange(0, BLOCK_C)
        row_mask = rows < k
        src_rows = tl.load(src_index_ptr + rows, mask=row_mask, other=0)
        dst_rows = tl.load(dst_index_ptr + rows, mask=row_mask, other=0)
        for c0 in range(0, c, BLOCK_C):
            cc = c0 + cols
            mask = row_mask[:, None] & (cc < c)[None, :]
            vals = tl.load(src_ptr + src_rows[:, None] * stride_n + cc[None, :] * stride_c, mask=mask)
            tl.store(dst_ptr + dst_rows[:, None] * c + cc[None, :], vals, mask=mask)

    @triton.jit
    def _segment_pool_kernel(feat_ptr, stride_n, stride_c, order_ptr, starts_ptr, counts_ptr, out_ptr, c,
                             MODE: tl.constexpr, ACC_FP64: tl.constexpr,
                             BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
        voxel = tl.program_id(0)
        cols = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        col_mask = cols < c
        start = tl.load(starts_ptr + voxel)
        count = tl.load(counts_ptr + voxel)
        acc_dt = tl.float64 if ACC_FP64 else tl.float32
        init = float("-inf") if MODE == 2 else 0.0
        acc = tl.full((BLOCK_C,), init, acc_dt)
        for p0 in range(0, count, BLOCK_P):
            p = p0 + tl.arange(0, BLOCK_P)
            p_mask = p < count
            rows = tl.load(order_ptr + start + p, mask=p_mask, other=0)
            mask = p_mask[:, None] & col_mask[None, :]
            vals = tl.load(feat_ptr + rows[:, None] * stride_n + cols[None, :] * stride_c, mask=mask,
                           other=init).to(acc_dt)
            if MODE == 2:
                acc = tl.maximum(acc, tl.max(vals, axis=0))
            else:
                acc += tl.sum(vals, axis=0)
        if MODE == 0:
            acc = acc / count.to(acc_dt)
        tl.store(out_ptr + voxel.to(tl.int64) * c + cols, acc.to(out_ptr.dtype.element_ty), mask=col_mask)


def point_cells_triton(points: torch.Tensor, grid: VoxelGrid, batch_idx: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, 3)`` int32 ``(z, y, x)`` cells (-1 rows outside) and ``(N,)`` int64 keys (-1 outside)."""
    _require_triton()
    n = points.shape[0]
    dtype = compute_dtype(points.dtype)
    params = grid.params(dtype, points.device)
    cells = torch.empty((n, 3), dtype=torch.int32, device=points.device)
    keys = torch.empty((n,), dtype=torch.int64, device=points.device)
    if n:
        nx, ny, nz = grid.grid_size
        batch = batch_idx.contiguous() if batch_idx is not None else keys  # dummy pointer
        _point_cells_kernel[(triton.cdiv(n, _BLOCK),)](
            points, points.stride(0), points.stride(1), batch, params, cells, keys, n, nx, ny, nz,
            grid.num_cells, HAS_BATCH=batch_idx is not None, IS_FP64=dtype == torch.float64, BLOCK=_BLOCK)
    return cells, keys


def dynamic_voxelize_triton(points: torch.Tensor, grid: VoxelGrid) -> torch.Tensor:
    """``(N, 3)`` int32 ``(z, y, x)`` per point, -1 rows outside the range."""
    return point_cells_triton(points, grid)[0]


def hard_voxelize_triton(points: torch.Tensor, grid: VoxelGrid, max_points: int, max_voxels: int,
                         deterministic: bool, batch_idx: torch.Tensor | None = None, batch_size: int = 1
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hard voxelization; coords are ``(M, 4)`` = (b, z, y, x) int32."""
    _, keys = point_cells_triton(points, grid, batch_idx)
    plan: VoxelAssignment = assign_points(keys, grid.num_cells, batch_size, max_points, max_voxels,
                                          deterministic)
    m, c = plan.voxel_keys.numel(), points.shape[1]
    voxels = points.new_zeros((m, max_points, c))
    k = plan.point_index.numel()
    if k:
        block_c = min(triton.next_power_of_2(c), 64)
        _copy_rows_kernel[(triton.cdiv(k, 64),)](
            points, points.stride(0), points.stride(1), plan.point_index, voxels, plan.target, k, c,
            BLOCK_K=64, BLOCK_C=block_c)
    return voxels, decode_keys(plan.voxel_keys, grid), plan.num_points


class _SegmentPool(torch.autograd.Function):
    """Triton forward; backward in torch gathers (``max`` splits gradients among ties)."""

    @staticmethod
    def forward(ctx, features, inverse, valid, num_voxels, mode):  # type: ignore[override]
        idx = inverse[valid]
        rows = torch.nonzero(valid).squeeze(1)
        sorted_idx, perm = torch.sort(idx, stable=True)
        order = rows[perm]
        counts = torch.bincount(idx, minlength=num_voxels)
        starts = torch.cumsum(counts, 0) - counts
        c = features.shape[1]
        out = features.new_empty((num_voxels, c))
        if num_voxels and c:
            block_c = min(triton.next_power_of_2(c), 64)
            _segment_pool_kernel[(num_voxels, triton.cdiv(c, block_c))](
                features, features.stride(0), features.stride(1), order, starts, counts, out, c,
                MODE=_MODES[mode], ACC_FP64=features.dtype == torch.float64, BLOCK_P=16, BLOCK_C=block_c)
        ctx.mode = mode
        ctx.save_for_backward(features, inverse, valid, counts, out)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):  # type: ignore[override]
        features, inverse, valid, counts, out = ctx.saved_tensors
        idx = inverse[valid]
        grad = grad_out[idx]
        if ctx.mode == "mean":
            grad = grad / counts[idx, None].to(grad.dtype)
        elif ctx.mode == "max":
            is_max = (features[valid] == out[idx]).to(grad.dtype)
            ties = torch.zeros_like(out).index_add_(0, idx, is_max)
            grad = grad * is_max / ties[idx]
        grad_features = torch.zeros_like(features)
        grad_features[valid] = grad
        return grad_features, None, None, None, None


def voxel_pooling_triton(features: torch.Tensor, coords: torch.Tensor, mode: str
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pooled features ``(M, C)``, unique coords ``(M, K)`` and inverse ``(N,)`` (-1 ignored)."""
    _require_triton()
    unique, inverse, valid = unique_rows(coords)
    pooled = _SegmentPool.apply(features, inverse, valid, unique.shape[0], mode)
    return pooled, unique, inverse
