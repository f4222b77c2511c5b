"""Kernel maps of sparse 3-D convolutions (the "indice pairs" of spconv) and their cache.

A kernel map lists, for every kernel offset j (``(kd, kh, kw)`` enumerated in C order), the
pairs (input row, output row) such that output o receives input i through weight[:, j]:

* submanifold (``subm``): outputs = inputs, i = o + (j - k//2) * d (odd kernels only, as in
  spconv 2.x, i.e. padding (k//2)*d and stride 1);
* sparse conv (``conv``, spconv's SparseConv3d): outputs are every o in the output grid
  floor((D + 2p - d(k-1) - 1)/s) + 1 with some input i = o*s - p + j*d;
* inverse conv (``inverse``, SparseInverseConv3d): the ``conv`` map with in/out swapped.

Pairs are stored CSR-like: offset j owns ``[offset_ptr[j], offset_ptr[j+1])`` of
``in_indices`` / ``out_indices``, sorted by output row inside each offset.  ``out_masks``
holds, per output, a bitmask over offsets (bit j%32 of int32 word j//32) for implicit GEMM.
Output coordinates of ``conv`` maps are sorted by (batch, z, y, x).

``build_subm_map`` / ``build_conv_map`` run the compiled kernels (ops/csrc/kernel_map.cpp:
hash-table lookups, radix-sorted outputs) for CPU coords when they are built, and the PyTorch
code below otherwise; ``use_native`` forces either (see :func:`.coords.resolve_native`).
Both paths give identical maps (tests/ops/test_kernel_map_native.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Hashable

import torch
from torch import Tensor

from .coords import (
    CoordHash,
    IntOrTriple,
    Triple,
    as_triple,
    conv_output_shape,
    kernel_offsets,
    pack_keys,
    resolve_native,
    unpack_keys,
    validate_coords,
    validate_spatial_shape,
)

MASK_WORD_BITS = 32
_QUERY_CHUNK = 1 << 22  # neighbour queries per batched hash lookup


@dataclass(frozen=True, eq=False)
class KernelMap:
    """Pairs of one sparse conv between an input and an output coordinate set (see module doc)."""

    kind: str  # "subm" | "conv" | "inverse"
    kernel_size: Triple
    stride: Triple
    padding: Triple
    dilation: Triple
    in_indices: Tensor  # int32 (P,)
    out_indices: Tensor  # int32 (P,)
    offset_ptr: Tensor  # int64 (K + 1,), on the coords' device
    offset_ptr_host: tuple[int, ...]  # same values on the host: no device sync per offset
    out_masks: Tensor  # int32 (num_out, ceil(K / 32))
    in_coords: Tensor
    in_spatial_shape: Triple
    in_stride: Triple
    out_coords: Tensor
    out_spatial_shape: Triple
    out_stride: Triple

    @property
    def kernel_volume(self) -> int:
        return math.prod(self.kernel_size)

    @property
    def num_in(self) -> int:
        return int(self.in_coords.shape[0])

    @property
    def num_out(self) -> int:
        return int(self.out_coords.shape[0])

    def pairs(self, j: int) -> tuple[Tensor, Tensor]:
        """(in_indices, out_indices) of kernel offset j."""
        lo, hi = self.offset_ptr_host[j], self.offset_ptr_host[j + 1]
        return self.in_indices[lo:hi], self.out_indices[lo:hi]

    def pair_counts(self) -> list[int]:
        """Number of pairs per kernel offset."""
        p = self.offset_ptr_host
        return [p[j + 1] - p[j] for j in range(self.kernel_volume)]

    def masks_as_bool(self) -> Tensor:
        """Decode ``out_masks`` to a (num_out, K) bool tensor."""
        j = torch.arange(self.kernel_volume, device=self.out_masks.device)
        words = self.out_masks.to(torch.int64)[:, j // MASK_WORD_BITS]
        return ((words >> (j % MASK_WORD_BITS)) & 1).bool()


def _build_masks(offset_id: Tensor, out_idx: Tensor, num_offsets: int, num_out: int) -> Tensor:
    """Per-output bitmask over offsets; each (out, j) occurs at most once, so a sum is an OR."""
    words = (num_offsets + MASK_WORD_BITS - 1) // MASK_WORD_BITS
    bits = torch.ones_like(offset_id) << (offset_id % MASK_WORD_BITS)
    flat = out_idx * words + offset_id // MASK_WORD_BITS
    acc = torch.zeros(num_out * words, dtype=torch.int64, device=out_idx.device)
    acc.scatter_add_(0, flat, bits)
    acc = torch.where(acc >= 2 ** 31, acc - 2 ** 32, acc)  # reinterpret as int32 bit pattern
    return acc.to(torch.int32).view(num_out, words)


def _assemble(kind: str, geometry: tuple[Triple, Triple, Triple, Triple],
              offset_id: Tensor, in_idx: Tensor, out_idx: Tensor,
              inputs: tuple[Tensor, Triple, Triple],
              outputs: tuple[Tensor, Triple, Triple]) -> KernelMap:
    """Sort pairs by (offset, out row), build the CSR pointer and masks, wrap in a KernelMap."""
    kernel_size, stride, padding, dilation = geometry
    num_offsets = math.prod(kernel_size)
    num_out = int(outputs[0].shape[0])
    order = torch.argsort(offset_id * max(num_out, 1) + out_idx)
    offset_id, in_idx, out_idx = offset_id[order], in_idx[order], out_idx[order]
    counts = torch.bincount(offset_id, minlength=num_offsets)
    ptr = torch.zeros(num_offsets + 1, dtype=torch.int64, device=offset_id.device)
    torch.cumsum(counts, 0, out=ptr[1:])
    return KernelMap(
        kind, kernel_size, stride, padding, dilation,
        in_idx.to(torch.int32), out_idx.to(torch.int32), ptr, tuple(ptr.tolist()),
        _build_masks(offset_id, out_idx, num_offsets, num_out),
        inputs[0], inputs[1], inputs[2], outputs[0], outputs[1], outputs[2])


def _native_map(kind: str, geometry: tuple[Triple, Triple, Triple, Triple],
                tensors: list[Tensor], inputs: tuple[Tensor, Triple, Triple],
                outputs: tuple[Tensor, Triple, Triple]) -> KernelMap:
    """Wrap (in_indices, out_indices, offset_ptr, out_masks) of a native kernel in a KernelMap."""
    in_idx, out_idx, ptr, masks = tensors
    return KernelMap(kind, *geometry, in_idx, out_idx, ptr, tuple(ptr.tolist()), masks,
                     *inputs, *outputs)


def build_subm_map(coords: Tensor, spatial_shape: IntOrTriple, kernel_size: IntOrTriple,
                   dilation: IntOrTriple = 1, batch_size: int | None = None,
                   tensor_stride: IntOrTriple = 1, use_native: bool | None = None) -> KernelMap:
    """Submanifold map: outputs are the inputs; only half the offsets are searched.

    For odd kernels offset K-1-j is the mirror of offset j (delta -> -delta), so its pairs are
    those of j with in/out swapped; the centre offset pairs every row with itself.
    """
    k = as_triple(kernel_size, "kernel_size")
    d = as_triple(dilation, "dilation")
    if any(v % 2 == 0 for v in k):
        raise ValueError(f"submanifold conv needs odd kernel sizes (as spconv 2.x), got {k}")
    shape = validate_spatial_shape(spatial_shape)
    level = (coords, shape, as_triple(tensor_stride, "tensor_stride"))
    padding: Triple = tuple(v // 2 * e for v, e in zip(k, d))  # type: ignore[assignment]
    geometry = (k, (1, 1, 1), padding, d)
    native = resolve_native(coords, use_native) if isinstance(coords, Tensor) else None
    if native is not None:
        validate_coords(coords, shape, batch_size, use_native=True)
        tensors = native.subm_kernel_map(coords.contiguous(), shape, k, d)
        return _native_map("subm", geometry, tensors, level, level)
    table = CoordHash.build(coords, shape, batch_size, use_native)
    device = coords.device
    deltas = (kernel_offsets(k, device) - torch.tensor([v // 2 for v in k], device=device)) \
        * torch.tensor(d, device=device)
    num_offsets, centre = deltas.shape[0], deltas.shape[0] // 2
    zyx = coords[:, 1:].to(torch.int64)
    n = coords.shape[0]
    rows = torch.arange(n, device=device)
    keys = pack_keys(coords[:, 0], zyx)
    upper = torch.tensor(shape, device=device)
    offs, ins, outs = [torch.full_like(rows, centre)], [rows], [rows]
    chunk = max(1, _QUERY_CHUNK // max(n, 1))  # bounds the (offsets, N, 3) temporaries
    for j0 in range(0, centre, chunk):
        half = deltas[j0:min(centre, j0 + chunk)]  # offsets K-1-j are the mirrors -half[j]
        q = zyx[None] + half[:, None]  # (J, N, 3)
        ok = ((q >= 0) & (q < upper)).all(dim=2)
        # Packing is linear while every field stays in range: neighbour key = key + packed delta.
        dkeys = (half[:, 0] << 32) + (half[:, 1] << 16) + half[:, 2]
        queries = torch.where(ok, keys[None] + dkeys[:, None], -1)
        found = table.lookup(queries.reshape(-1)).view(half.shape[0], n)  # batched lookup
        j, dst = (found >= 0).nonzero().unbind(1)
        src = found[j, dst]
        offs += [j + j0, num_offsets - 1 - j0 - j]
        ins += [src, dst]
        outs += [dst, src]
    return _assemble("subm", geometry, torch.cat(offs), torch.cat(ins), torch.cat(outs),
                     level, level)


def build_conv_map(coords: Tensor, spatial_shape: IntOrTriple, kernel_size: IntOrTriple,
                   stride: IntOrTriple = 1, padding: IntOrTriple = 0, dilation: IntOrTriple = 1,
                   batch_size: int | None = None, tensor_stride: IntOrTriple = 1,
                   use_native: bool | None = None) -> KernelMap:
    """Sparse (possibly strided) conv map: o receives i at offset j iff i = o*s - p + j*d."""
    k = as_triple(kernel_size, "kernel_size")
    s = as_triple(stride, "stride")
    p = as_triple(padding, "padding", minimum=0)
    d = as_triple(dilation, "dilation")
    shape = validate_spatial_shape(spatial_shape)
    out_shape = validate_spatial_shape(conv_output_shape(shape, k, s, p, d))  # keys must fit
    in_stride = as_triple(tensor_stride, "tensor_stride")
    out_stride: Triple = tuple(a * b for a, b in zip(in_stride, s))  # type: ignore[assignment]
    native = resolve_native(coords, use_native) if isinstance(coords, Tensor) else None
    if native is not None:
        validate_coords(coords, shape, batch_size, use_native=True)
        *tensors, out_coords = native.conv_kernel_map(coords.contiguous(), shape, out_shape,
                                                      k, s, p, d)
        return _native_map("conv", (k, s, p, d), tensors, (coords, shape, in_stride),
                           (out_coords, out_shape, out_stride))
    CoordHash.build(coords, shape, batch_size, use_native)  # validation + duplicate check
    device = coords.device
    taps = kernel_offsets(k, device) * torch.tensor(d, device=device)
    s_t, out_t = torch.tensor(s, device=device), torch.tensor(out_shape, device=device)
    base = coords[:, 1:].to(torch.int64) + torch.tensor(p, device=device)
    batch = coords[:, 0]
    rows = torch.arange(coords.shape[0], device=device)
    offs, ins, keys = [], [], []
    for j in range(taps.shape[0]):
        num = base - taps[j]  # = o * s when offset j connects this input to output o
        ok = ((num >= 0) & (num % s_t == 0) & (num < out_t * s_t)).all(dim=1)
        ins.append(rows[ok])
        keys.append(pack_keys(batch[ok], num[ok] // s_t))
        offs.append(torch.full_like(ins[-1], j))
    out_keys, out_idx = torch.unique(torch.cat(keys), sorted=True, return_inverse=True)
    return _assemble("conv", (k, s, p, d), torch.cat(offs), torch.cat(ins), out_idx,
                     (coords, shape, in_stride), (unpack_keys(out_keys), out_shape, out_stride))


def invert_kernel_map(kmap: KernelMap) -> KernelMap:
    """Inverse-conv map of a ``conv`` map: same pairs with in/out (and coordinate sets) swapped."""
    if kmap.kind != "conv":
        raise ValueError(f"only a 'conv' kernel map can be inverted, got a '{kmap.kind}' map")
    counts = torch.tensor(kmap.pair_counts(), device=kmap.offset_ptr.device)
    offset_id = torch.repeat_interleave(
        torch.arange(kmap.kernel_volume, device=counts.device), counts)
    return _assemble("inverse", (kmap.kernel_size, kmap.stride, kmap.padding, kmap.dilation),
                     offset_id, kmap.out_indices.to(torch.int64), kmap.in_indices.to(torch.int64),
                     (kmap.out_coords, kmap.out_spatial_shape, kmap.out_stride),
                     (kmap.in_coords, kmap.in_spatial_shape, kmap.in_stride))


def _same_coords(a: Tensor, b: Tensor) -> bool:
    return a is b or (a.shape == b.shape and a.device == b.device and torch.equal(a, b))


class KernelMapCache:
    """Kernel maps of one network pass, shared by all tensors derived from one input.

    Like spconv's ``indice_dict``: entries are keyed by (kind, tensor stride, kernel, stride,
    padding, dilation, indice_key) and reused by later layers; an ``indice_key`` also names
    a map so an inverse conv can find the downsampling map it undoes.  A hit whose input
    coordinates differ from the cached ones raises instead of returning a wrong map.
    """

    def __init__(self) -> None:
        self._maps: dict[Hashable, KernelMap] = {}
        self._named: dict[str, KernelMap] = {}

    def __len__(self) -> int:
        return len(self._maps)

    def _get_or_build(self, key: Hashable, coords: Tensor, shape: Triple,
                      build: Callable[[], KernelMap], indice_key: str | None) -> KernelMap:
        hit = self._maps.get(key)
        if hit is not None:
            if not (_same_coords(hit.in_coords, coords) and hit.in_spatial_shape == shape):
                raise ValueError(
                    f"kernel-map cache entry {key} was built for other input coordinates or "
                    f"spatial shape ({hit.in_spatial_shape} vs {shape}); use a distinct "
                    f"indice_key per coordinate set")
            return hit
        if indice_key is not None and indice_key in self._named:
            old = self._named[indice_key]
            raise ValueError(
                f"indice_key {indice_key!r} already names a '{old.kind}' map with kernel "
                f"{old.kernel_size}, stride {old.stride}, padding {old.padding}, dilation "
                f"{old.dilation}; it cannot be reused for {key}")
        kmap = build()
        self._maps[key] = kmap
        if indice_key is not None:
            self._named[indice_key] = kmap
        return kmap

    def conv_map(self, coords: Tensor, spatial_shape: IntOrTriple, kernel_size: IntOrTriple,
                 stride: IntOrTriple = 1, padding: IntOrTriple = 0, dilation: IntOrTriple = 1,
                 subm: bool = False, indice_key: str | None = None,
                 batch_size: int | None = None, tensor_stride: IntOrTriple = 1) -> KernelMap:
        """Cached ``subm`` or ``conv`` map (for subm, stride/padding are implied as in spconv)."""
        k = as_triple(kernel_size, "kernel_size")
        d = as_triple(dilation, "dilation")
        if subm and as_triple(stride, "stride") != (1, 1, 1):
            raise ValueError(f"submanifold conv has stride 1, got stride {stride}")
        s = (1, 1, 1) if subm else as_triple(stride, "stride")
        p = tuple(v // 2 * e for v, e in zip(k, d)) if subm else as_triple(padding, "padding", 0)
        ts = as_triple(tensor_stride, "tensor_stride")
        shape = validate_spatial_shape(spatial_shape)
        key = ("subm" if subm else "conv", ts, k, s, p, d, indice_key)
        if subm:
            def build() -> KernelMap:
                return build_subm_map(coords, shape, k, d, batch_size, ts)
        else:
            def build() -> KernelMap:
                return build_conv_map(coords, shape, k, s, p, d, batch_size, ts)
        return self._get_or_build(key, coords, shape, build, indice_key)

    def inverse_map(self, coords: Tensor, spatial_shape: IntOrTriple, kernel_size: IntOrTriple,
                    indice_key: str) -> KernelMap:
        """Inverse of the ``conv`` map named ``indice_key``; coords must be that map's output."""
        fwd = self._named.get(indice_key)
        if fwd is None:
            raise ValueError(f"inverse conv: no kernel map named indice_key {indice_key!r}; "
                             f"known keys: {sorted(self._named)}")
        if fwd.kind != "conv":
            raise ValueError(f"inverse conv: indice_key {indice_key!r} names a '{fwd.kind}' map; "
                             f"it must name a (downsampling) sparse conv")
        k = as_triple(kernel_size, "kernel_size")
        if k != fwd.kernel_size:
            raise ValueError(f"inverse conv kernel {k} differs from kernel {fwd.kernel_size} of "
                             f"the conv named {indice_key!r}")
        shape = validate_spatial_shape(spatial_shape)
        if not (_same_coords(fwd.out_coords, coords) and fwd.out_spatial_shape == shape):
            raise ValueError(f"inverse conv input is not the output of the conv named "
                             f"{indice_key!r} (coordinates or spatial shape differ)")
        key = ("inverse", indice_key)
        hit = self._maps.get(key)
        if hit is None:
            hit = self._maps[key] = invert_kernel_map(fwd)
        return hit
