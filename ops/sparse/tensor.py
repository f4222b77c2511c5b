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


def dense(x: Any, channels_first: bool = True) -> Tensor:
    """Dense grid of a sparse tensor: (B, C, D, H, W) (or (B, D, H, W, C)); empty cells are 0.

    Differentiable w.r.t. the features.  Same result as spconv's ``SparseConvTensor.dense``.
    """
    features, coords = x.features, coords_of(x)
    d, h, w = (int(s) for s in x.spatial_shape)
    if features.dim() != 2 or features.shape[0] != coords.shape[0]:
        raise ValueError(f"features must be (N, C) with N = {coords.shape[0]} coords, got "
                         f"{tuple(features.shape)}")
    grid = features.new_zeros((int(x.batch_size), d, h, w, features.shape[1]))
    c = coords.to(device=features.device, dtype=torch.int64).unbind(1)
    grid = grid.index_put(c, features)
    return grid.permute(0, 4, 1, 2, 3).contiguous() if channels_first else grid


def to_bev(x: Any) -> Tensor:
    """BEV map (B, C * D, H, W) of a sparse tensor: ``bev[b, c*D + z, y, x]`` = feature c of
    voxel (b, z, y, x) (columns +x, rows +y; mmdet3d's channel order, see module doc)."""
    grid = dense(x, channels_first=True)
    b, c, d, h, w = grid.shape
    return grid.reshape(b, c * d, h, w)
