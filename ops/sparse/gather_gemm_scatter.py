"""Gather-GEMM-scatter dataflow and the sparse conv entry points built on it.

For each kernel offset j: gather the input rows of its pairs, multiply by weight[:, j] and
index-add the result into the output rows.  Weights use spconv 2.x's KRSC layout
(out_channels, kD, kH, kW, in_channels); offset j is (kd, kh, kw) in C order.  Everything is
plain torch ops, so autograd works; fused forward/backward kernels come later.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .coords import IntOrTriple, Triple, as_triple, check_device, validate_coords
from .kernel_map import KernelMap, KernelMapCache
from .tensor import dense as _dense
from .tensor import to_bev as _to_bev


@dataclass(eq=False)
class SparseTensor:
    """Active voxels of one tensor level, spconv's SparseConvTensor.

    ``coords`` int32 (N, 4) = (batch, z, y, x) on the level's grid of ``spatial_shape``;
    ``tensor_stride`` is the level's stride w.r.t. the input grid.  ``cache`` holds the kernel
    maps and is shared (not copied) by every tensor a conv derives from this one.  spconv's
    names work too: ``indices``, ``replace_feature``, ``dense()``.
    """

    features: Tensor
    coords: Tensor
    spatial_shape: Triple
    batch_size: int
    tensor_stride: Triple = (1, 1, 1)
    cache: KernelMapCache = field(default_factory=KernelMapCache)

    def __post_init__(self) -> None:
        self.spatial_shape = validate_coords(self.coords, self.spatial_shape, self.batch_size)
        self.tensor_stride = as_triple(self.tensor_stride, "tensor_stride")
        check_features(self.features, self.coords)

    @property
    def indices(self) -> Tensor:
        """spconv's name of :attr:`coords`."""
        return self.coords

    def replace(self, features: Tensor, coords: Tensor | None = None,
                spatial_shape: Triple | None = None,
                tensor_stride: Triple | None = None) -> "SparseTensor":
        """New tensor with other features (and optionally another level), sharing the cache.

        With the same coordinates (``coords`` omitted or this tensor's own) and level, they are
        not validated again: only the features are checked (rows, device, floating dtype).
        """
        same_level = ((coords is None or coords is self.coords)
                      and (spatial_shape is None
                           or as_triple(spatial_shape, "spatial_shape") == self.spatial_shape)
                      and (tensor_stride is None
                           or as_triple(tensor_stride, "tensor_stride") == self.tensor_stride))
        if same_level:
            check_features(features, self.coords)
            out = copy.copy(self)  # shallow: coords and cache are shared, __post_init__ skipped
            out.features = features
            return out
        return SparseTensor(
            features, self.coords if coords is None else coords,
            self.spatial_shape if spatial_shape is None else spatial_shape, self.batch_size,
            self.tensor_stride if tensor_stride is None else tensor_stride, self.cache)

    def replace_feature(self, features: Tensor) -> "SparseTensor":
        """spconv's name of :meth:`replace` with new features only."""
        return self.replace(features)

    def dense(self, channels_first: bool = True) -> Tensor:
        """Dense grid (B, C, D, H, W) (or (B, D, H, W, C)), as spconv's ``dense()``."""
        return _dense(self, channels_first)

    def to_bev(self) -> Tensor:
        """BEV map (B, C * D, H, W), see :func:`.tensor.to_bev`."""
        return _to_bev(self)


def check_features(features: Tensor, coords: Tensor) -> None:
    """Features must be a floating (N, C) tensor on the coords' device with one row per voxel."""
    if not isinstance(features, Tensor):
        raise ValueError(f"features must be a torch.Tensor, got {type(features).__name__}")
    check_device(features, "features")
    if features.device != coords.device:
        raise ValueError(f"features are on {features.device} but coords on {coords.device}")
    if not features.is_floating_point():
        raise ValueError(f"features must be floating point, got dtype {features.dtype}")
    if features.dim() != 2 or features.shape[0] != coords.shape[0]:
        raise ValueError(f"features must have shape (N, C) with N = {coords.shape[0]} coords, "
                         f"got {tuple(features.shape)}")


def check_weight(weight: Tensor, features: Tensor, kernel_size: Triple | None = None) -> Triple:
    """Check a KRSC weight (C_out, kD, kH, kW, C_in) against the features; returns the kernel."""
    if not isinstance(weight, Tensor) or weight.dim() != 5:
        shape = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__
        raise ValueError(f"weight must have shape (out_channels, kD, kH, kW, in_channels) "
                         f"(spconv 2.x KRSC layout), got {shape}")
    if weight.shape[4] != features.shape[1]:
        raise ValueError(f"weight in_channels {weight.shape[4]} (last dim) != features channels "
                         f"{features.shape[1]}")
    if weight.dtype != features.dtype or weight.device != features.device:
        raise ValueError(f"weight ({weight.dtype}, {weight.device}) must match features "
                         f"({features.dtype}, {features.device})")
    k = (int(weight.shape[1]), int(weight.shape[2]), int(weight.shape[3]))
    if kernel_size is not None and k != kernel_size:
        raise ValueError(f"weight kernel {k} does not match the kernel map's {kernel_size}")
    return k


def gather_gemm_scatter(features: Tensor, weight: Tensor, kmap: KernelMap) -> Tensor:
    """Output features (kmap.num_out, C_out) of ``features`` convolved along ``kmap``."""
    check_weight(weight, features, kmap.kernel_size)
    if features.shape[0] != kmap.num_in:
        raise ValueError(f"features have {features.shape[0]} rows, the kernel map expects "
                         f"{kmap.num_in} inputs")
    c_out = weight.shape[0]
    w = weight.reshape(c_out, kmap.kernel_volume, weight.shape[4])
    out = features.new_zeros((kmap.num_out, c_out))
    for j, n in enumerate(kmap.pair_counts()):
        if n == 0:
            continue
        in_idx, out_idx = kmap.pairs(j)
        if kmap.kind == "subm" and n == kmap.num_in and j == kmap.kernel_volume // 2:
            out += features @ w[:, j].t()  # centre offset of subm is the identity map
            continue
        out.index_add_(0, out_idx, features.index_select(0, in_idx) @ w[:, j].t())
    return out


def _finish(x: SparseTensor, out: Tensor, bias: Tensor | None, kmap: KernelMap) -> SparseTensor:
    if bias is not None:
        if bias.shape != (out.shape[1],):
            raise ValueError(f"bias must have shape ({out.shape[1]},), got {tuple(bias.shape)}")
        out = out + bias
    return x.replace(out, kmap.out_coords, kmap.out_spatial_shape, kmap.out_stride)


def sparse_conv3d(x: SparseTensor, weight: Tensor, bias: Tensor | None = None,
                  stride: IntOrTriple = 1, padding: IntOrTriple = 0, dilation: IntOrTriple = 1,
                  subm: bool = False, indice_key: str | None = None) -> SparseTensor:
    """spconv SparseConv3d (``subm=False``) or SubMConv3d (``subm=True``, stride/padding unused)."""
    k = check_weight(weight, x.features)
    kmap = x.cache.conv_map(x.coords, x.spatial_shape, k, stride, padding, dilation, subm,
                            indice_key, x.batch_size, x.tensor_stride)
    return _finish(x, gather_gemm_scatter(x.features, weight, kmap), bias, kmap)


def sparse_inverse_conv3d(x: SparseTensor, weight: Tensor, indice_key: str,
                          bias: Tensor | None = None) -> SparseTensor:
    """spconv SparseInverseConv3d: undo the conv ``indice_key``; restores its input coords."""
    k = check_weight(weight, x.features)
    kmap = x.cache.inverse_map(x.coords, x.spatial_shape, k, indice_key)
    return _finish(x, gather_gemm_scatter(x.features, weight, kmap), bias, kmap)
