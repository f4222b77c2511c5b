"""User-facing helpers of sparse tensors: dense grids, BEV maps and backend-neutral accessors.

They accept our :class:`~.gather_gemm_scatter.SparseTensor` and, duck-typed, spconv's
``SparseConvTensor`` (which names its coordinates ``indices``), so model code written against
them runs on either backend (see :mod:`.backends`).  This module imports no other sparse
module at run time, so ``SparseTensor`` itself may import it to offer ``.dense()`` methods.

BEV convention (``perception.structures.conventions``): a BEV map is ``(B, C, H, W)`` with
columns along +x and rows along +y.  With coords ``(b, z, y, x)`` the dense grid is
``dense[b, c, z, y, x]`` and :func:`to_bev` folds depth into channels channel-major, exactly
as mmdet3d's ``SparseEncoder`` does (``dense.view(B, C * D, H, W)``)::

    bev[b, c * D + z, y, x] == feature c of the voxel (b, z, y, x)
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def coords_of(x: Any) -> Tensor:
    """int32 (N, 4) (batch, z, y, x) coordinates of our SparseTensor or spconv's tensor."""
    coords = getattr(x, "coords", None)
    if coords is None:
        coords = getattr(x, "indices", None)
    if not isinstance(coords, Tensor):
        raise ValueError(f"expected a sparse tensor with .coords (ours) or .indices (spconv), "
                         f"got {type(x).__name__}")
    return coords


def replace_features(x: Any, features: Tensor) -> Any:
    """Same voxels with new (N, C') features, for ours (``replace``) or spconv
    (``replace_feature``); the kernel-map cache / indice dict is shared, not copied."""
    if hasattr(x, "replace_feature"):
        return x.replace_feature(features)
    return x.replace(features)


class _ScatterChannelsFirst(torch.autograd.Function):
    """``(N, C)`` features -> zero ``(B, C, S)`` grid with ``grid[b, :, cell] = features[n]``.

    Written straight into the channels-first layout (a ``(B, S, C)`` view of it): no
    channels-last grid and no permuting copy of the mostly empty volume; the backward gathers
    the voxels' gradient rows (no full-grid copies, which an in-place op on a view would make).
    """

    @staticmethod
    def forward(ctx: Any, features: Tensor, batch: Tensor, cell: Tensor, batch_size: int,
                cells: int) -> Tensor:
        grid = features.new_zeros((batch_size, features.shape[1], cells))
        grid.permute(0, 2, 1).index_put_((batch, cell), features)
        ctx.save_for_backward(batch, cell)
        return grid

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        batch, cell = ctx.saved_tensors
        grad_features = grad.permute(1, 0, 2)[:, batch, cell].t().contiguous()
        return grad_features, None, None, None, None


def dense(x: Any, channels_first: bool = True) -> Tensor:
    """Dense grid of a sparse tensor: (B, C, D, H, W) (or (B, D, H, W, C)); empty cells are 0.

    Differentiable w.r.t. the features.  Same result as spconv's ``SparseConvTensor.dense``.
    """
    features, coords = x.features, coords_of(x)
    d, h, w = (int(s) for s in x.spatial_shape)
    if features.dim() != 2 or features.shape[0] != coords.shape[0]:
        raise ValueError(f"features must be (N, C) with N = {coords.shape[0]} coords, got "
                         f"{tuple(features.shape)}")
    c = coords.to(device=features.device, dtype=torch.int64).unbind(1)
    if not channels_first:
        grid = features.new_zeros((int(x.batch_size), d, h, w, features.shape[1]))
        return grid.index_put(c, features)
    cell = (c[1] * h + c[2]) * w + c[3]
    grid = _ScatterChannelsFirst.apply(features, c[0], cell, int(x.batch_size), d * h * w)
    return grid.view(int(x.batch_size), features.shape[1], d, h, w)


def to_bev(x: Any) -> Tensor:
    """BEV map (B, C * D, H, W) of a sparse tensor: ``bev[b, c*D + z, y, x]`` = feature c of
    voxel (b, z, y, x) (columns +x, rows +y; mmdet3d's channel order, see module doc)."""
    grid = dense(x, channels_first=True)
    b, c, d, h, w = grid.shape
    return grid.reshape(b, c * d, h, w)
