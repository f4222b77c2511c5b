"""Plain-Python reference of the flattened-window ops: loops over voxels and groups, tuple
sort keys, an explicit softmax.  Slow; the tests compare the fast paths against it.

Same conventions as :mod:`.api`: coords ``(N, 3)`` ``(b, y, x)``, ``window_shape (wx, wy)``.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from .plan import ORDERS


def serpentine_key_reference(b: int, y: int, x: int, window_shape: Sequence[int],
                             order: str) -> tuple[int, ...]:
    """Sort key of one voxel: (batch, window row, window column walked in serpentine, then
    the in-window column and row, both walked in serpentine)."""
    assert order in ORDERS, order
    wx, wy = window_shape
    if order.endswith("_shift"):
        x, y = x + wx // 2, y + wy // 2
    if order.startswith("x"):  # rows of windows along y, each walked along x
        along, across, w_along, w_across = x, y, wx, wy
    else:
        along, across, w_along, w_across = y, x, wy, wx
    row, col = across // w_across, along // w_along
    in_col, in_row = along % w_along, across % w_across
    if in_col % 2 == 1:
        in_row = -in_row  # columns of a window alternate up / down
    if row % 2 == 1:  # odd rows of windows are walked backwards, windows and insides alike
        col, in_col, in_row = -col, -in_col, -in_row
    return (b, row, col, in_col, in_row)


def flatten_order_reference(coords: Tensor, window_shape: Sequence[int], order: str) -> Tensor:
    """Voxel rows sorted by :func:`serpentine_key_reference` (stable): ``(N,)`` int64."""
    rows = coords.tolist()
    keyed = sorted(range(len(rows)), key=lambda i: serpentine_key_reference(*rows[i],
                                                                            window_shape, order))
    return torch.tensor(keyed, dtype=torch.int64)


def group_padding_reference(counts: Sequence[int], group_size: int
                            ) -> tuple[list[int], list[bool], list[bool]]:
    """Per padded slot: sorted position read, valid-key flag, primary flag (see
    :func:`.api.group_padding`), built element by element."""
    pad_index, key_valid, primary = [], [], []
    start = 0
    for n in counts:
        padded = math.ceil(n / group_size) * group_size
        for p in range(padded):
            if p < n:
                src, valid = p, True
            else:
                last = min(n, group_size)
                src = n - last + (p - n) % last
                group_start = (p // group_size) * group_size
                valid = src < group_start  # an item of an earlier group: a new key here
            pad_index.append(start + src)
            key_valid.append(valid)
            primary.append(p < n)
        start += n
    return pad_index, key_valid, primary


def group_attention_reference(q: Tensor, k: Tensor, v: Tensor, gather: Sequence[int],
                              key_valid: Sequence[bool], primary: Sequence[bool],
                              group_size: int, num_heads: int) -> Tensor:
    """Attention group by group and head by head with an explicit softmax over the valid
    keys; each voxel's output comes from its primary slot only."""
    n, c = q.shape
    d = c // num_heads
    out = torch.zeros_like(q)
    for start in range(0, len(gather), group_size):
        slots = range(start, start + group_size)
        keys = [s for s in slots if key_valid[s]]
        for s in slots:
            if not primary[s]:
                continue  # a duplicate: its voxel's output comes from its primary slot
            row = gather[s]
            for h in range(num_heads):
                cols = slice(h * d, (h + 1) * d)
                scores = torch.stack([q[row, cols] @ k[gather[t], cols] for t in keys]) / math.sqrt(d)
                weights = torch.exp(scores - scores.max())
                weights = weights / weights.sum()
                out[row, cols] = sum(w * v[gather[t], cols] for w, t in zip(weights, keys))
    return out


def scatter_to_bev_reference(features: Tensor, coords: Tensor, batch_size: int,
                             sparse_shape: Sequence[int]) -> Tensor:
    """Dense ``(B, C, H, W)`` BEV, one voxel at a time: ``bev[b, :, y, x] = features[i]``."""
    height, width = sparse_shape
    bev = torch.zeros(batch_size, features.shape[1], height, width, dtype=features.dtype)
    for i, (b, y, x) in enumerate(coords.tolist()):
        bev[b, :, y, x] = features[i]
    return bev
