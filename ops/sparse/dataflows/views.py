"""Per-map index views shared by the dataflows, computed lazily once per view.

A :class:`MapView` wraps one :class:`KernelMap` (optionally with inputs and outputs swapped,
the map of the transposed conv used for the input gradient) and caches the int64 pair
indices, the dense neighbour map and its mask order.  The cache lives on the view object,
not in a global: keep a view next to its kernel map to reuse it across layers and passes.
"""
from __future__ import annotations

from functools import cached_property

import torch
from torch import Tensor

from ..kernel_map import KernelMap
from ..maps import in_out_map, mask_order, out_in_map


class MapView:
    """Pairs of ``kmap`` seen from the output side (``transposed=False``) or input side."""

    def __init__(self, kmap: KernelMap, transposed: bool = False) -> None:
        if not isinstance(kmap, KernelMap):
            raise ValueError(f"kmap must be a KernelMap or MapView, got {type(kmap).__name__}")
        self.kmap = kmap
        self.is_transposed = transposed
        self.kernel_volume = kmap.kernel_volume
        self.num_in = kmap.num_out if transposed else kmap.num_in
        self.num_out = kmap.num_in if transposed else kmap.num_out
        self.ptr = kmap.offset_ptr_host
        self.device = kmap.in_indices.device
        self.plans: dict[object, object] = {}  # dataflow-specific plans, keyed by params

    @cached_property
    def in_idx(self) -> Tensor:
        """int64 (P,) input row of every pair (CSR order of the kernel map)."""
        return (self.kmap.out_indices if self.is_transposed else self.kmap.in_indices).long()

    @cached_property
    def out_idx(self) -> Tensor:
        """int64 (P,) output row of every pair."""
        return (self.kmap.in_indices if self.is_transposed else self.kmap.out_indices).long()

    @cached_property
    def counts(self) -> tuple[int, ...]:
        """Pairs per kernel offset (host ints, no device sync)."""
        return tuple(self.kmap.pair_counts())

    @cached_property
    def centre_identity(self) -> bool:
        """True when the centre offset of a submanifold map pairs every row with itself."""
        k = self.kernel_volume
        return (self.kmap.kind == "subm" and k % 2 == 1 and self.num_in == self.num_out
                and self.counts[k // 2] == self.num_in)

    def pairs(self, j: int) -> tuple[Tensor, Tensor]:
        """(input rows, output rows), int64, of kernel offset j."""
        lo, hi = self.ptr[j], self.ptr[j + 1]
        return self.in_idx[lo:hi], self.out_idx[lo:hi]

    @cached_property
    def neighbours(self) -> Tensor:
        """int64 (num_out, K): input row of output o at offset j, ``num_in`` (zero row) if none."""
        table = in_out_map(self.kmap) if self.is_transposed else out_in_map(self.kmap)
        table = table.long()
        return torch.where(table < 0, self.num_in, table)

    @cached_property
    def order(self) -> Tensor:
        """Outputs sorted by active-offset bitmask (TorchSparse++'s sorted implicit GEMM)."""
        return mask_order(torch.where(self.neighbours == self.num_in, -1, self.neighbours))

    @cached_property
    def sorted_neighbours(self) -> Tensor:
        """``neighbours`` with rows in ``order``."""
        return self.neighbours[self.order]

    def transposed(self) -> "MapView":
        """View of the transposed conv (inputs <-> outputs, same offsets); cached."""
        cached = self.__dict__.get("_transposed")
        if cached is None:
            cached = MapView(self.kmap, not self.is_transposed)
            cached.__dict__["_transposed"] = self
            self.__dict__["_transposed"] = cached
        return cached


def as_view(kmap: KernelMap | MapView) -> MapView:
    """A MapView of ``kmap`` (itself when it already is one)."""
    return kmap if isinstance(kmap, MapView) else MapView(kmap)


def weight_matrices(weight: Tensor) -> Tensor:
    """KRSC (C_out, kD, kH, kW, C_in) -> (K, C_in, C_out) contiguous, offset j = W_j^T."""
    c_out, c_in = weight.shape[0], weight.shape[4]
    return weight.reshape(c_out, -1, c_in).permute(1, 2, 0).contiguous()


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """Scatter-add buffers of bf16/fp16 are float32 (then cast back); others keep their dtype."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def bags(outs: Tensor, positions: Tensor, num_out: int) -> tuple[Tensor, Tensor]:
    """``embedding_bag`` inputs summing buffer rows ``positions`` into their output rows
    ``outs``: (row index sorted by output, (num_out,) start offset of every output's bag).

    ``F.embedding_bag(index, buffer, offsets, mode="sum")`` is the output-stationary
    reduction of a scatter-add; on the CPU it is several times faster than ``index_add_``
    and accumulates bf16/fp16 in float32, rounding once.
    """
    order = torch.argsort(outs, stable=True)
    counts = torch.bincount(outs, minlength=num_out)
    offsets = torch.zeros(num_out, dtype=torch.int64, device=outs.device)
    if num_out > 1:
        torch.cumsum(counts[:-1], 0, out=offsets[1:])
    return positions[order], offsets


def reduce_bags(buffer: Tensor, index: Tensor, offsets: Tensor) -> Tensor:
    """Sum the rows ``buffer[index]`` bag by bag: (len(offsets), C), zero for an empty bag."""
    if offsets.numel() == 0 or index.numel() == 0:
        return buffer.new_zeros((offsets.numel(), buffer.shape[1]))
    return torch.nn.functional.embedding_bag(index, buffer, offsets, mode="sum")
