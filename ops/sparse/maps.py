"""Dense per-row views of a :class:`KernelMap`, used by the output-/input-stationary dataflows.

* ``out_in_map``: ``(num_out, K)`` int32, entry ``[o, j]`` is the input row feeding output
  ``o`` through offset ``j``, or -1.  Implicit GEMM (output-stationary) and fetch-on-demand
  read it; it is the "neighbour map" of TorchSparse++.
* ``in_out_map``: the same from the input side ``(num_in, K)``, for the input gradient.
* ``mask_order``: outputs sorted by their offset bitmask (TorchSparse++'s "sorted" implicit
  GEMM): rows with the same set of active offsets become neighbours, so a tile of rows
  skips the same empty offsets.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .kernel_map import KernelMap


def _dense_map(rows: Tensor, cols: Tensor, values: Tensor, num_rows: int, kernel_volume: int) -> Tensor:
    table = torch.full((num_rows, kernel_volume), -1, dtype=torch.int32, device=rows.device)
    table[rows.long(), cols] = values.to(torch.int32)
    return table


def _offset_ids(kmap: KernelMap) -> Tensor:
    counts = torch.tensor(kmap.pair_counts(), device=kmap.in_indices.device)
    return torch.repeat_interleave(torch.arange(kmap.kernel_volume, device=counts.device), counts)


def out_in_map(kmap: KernelMap) -> Tensor:
    """``(num_out, K)`` int32: input row of output ``o`` at offset ``j``, -1 where none."""
    return _dense_map(kmap.out_indices, _offset_ids(kmap), kmap.in_indices, kmap.num_out, kmap.kernel_volume)


def in_out_map(kmap: KernelMap) -> Tensor:
    """``(num_in, K)`` int32: output row fed by input ``i`` at offset ``j``, -1 where none."""
    return _dense_map(kmap.in_indices, _offset_ids(kmap), kmap.out_indices, kmap.num_in, kmap.kernel_volume)


def mask_order(neighbour_map: Tensor) -> Tensor:
    """Row permutation (int64) sorting rows of a ``(N, K)`` neighbour map by active-offset
    bitmask, descending, ties by row index (stable), so equal masks are contiguous."""
    active = (neighbour_map >= 0).to(torch.int64)
    kernel_volume = neighbour_map.shape[1]
    if kernel_volume <= 62:
        weights = torch.bitwise_left_shift(torch.ones(kernel_volume, dtype=torch.int64, device=active.device),
                                           torch.arange(kernel_volume - 1, -1, -1, device=active.device))
        keys = (active * weights).sum(dim=1)
        return torch.sort(keys, descending=True, stable=True).indices
    # wide kernels: lexicographic order of the mask bits via repeated stable sorts
    order = torch.arange(active.shape[0], device=active.device)
    for column in range(kernel_volume - 1, -1, -1):
        order = order[torch.sort(active[order, column], descending=True, stable=True).indices]
    return order
