"""Implicit GEMM (output-stationary): one matmul per tile of outputs over all its neighbours.

For a tile of ``tile_rows`` outputs, the K neighbours' features (via the out->in neighbour
map; a missing neighbour reads an appended zero row) form a ``(tile, K * C_in)`` buffer that
is multiplied by the ``(K * C_in, C_out)`` weight in a single matmul.  No scatter: every
output row is written once.

* ``sorted=False``: tiles in output order, all K offsets (TorchSparse++ "unsorted").
* ``sorted=True``: tiles over the outputs reordered by ``mask_order`` (rows with the same
  set of active offsets are contiguous), and each tile's reduction runs over only the
  offsets active in some row of the tile, so empty offsets cost nothing.

Precision: the whole K * C_in reduction is one matmul in the input dtype (MKL/oneDNN
accumulate bf16/fp16 in fp32 internally); the result is written in the input dtype.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .views import as_view


def implicit_gemm_forward(features: Tensor, weight: Tensor, kmap, tile_rows: int = 1024,
                          sorted: bool = True) -> Tensor:  # noqa: A002 (TorchSparse's name)
    """(num_out, C_out) output of the sparse conv, tile by tile (see module doc)."""
    view = as_view(kmap)
    c_out, c_in, k = weight.shape[0], weight.shape[4], view.kernel_volume
    out = features.new_empty((view.num_out, c_out))
    if view.num_out == 0:
        return out
    padded = torch.cat([features, features.new_zeros((1, c_in))])
    w = weight.permute(1, 2, 3, 4, 0).reshape(k, c_in, c_out)  # row block j = W_j^T
    if not sorted:
        w_all = w.reshape(k * c_in, c_out)
        nmap = view.neighbours
        for lo in range(0, view.num_out, tile_rows):
            hi = min(view.num_out, lo + tile_rows)
            rows = padded.index_select(0, nmap[lo:hi].reshape(-1)).view(hi - lo, k * c_in)
            torch.mm(rows, w_all, out=out[lo:hi])
        return out
    nmap, order = view.sorted_neighbours, view.order
    for lo in range(0, view.num_out, tile_rows):
        hi = min(view.num_out, lo + tile_rows)
        tile = nmap[lo:hi]
        active = (tile != view.num_in).any(dim=0).nonzero().squeeze(1)
        if active.numel() == 0:
            out.index_fill_(0, order[lo:hi], 0)
            continue
        idx = tile if active.numel() == k else tile.index_select(1, active)
        rows = padded.index_select(0, idx.reshape(-1)).view(hi - lo, -1)
        w_tile = w.index_select(0, active).reshape(-1, c_out)
        out.index_copy_(0, order[lo:hi], rows @ w_tile)
    return out
