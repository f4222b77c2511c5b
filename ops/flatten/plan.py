"""Data structures of flattened-window attention: a group layout and the per-frame plan.

A :class:`GroupLayout` says how the ``N`` voxel rows of a frame are cut into ``G`` groups
of ``g`` slots for one attention layer:

* ``gather (G * g,)``: the voxel row each slot reads (padding slots repeat real voxels);
* ``scatter (N,)``: the one slot whose output each voxel takes back (its *primary* slot), so
  a voxel duplicated as padding is never counted twice;
* ``key_mask (G, g)`` bool or None: True where a slot may be attended to as a key (a
  duplicate of a voxel already in the same group, or an empty SST slot, is False); None
  when every slot is a valid key (the common case: no mask, faster attention);
* ``primary (G * g,)`` bool: True on each voxel's primary slot (``scatter``'s targets).

:class:`FlattenPlan` holds, for one frame, the four FlatFormer orders (``x``, ``x_shift``,
``y``, ``y_shift``): one sort each, computed once and reused by every block, with their
inverse permutations, and the group padding shared by all four orders (each batch element
is one contiguous run of the sorted sequence in every order, with the same length), and
:meth:`FlattenPlan.transition`: the one gather that moves rows kept in one order's slot
order to the next order's (so a backbone never goes back to voxel order between layers).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import Tensor

ORDERS: tuple[str, ...] = ("x", "x_shift", "y", "y_shift")
"""FlatFormer's four sort orders, in the order a block's four layers use them."""


@dataclass(frozen=True)
class GroupLayout:
    """Slots of one attention layer's groups (module doc)."""

    gather: Tensor
    scatter: Tensor
    key_mask: Tensor | None
    primary: Tensor
    num_groups: int
    group_size: int

    @property
    def num_slots(self) -> int:
        return self.num_groups * self.group_size


@dataclass(frozen=True)
class GroupPadding:
    """Equal-size grouping of a batch-contiguous sorted sequence (see :func:`group_padding`).

    ``pad_index (P,)``: sorted position read by each padded slot; ``unpad_index (N,)``: the
    primary slot of each sorted position; ``key_mask (G, g)``; ``primary (P,)``;
    ``group_batch (G,)``: batch element of each group (groups never mix elements).
    """

    pad_index: Tensor
    unpad_index: Tensor
    key_mask: Tensor
    primary: Tensor
    group_batch: Tensor
    group_size: int

    @property
    def num_groups(self) -> int:
        return int(self.group_batch.shape[0])


@dataclass(frozen=True)
class FlattenPlan:
    """The four sorts of a frame and their shared group padding (module doc).

    ``perms[o] (N,)``: voxel row at each sorted position of order ``o``; ``inverses[o]``: the
    sorted position of each voxel row.  ``layouts[o]`` composes them with the padding.
    """

    perms: dict[str, Tensor]
    inverses: dict[str, Tensor]
    padding: GroupPadding
    batch_counts: Tensor
    window_shape: tuple[int, int]
    sparse_shape: tuple[int, int]
    layouts: dict[str, GroupLayout] = field(default_factory=dict)
    _transitions: dict[tuple[str, str], Tensor] = field(default_factory=dict, repr=False)

    @property
    def num_voxels(self) -> int:
        return int(self.padding.unpad_index.shape[0])

    @property
    def group_size(self) -> int:
        return self.padding.group_size

    def layout(self, order: str) -> GroupLayout:
        """The group layout of ``order`` (one of :data:`ORDERS`)."""
        if order not in self.layouts:
            raise ValueError(f"unknown flatten order {order!r}; known: {sorted(self.layouts)}")
        return self.layouts[order]

    def transition(self, src: str, dst: str) -> Tensor:
        """``(G * g,)`` slot of order ``src`` that each slot of order ``dst`` reads: rows kept
        in ``src``'s slot order move to ``dst``'s with one gather (``x_dst = x_src[t]``),
        each voxel taken from its primary ``src`` slot.  Computed once per frame and order
        pair, then cached (every block reuses it)."""
        key = (src, dst)
        if key not in self._transitions:
            self._transitions[key] = self.layout(src).scatter[self.layout(dst).gather]
        return self._transitions[key]


@dataclass(frozen=True)
class WindowBuckets:
    """SST's size buckets: windows grouped by voxel count, each bucket's windows padded to
    one size (see :func:`.api.window_buckets`).  ``buckets``: one :class:`GroupLayout`
    per non-empty bucket whose ``scatter`` is unused (empty); ``scatter (N,)``: each voxel's
    slot in the concatenation of all buckets' slots, in bucket order."""

    buckets: tuple[GroupLayout, ...]
    scatter: Tensor

    @property
    def num_groups(self) -> int:
        return sum(b.num_groups for b in self.buckets)

    @property
    def num_slots(self) -> int:
        return sum(b.num_slots for b in self.buckets)

    @property
    def group_size(self) -> int:
        """The largest bucket's window size."""
        return max((b.group_size for b in self.buckets), default=1)


def check_positive_pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    """``(a, b)`` positive ints from an int or a pair; ValueError naming ``name`` otherwise."""
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                 for v in pair):
        raise ValueError(f"{name} must be a positive int or a pair of positive ints, got {value!r}")
    return int(pair[0]), int(pair[1])


def check_bev_coords(coords: Tensor, sparse_shape: tuple[int, int], batch_size: int,
                     name: str = "coords") -> Tensor:
    """Validate ``(N, 3)`` integer ``(b, y, x)`` coords inside ``(batch_size, H, W)``;
    returns them as int64.  Out-of-range entries raise ValueError naming the first bad row."""
    if not isinstance(coords, Tensor) or coords.dim() != 2 or coords.shape[1] != 3:
        shape = tuple(coords.shape) if isinstance(coords, Tensor) else type(coords).__name__
        raise ValueError(f"{name} must be an (N, 3) integer tensor (b, y, x), got {shape}")
    if coords.dtype.is_floating_point or coords.dtype == torch.bool or coords.is_complex():
        raise ValueError(f"{name} must have an integer dtype, got {coords.dtype}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    coords = coords.long()
    if coords.shape[0]:
        upper = torch.tensor([batch_size, *sparse_shape], device=coords.device)
        bad = ((coords < 0) | (coords >= upper)).any(dim=1)
        if bool(bad.any()):
            row = int(torch.nonzero(bad)[0, 0])
            raise ValueError(f"{name}[{row}] = {coords[row].tolist()} is outside (batch_size, H, "
                             f"W) = {(batch_size, *sparse_shape)}")
    return coords
