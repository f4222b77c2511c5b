"""Dense and brute-force references for sparse convolution (slow, small inputs only).

The dense reference scatters the features into a (B, C, D, H, W) grid whose inactive cells are
zero, runs ``torch.nn.functional.conv3d`` / ``conv_transpose3d`` and reads the result back:

* submanifold conv: at the input coordinates only (this *is* the definition of SubM);
* sparse conv: at every output cell whose receptive field holds an active input, found
  independently by convolving the occupancy grid with a ones kernel;
* inverse conv: at the coordinates of the conv being undone.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .coords import IntOrTriple, Triple, as_triple, kernel_offsets, validate_coords


def to_dense(features: Tensor, coords: Tensor, spatial_shape: IntOrTriple,
             batch_size: int) -> Tensor:
    """Scatter (N, C) features at (batch, z, y, x) coords into a zero (B, C, D, H, W) grid."""
    shape = validate_coords(coords, spatial_shape, batch_size)
    dense = features.new_zeros((batch_size, *shape, features.shape[1]))
    c = coords.long()
    dense[c[:, 0], c[:, 1], c[:, 2], c[:, 3]] = features
    return dense.permute(0, 4, 1, 2, 3)


def _sample(dense: Tensor, coords: Tensor) -> Tensor:
    """Rows of a (B, C, D, H, W) grid at (batch, z, y, x) coords -> (N, C)."""
    c = coords.long()
    return dense.permute(0, 2, 3, 4, 1)[c[:, 0], c[:, 1], c[:, 2], c[:, 3]]


def krsc_to_torch(weight: Tensor) -> Tensor:
    """spconv KRSC (C_out, kD, kH, kW, C_in) -> PyTorch conv3d (C_out, C_in, kD, kH, kW)."""
    return weight.permute(0, 4, 1, 2, 3)


def reference_sparse_conv3d(features: Tensor, coords: Tensor, spatial_shape: IntOrTriple,
                            batch_size: int, weight: Tensor, bias: Tensor | None = None,
                            stride: IntOrTriple = 1, padding: IntOrTriple = 0,
                            dilation: IntOrTriple = 1, subm: bool = False
                            ) -> tuple[Tensor, Tensor, Triple]:
    """(out_features, out_coords, out_spatial_shape) of spconv SparseConv3d / SubMConv3d."""
    k = tuple(int(v) for v in weight.shape[1:4])
    d = as_triple(dilation, "dilation")
    s = (1, 1, 1) if subm else as_triple(stride, "stride")
    p = tuple(v // 2 * e for v, e in zip(k, d)) if subm else as_triple(padding, "padding", 0)
    dense = to_dense(features, coords, spatial_shape, batch_size)
    out = F.conv3d(dense, krsc_to_torch(weight), bias, stride=s, padding=p, dilation=d)
    if subm:
        return _sample(out, coords), coords, tuple(dense.shape[2:])  # type: ignore[return-value]
    occupancy = to_dense(features.new_ones((coords.shape[0], 1)), coords, spatial_shape,
                         batch_size)
    hits = F.conv3d(occupancy, occupancy.new_ones((1, 1, *k)), stride=s, padding=p, dilation=d)
    out_coords = (hits[:, 0] > 0).nonzero().to(torch.int32)  # lexicographic (b, z, y, x)
    return _sample(out, out_coords), out_coords, tuple(out.shape[2:])  # type: ignore[return-value]


def reference_inverse_conv3d(features: Tensor, coords: Tensor, spatial_shape: IntOrTriple,
                             batch_size: int, weight: Tensor, out_coords: Tensor,
                             out_spatial_shape: IntOrTriple, bias: Tensor | None = None,
                             stride: IntOrTriple = 1, padding: IntOrTriple = 0,
                             dilation: IntOrTriple = 1) -> Tensor:
    """spconv SparseInverseConv3d via conv_transpose3d, read at ``out_coords`` (fine level)."""
    s, d = as_triple(stride, "stride"), as_triple(dilation, "dilation")
    p = as_triple(padding, "padding", 0)
    fine = as_triple(out_spatial_shape, "out_spatial_shape")
    dense = to_dense(features, coords, spatial_shape, batch_size)
    # conv_transpose3d weight is (C_in, C_out, k...).  Without padding it gives the full
    # result y_full[t] = sum x[o] w[j] over t = o*s + j*d; the inverse conv reads t = i + p,
    # which avoids output_padding's "< stride" limit on the fine extent.
    full = F.conv_transpose3d(dense, weight.permute(4, 0, 1, 2, 3), stride=s, dilation=d)
    grid = full.new_zeros((full.shape[0], full.shape[1], *fine))
    n = [max(0, min(f, t - pp)) for f, t, pp in zip(fine, full.shape[2:], p)]
    grid[:, :, :n[0], :n[1], :n[2]] = full[:, :, p[0]:p[0] + n[0], p[1]:p[1] + n[1],
                                           p[2]:p[2] + n[2]]
    if bias is not None:
        grid += bias.view(1, -1, 1, 1, 1)
    return _sample(grid, out_coords)


def brute_force_pairs(in_coords: Tensor, out_coords: Tensor, kernel_size: IntOrTriple,
                      stride: IntOrTriple = 1, padding: IntOrTriple = 0,
                      dilation: IntOrTriple = 1) -> set[tuple[int, int, int]]:
    """All (offset, in_row, out_row) with equal batch and i = o*s - p + j*d, testing every pair."""
    k, s, d = (as_triple(v, n) for v, n in ((kernel_size, "kernel_size"), (stride, "stride"),
                                            (dilation, "dilation")))
    p = as_triple(padding, "padding", 0)
    dev = in_coords.device
    taps = kernel_offsets(k, dev) * torch.tensor(d, device=dev)  # (K, 3)
    s_t, p_t = torch.tensor(s, device=dev), torch.tensor(p, device=dev)

    def flat(b: Tensor, zyx: Tensor) -> Tensor:  # injective for |coord| < 2**19, b < 2**20
        z, y, x = (zyx + 2 ** 19).unbind(-1)
        return ((b * 2 ** 20 + z) * 2 ** 20 + y) * 2 ** 20 + x

    i = in_coords.long()
    o = out_coords.long()
    key_in = flat(i[:, 0], i[:, 1:])[:, None]  # (Ni, 1)
    pairs = set()
    for j in range(taps.shape[0]):
        pos = o[:, 1:] * s_t - p_t + taps[j]  # input cell of each o
        match = key_in == flat(o[:, 0], pos)[None, :]  # (Ni, No)
        pairs.update((j, a, b) for a, b in match.nonzero().tolist())
    return pairs
