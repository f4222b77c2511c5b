"""Flattened-window ops, vectorized torch (any device), with a fused Triton attention on CUDA.

Coordinates are BEV ``(b, y, x)`` integer rows in a ``(H, W)`` grid (``sparse_shape``;
columns along +x, rows along +y as in ``perception.structures.conventions``); collapse the
``z`` of ``(b, z, y, x)`` voxels into pillars first.  ``window_shape`` is ``(wx, wy)`` (x
first, as in FlatFormer's and SST's configs).  A *shifted* order moves every voxel by
``(wx // 2, wy // 2)`` before windowing, so shifted windows straddle unshifted borders.

Serpentine orders (FlatFormer's): order ``x`` walks the rows of windows (``y`` window index
ascending), each row along x, alternately left-to-right and right-to-left; inside a window
it walks column by column along the same direction, each column alternately up and down,
so consecutive cells of a window are neighbours and a group of ``g`` consecutive voxels is
a compact patch elongated along x.  Order ``y`` is the same with x and y swapped.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

from .plan import (ORDERS, FlattenPlan, GroupLayout, GroupPadding, WindowBuckets,
                   check_bev_coords, check_positive_pair)


def num_windows(extent: int, window: int) -> int:
    """Windows along an axis of ``extent`` cells, enough for the half-window shift too."""
    return -(-extent // window) + 1


def parse_order(order: str) -> tuple[str, bool]:
    """``'x' | 'x_shift' | 'y' | 'y_shift'`` -> (axis, shifted); ValueError otherwise."""
    if order not in ORDERS:
        raise ValueError(f"unknown flatten order {order!r}; known: {ORDERS}")
    return order[0], order.endswith("_shift")


def window_coords(coords: Tensor, window_shape: int | Sequence[int], shift: bool = False
                  ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(win_x, win_y, off_x, off_y)`` int64 of ``(N, 3)`` ``(b, y, x)`` coords: the window
    column / row and the offset inside the window (``shift``: half-window shifted grid)."""
    wx, wy = check_positive_pair(window_shape, "window_shape")
    y, x = coords[:, 1].long(), coords[:, 2].long()
    if shift:
        x, y = x + wx // 2, y + wy // 2
    return x // wx, y // wy, x % wx, y % wy


def window_index(coords: Tensor, sparse_shape: Sequence[int], window_shape: int | Sequence[int],
                 shift: bool = False) -> tuple[Tensor, Tensor]:
    """Window index ``(b * NWY + win_y) * NWX + win_x`` (unique across the batch) and
    in-window offset ``off_y * wx + off_x`` of every voxel, both ``(N,)`` int64."""
    wx, wy = check_positive_pair(window_shape, "window_shape")
    height, width = sparse_shape
    win_x, win_y, off_x, off_y = window_coords(coords, (wx, wy), shift)
    nwx, nwy = num_windows(width, wx), num_windows(height, wy)
    return (coords[:, 0].long() * nwy + win_y) * nwx + win_x, off_y * wx + off_x


def flatten_keys(coords: Tensor, sparse_shape: Sequence[int], window_shape: int | Sequence[int],
                 order: str) -> Tensor:
    """``(N,)`` int64 sort key of the serpentine ``order`` (module doc); batch most significant."""
    axis, shift = parse_order(order)
    wx, wy = check_positive_pair(window_shape, "window_shape")
    height, width = sparse_shape
    win_x, win_y, off_x, off_y = window_coords(coords, (wx, wy), shift)
    if axis == "x":  # advance along x: a = along, c = across
        win_a, win_c, off_a, off_c, wa, wc = win_x, win_y, off_x, off_y, wx, wy
        n_along, n_across = num_windows(width, wx), num_windows(height, wy)
    else:
        win_a, win_c, off_a, off_c, wa, wc = win_y, win_x, off_y, off_x, wy, wx
        n_along, n_across = num_windows(height, wy), num_windows(width, wx)
    odd_row = win_c % 2 == 1
    col = torch.where(odd_row, n_along - 1 - win_a, win_a)
    inner = off_a * wc + torch.where(off_a % 2 == 1, wc - 1 - off_c, off_c)
    inner = torch.where(odd_row, wa * wc - 1 - inner, inner)
    return ((coords[:, 0].long() * n_across + win_c) * n_along + col) * (wa * wc) + inner


def sort_order(keys: Tensor) -> tuple[Tensor, Tensor]:
    """Stable ascending permutation of ``keys`` and its inverse (both ``(N,)`` int64)."""
    perm = torch.sort(keys, stable=True).indices
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(perm.numel(), device=perm.device)
    return perm, inverse


def group_padding(counts: Tensor, group_size: int) -> GroupPadding:
    """Equal-size groups over a sequence made of ``counts[b]`` consecutive items per batch
    element: each element is padded to a multiple of ``group_size`` by repeating its last
    ``L = min(n, g)`` items cyclically (slot ``p >= n`` reads item ``n - L + (p - n) % L``).

    With ``n >= g`` the last group is then exactly the element's last ``g`` items (every key
    valid, FlatFormer's padding); with ``n < g`` the one group repeats the items and the
    repeats are masked as keys.  An empty element has no group.
    """
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group_size must be a positive int, got {group_size!r}")
    device, g = counts.device, group_size
    counts = counts.long()
    padded = (counts + g - 1) // g * g
    starts, pstarts = torch.cumsum(counts, 0) - counts, torch.cumsum(padded, 0) - padded
    total = int(padded.sum())
    batch = torch.repeat_interleave(torch.arange(counts.numel(), device=device), padded,
                                    output_size=total)
    p = torch.arange(total, device=device) - pstarts[batch]
    n = counts[batch]
    last = torch.minimum(n, torch.full_like(n, g))
    real = p < n
    src = torch.where(real, p, n - last + (p - n) % last.clamp(min=1))
    key_mask = real | (src < p // g * g)  # a repeat of an item of its own group is masked
    item_batch = torch.repeat_interleave(torch.arange(counts.numel(), device=device), counts,
                                         output_size=int(counts.sum()))
    unpad = torch.arange(item_batch.numel(), device=device) - starts[item_batch] + pstarts[item_batch]
    return GroupPadding(pad_index=starts[batch] + src, unpad_index=unpad,
                        key_mask=key_mask.view(-1, g), primary=real, group_batch=batch[::g],
                        group_size=g)


def build_plan(coords: Tensor, batch_size: int, sparse_shape: Sequence[int],
               window_shape: int | Sequence[int], group_size: int) -> FlattenPlan:
    """The :class:`FlattenPlan` of a frame: four stable sorts (keys by the Triton kernel on
    CUDA), one shared padding; ``coords`` are ``(N, 3)`` ``(b, y, x)``."""
    shape = check_positive_pair(tuple(sparse_shape), "sparse_shape")
    wshape = check_positive_pair(window_shape, "window_shape")
    coords = check_bev_coords(coords, shape, batch_size)
    counts = torch.bincount(coords[:, 0], minlength=batch_size)
    padding = group_padding(counts, group_size)
    key_mask = None if bool(padding.key_mask.all()) else padding.key_mask
    plan = FlattenPlan({}, {}, padding, counts, wshape, shape)
    keys = flatten_keys
    if _use_triton(coords, "auto"):  # one fused pass per order on CUDA
        from .triton_kernels import flatten_keys_triton as keys
    for order in ORDERS:
        perm, inverse = sort_order(keys(coords, shape, wshape, order))
        plan.perms[order], plan.inverses[order] = perm, inverse
        plan.layouts[order] = GroupLayout(
            gather=perm[padding.pad_index], scatter=padding.unpad_index[inverse],
            key_mask=key_mask, primary=padding.primary, num_groups=padding.num_groups,
            group_size=group_size)
    return plan


def window_partition(coords: Tensor, batch_size: int, sparse_shape: Sequence[int],
                     window_shape: int | Sequence[int], shift: bool = False) -> GroupLayout:
    """SST's equal-shape windows as a :class:`GroupLayout`: one group per non-empty window,
    every window padded to the largest window's count (padding slots repeat the window's
    first voxel and are masked as keys); voxels in a window follow their in-window offset."""
    shape = check_positive_pair(tuple(sparse_shape), "sparse_shape")
    wshape = check_positive_pair(window_shape, "window_shape")
    coords = check_bev_coords(coords, shape, batch_size)
    device = coords.device
    if coords.shape[0] == 0:
        empty = torch.zeros(0, dtype=torch.int64, device=device)
        return GroupLayout(empty, empty, None, empty.bool(), 0, 1)
    win, offset = window_index(coords, shape, wshape, shift)
    perm, _ = sort_order(win * (wshape[0] * wshape[1]) + offset)
    _, counts = torch.unique_consecutive(win[perm], return_counts=True)
    size = int(counts.max())
    starts = torch.cumsum(counts, 0) - counts
    window_of = torch.repeat_interleave(torch.arange(counts.numel(), device=device), counts)
    rank = torch.arange(perm.numel(), device=device) - starts[window_of]
    slots = window_of * size + rank
    key_mask = (torch.arange(size, device=device)[None, :] < counts[:, None])
    gather = perm[starts].repeat_interleave(size)  # every slot: the window's first voxel
    gather[slots] = perm
    scatter = torch.empty_like(perm)
    scatter[perm] = slots
    return GroupLayout(gather, scatter, None if bool(key_mask.all()) else key_mask,
                       key_mask.reshape(-1), counts.numel(), size)


def uses_triton(tensor: Tensor, backend: str = "auto") -> bool:
    """Whether :func:`group_attention` on ``tensor`` with ``backend`` runs the fused Triton
    kernel (``'auto'``: on CUDA when triton is installed); ValueError on a bad backend."""
    return _use_triton(tensor, backend)


def window_buckets(coords: Tensor, batch_size: int, sparse_shape: Sequence[int],
                   window_shape: int | Sequence[int], shift: bool = False,
                   bounds: Sequence[int] = (30, 60)) -> WindowBuckets:
    """SST's equal-shape windows padded per size bucket (its inference "drop levels"): a
    window of ``n`` voxels goes to the first bucket with ``n <= bounds[j]``, windows fuller
    than every bound to a last bucket, and each bucket's windows are padded to the bucket's
    fullest window (SST pads to the bound itself, never less: this baseline is the stronger
    one).  Slots, masks and in-window order as :func:`window_partition`."""
    bounds = [int(b) for b in bounds]
    if any(b < 1 for b in bounds) or bounds != sorted(set(bounds)):
        raise ValueError(f"bounds must be increasing positive ints, got {bounds}")
    shape = check_positive_pair(tuple(sparse_shape), "sparse_shape")
    wshape = check_positive_pair(window_shape, "window_shape")
    coords = check_bev_coords(coords, shape, batch_size)
    device = coords.device
    scatter = torch.zeros(coords.shape[0], dtype=torch.int64, device=device)
    if coords.shape[0] == 0:
        return WindowBuckets((), scatter)
    win, offset = window_index(coords, shape, wshape, shift)
    perm, _ = sort_order(win * (wshape[0] * wshape[1]) + offset)
    _, counts = torch.unique_consecutive(win[perm], return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    window_of = torch.repeat_interleave(torch.arange(counts.numel(), device=device), counts)
    rank = torch.arange(perm.numel(), device=device) - starts[window_of]
    bucket_of = torch.bucketize(counts, torch.tensor(bounds, device=device))
    layouts, first_slot = [], 0
    for j in range(len(bounds) + 1):
        windows = torch.nonzero(bucket_of == j)[:, 0]
        if windows.numel() == 0:
            continue
        size = int(counts[windows].max())  # SST pads to the bound; its fullest is <= that
        local = torch.full_like(counts, -1)
        local[windows] = torch.arange(windows.numel(), device=device)
        mine = local[window_of] >= 0  # sorted voxels of this bucket's windows
        slots = local[window_of[mine]] * size + rank[mine]
        gather = perm[starts[windows]].repeat_interleave(size)  # padding: the first voxel
        gather[slots] = perm[mine]
        key_mask = torch.arange(size, device=device)[None, :] < counts[windows, None]
        scatter[perm[mine]] = slots + first_slot
        layouts.append(GroupLayout(gather, scatter.new_zeros(0), None if bool(key_mask.all())
                                   else key_mask, key_mask.reshape(-1), windows.numel(), size))
        first_slot += windows.numel() * size
    return WindowBuckets(tuple(layouts), scatter)


def _use_triton(tensor: Tensor, backend: str) -> bool:
    if backend not in ("auto", "torch", "triton"):
        raise ValueError(f"backend must be 'auto', 'torch' or 'triton', got {backend!r}")
    if backend != "auto":
        return backend == "triton"
    if tensor.device.type != "cuda":
        return False
    from .triton_kernels import TRITON_AVAILABLE
    if not TRITON_AVAILABLE:
        warnings.warn("triton is not installed: flattened-window attention on CUDA uses the "
                      "torch path", RuntimeWarning, stacklevel=3)
    return TRITON_AVAILABLE


def group_attention(q: Tensor, k: Tensor, v: Tensor, layout: GroupLayout, num_heads: int,
                    backend: str = "auto") -> Tensor:
    """Multi-head attention inside the groups of ``layout``: gather the ``(N, C)`` rows into
    groups, attend (keys masked by ``layout.key_mask``), scatter each voxel's primary slot
    back: ``(N, C)``.  ``backend``: ``'auto'`` (Triton fused kernel on CUDA when available,
    else torch ``scaled_dot_product_attention``), ``'torch'`` or ``'triton'``."""
    n, c = q.shape
    if k.shape != q.shape or v.shape != q.shape:
        raise ValueError(f"q, k, v must share one (N, C) shape, got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")
    if num_heads < 1 or c % num_heads:
        raise ValueError(f"channels {c} must be a multiple of num_heads {num_heads}")
    if layout.scatter.shape[0] != n:
        raise ValueError(f"layout is for {layout.scatter.shape[0]} voxels, got {n} rows")
    if n == 0:
        return q.new_zeros((0, c))
    if _use_triton(q, backend):
        from .triton_kernels import group_attention_triton
        return group_attention_triton(q, k, v, layout, num_heads)
    return group_attention_torch(q, k, v, layout, num_heads)


def group_attention_torch(q: Tensor, k: Tensor, v: Tensor, layout: GroupLayout,
                          num_heads: int) -> Tensor:
    """:func:`group_attention` with ``torch.nn.functional.scaled_dot_product_attention``."""
    groups, size = layout.num_groups, layout.group_size
    c = q.shape[1]

    def grouped(t: Tensor) -> Tensor:
        return t.index_select(0, layout.gather).view(groups, size, num_heads, c // num_heads
                                                     ).transpose(1, 2)

    mask = None if layout.key_mask is None else layout.key_mask[:, None, None, :]
    out = F.scaled_dot_product_attention(grouped(q), grouped(k), grouped(v), attn_mask=mask)
    return out.transpose(1, 2).reshape(groups * size, c).index_select(0, layout.scatter)


def slot_attention(q: Tensor, k: Tensor, v: Tensor, num_groups: int, group_size: int,
                   key_mask: Tensor | None, num_heads: int) -> Tensor:
    """Multi-head attention over rows already laid out in slot order: ``(G * g, C)`` q / k /
    v, group ``i`` being rows ``i * g .. (i + 1) * g - 1``; keys masked by ``key_mask (G, g)``
    (None: every slot a valid key).  Returns ``(G * g, C)`` in the same slot order.

    The gather-free form of :func:`group_attention` (equal outputs on each slot): a backbone
    that keeps its features in slot order (:meth:`FlattenPlan.transition`) attends with no
    per-layer gather / scatter, and full groups need no mask (plain equal-size SDPA)."""
    slots, c = q.shape
    if k.shape != q.shape or v.shape != q.shape:
        raise ValueError(f"q, k, v must share one (G * g, C) shape, got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")
    if num_heads < 1 or c % num_heads:
        raise ValueError(f"channels {c} must be a multiple of num_heads {num_heads}")
    if slots != num_groups * group_size:
        raise ValueError(f"{slots} rows are not {num_groups} groups of {group_size} slots")
    if key_mask is not None and key_mask.shape != (num_groups, group_size):
        raise ValueError(f"key_mask must be ({num_groups}, {group_size}), got "
                         f"{tuple(key_mask.shape)}")
    if slots == 0:
        return q.new_zeros((0, c))

    def heads(t: Tensor) -> Tensor:  # a strided view: SDPA reads it without a copy
        return t.view(num_groups, group_size, num_heads, c // num_heads).transpose(1, 2)

    mask = None if key_mask is None else key_mask[:, None, None, :]
    out = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), attn_mask=mask)
    return out.transpose(1, 2).reshape(slots, c)


def scatter_to_bev(features: Tensor, coords: Tensor, batch_size: int,
                   sparse_shape: Sequence[int], check_unique: bool = True) -> Tensor:
    """Dense BEV ``(B, C, H, W)`` (zeros where no voxel): ``bev[b, :, y, x]`` is the row of
    the voxel at ``(b, y, x)`` (columns +x, rows +y).  Duplicate coords raise ValueError
    (``check_unique=False`` skips that check for coords unique by construction)."""
    height, width = check_positive_pair(tuple(sparse_shape), "sparse_shape")
    coords = check_bev_coords(coords, (height, width), batch_size)
    if features.dim() != 2 or features.shape[0] != coords.shape[0]:
        raise ValueError(f"features must be ({coords.shape[0]}, C), got {tuple(features.shape)}")
    cells = coords[:, 1] * width + coords[:, 2]
    if check_unique and cells.numel() and torch.unique(
            coords[:, 0] * (height * width) + cells).numel() != cells.numel():
        raise ValueError("scatter_to_bev: coords hold duplicate (b, y, x) cells; pool them first")
    canvas = features.new_zeros((batch_size, features.shape[1], height * width))
    canvas[coords[:, 0], :, cells] = features  # one pass over the N rows, no transposed copy
    return canvas.view(batch_size, -1, height, width)
