"""Sparse-voxel coordinates: validation, int64 key packing and a vectorized lookup table.

Coordinates follow spconv: an int32 tensor of shape (M, 4) whose columns are
(batch, z, y, x), living on the grid of one tensor level with spatial shape (D, H, W).

Bit budget of a packed key (int64, sign bit always 0 so keys sort like the tuples)::

    bit 63      : 0
    bits 48..62 : batch  (15 bits -> batch index < 32768)
    bits 32..47 : z      (16 bits -> D <= 65536)
    bits 16..31 : y      (16 bits -> H <= 65536)
    bits  0..15 : x      (16 bits -> W <= 65536)

Fixed fields (rather than a mixed radix over the spatial shape) keep keys comparable across
levels and let GPU kernels pack with shifts only.  Anything beyond the budget raises ValueError.

CPU tensors use the compiled kernels of ``perception_ops._C`` when they are built (see
:func:`resolve_native`); the PyTorch code here is the readable reference, the CUDA path and
the fallback, and gives identical results and error messages.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Sequence, Union

import torch
from torch import Tensor

from ..native import native_module

COORD_BITS = 16
BATCH_BITS = 15
MAX_SPATIAL = 1 << COORD_BITS
MAX_BATCH = 1 << BATCH_BITS
_COORD_MASK = MAX_SPATIAL - 1
SUPPORTED_DEVICE_TYPES = ("cpu", "cuda")

Triple = tuple[int, int, int]
IntOrTriple = Union[int, Sequence[int]]


def as_triple(value: IntOrTriple, name: str, minimum: int = 1) -> Triple:
    """Normalise an int or a 3-sequence of ints to a tuple and check every entry >= minimum."""
    if isinstance(value, int) and not isinstance(value, bool):
        out = (value, value, value)
    else:
        out = tuple(int(v) for v in value)  # type: ignore[union-attr]
        if len(out) != 3:
            raise ValueError(f"{name} must be an int or 3 ints (z, y, x), got {value!r}")
    if any(v < minimum for v in out):
        raise ValueError(f"{name} entries must be >= {minimum}, got {value!r}")
    return out  # type: ignore[return-value]


def check_device(tensor: Tensor, name: str) -> None:
    """Reject tensors on devices the sparse ops do not support (only CPU and CUDA)."""
    if tensor.device.type not in SUPPORTED_DEVICE_TYPES:
        raise ValueError(
            f"{name} is on device '{tensor.device}', sparse ops support only "
            f"{SUPPORTED_DEVICE_TYPES}")


def resolve_native(coords: Tensor, use_native: bool | None) -> ModuleType | None:
    """The compiled extension when ``coords`` should take the native CPU path, else ``None``.

    ``use_native=None`` picks it for CPU tensors when it is built; ``False`` forces the
    PyTorch path; ``True`` demands the native one (ValueError if impossible).
    """
    if use_native is False:
        return None
    native = native_module() if coords.device.type == "cpu" else None
    if use_native and native is None:
        reason = "it is not built" if coords.device.type == "cpu" else \
            f"coords are on {coords.device}, the native kernels are CPU only"
        raise ValueError(f"use_native=True but the native kernels cannot be used: {reason}")
    return native


def validate_spatial_shape(spatial_shape: IntOrTriple) -> Triple:
    """Check a (D, H, W) spatial shape fits the 16-bit-per-axis key budget."""
    shape = as_triple(spatial_shape, "spatial_shape")
    if any(s > MAX_SPATIAL for s in shape):
        raise ValueError(
            f"spatial_shape {shape} exceeds the key budget of {MAX_SPATIAL} cells per axis "
            f"({COORD_BITS} bits, see perception_ops.sparse.coords)")
    return shape


def validate_coords(coords: Tensor, spatial_shape: IntOrTriple,
                    batch_size: int | None = None, use_native: bool | None = None) -> Triple:
    """Check coords is int32 (M, 4) with every (batch, z, y, x) inside range; returns the shape.

    Duplicates are detected by :meth:`CoordHash.build` (or the native kernel maps), which
    build a lookup table anyway.  ``use_native``: see :func:`resolve_native`.
    """
    if not isinstance(coords, Tensor):
        raise ValueError(f"coords must be a torch.Tensor, got {type(coords).__name__}")
    check_device(coords, "coords")
    if coords.dtype != torch.int32:
        raise ValueError(f"coords must be int32 (batch, z, y, x), got dtype {coords.dtype}")
    if coords.dim() != 2 or coords.shape[1] != 4:
        raise ValueError(f"coords must have shape (M, 4) = (batch, z, y, x), got "
                         f"{tuple(coords.shape)}")
    shape = validate_spatial_shape(spatial_shape)
    if batch_size is not None and not 1 <= batch_size <= MAX_BATCH:
        raise ValueError(f"batch_size must be in [1, {MAX_BATCH}], got {batch_size}")
    if coords.shape[0] == 0:
        return shape
    upper = [batch_size if batch_size is not None else MAX_BATCH, *shape]
    native = resolve_native(coords, use_native)
    if native is not None:  # one pass: first bad row per column, -1 where none
        first_bad = native.coords_first_out_of_range(coords.contiguous(), upper)
    else:
        lo, hi = coords.amin(dim=0).tolist(), coords.amax(dim=0).tolist()
        first_bad = [-1 if lo[col] >= 0 and hi[col] < upper[col] else int(
            ((coords[:, col] < 0) | (coords[:, col] >= upper[col])).nonzero()[0, 0])
            for col in range(4)]
    for col, name in enumerate(("batch", "z", "y", "x")):
        if first_bad[col] >= 0:
            bad = first_bad[col]
            limit = "batch_size" if col == 0 else "spatial_shape"
            raise ValueError(
                f"coords column '{name}' out of range [0, {upper[col]}) ({limit}); "
                f"first bad row {bad}: {coords[bad].tolist()}")
    return shape


def pack_keys(batch: Tensor, zyx: Tensor) -> Tensor:
    """Pack in-range batch (N,) and zyx (N, 3) integers into int64 keys (see module doc)."""
    b = batch.to(torch.int64)
    p = zyx.to(torch.int64)
    return (b << 48) | (p[:, 0] << 32) | (p[:, 1] << 16) | p[:, 2]


def unpack_keys(keys: Tensor) -> Tensor:
    """Inverse of :func:`pack_keys`: int64 keys (N,) -> int32 coords (N, 4)."""
    cols = [keys >> 48, (keys >> 32) & _COORD_MASK, (keys >> 16) & _COORD_MASK,
            keys & _COORD_MASK]
    return torch.stack(cols, dim=1).to(torch.int32)


def conv_output_shape(spatial_shape: Triple, kernel_size: Triple, stride: Triple,
                      padding: Triple, dilation: Triple) -> Triple:
    """spconv/PyTorch rule: floor((D + 2p - d*(k-1) - 1) / s) + 1 per axis; must be >= 1."""
    out = tuple((n + 2 * p - d * (k - 1) - 1) // s + 1
                for n, k, s, p, d in zip(spatial_shape, kernel_size, stride, padding, dilation))
    if any(o < 1 for o in out):
        raise ValueError(
            f"conv with kernel {kernel_size}, stride {stride}, padding {padding}, dilation "
            f"{dilation} on spatial_shape {spatial_shape} gives empty output shape {out}")
    return out  # type: ignore[return-value]


def kernel_offsets(kernel_size: Triple, device: torch.device) -> Tensor:
    """All (kd, kh, kw) kernel positions in C order as an int64 (K, 3) tensor; row j = offset j."""
    axes = [torch.arange(k, device=device, dtype=torch.int64) for k in kernel_size]
    grid = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([g.reshape(-1) for g in grid], dim=1)


@dataclass(frozen=True, eq=False)
class CoordHash:
    """Sorted packed keys of one coordinate set; lookups are one vectorized searchsorted.

    ``order[r]`` is the original row of ``sorted_keys[r]``.
    """

    sorted_keys: Tensor
    order: Tensor

    @classmethod
    def build(cls, coords: Tensor, spatial_shape: IntOrTriple, batch_size: int | None = None,
              use_native: bool | None = None) -> "CoordHash":
        """Validate coords (``use_native`` as in :func:`validate_coords`) and build the table;
        duplicate coordinates raise ValueError."""
        validate_coords(coords, spatial_shape, batch_size, use_native)
        keys = pack_keys(coords[:, 0], coords[:, 1:])
        sorted_keys, order = torch.sort(keys, stable=True)  # stable: deterministic error rows
        if sorted_keys.numel() > 1:
            dup = sorted_keys[1:] == sorted_keys[:-1]
            if bool(dup.any()):
                r = int(dup.nonzero()[0, 0])
                rows = sorted(order[r:r + 2].tolist())
                raise ValueError(
                    f"coords contain duplicate coordinates: rows {rows[0]} and {rows[1]} are both "
                    f"{coords[rows[0]].tolist()} (deduplicate, e.g. with torch.unique, first)")
        return cls(sorted_keys, order)

    def __len__(self) -> int:
        return int(self.sorted_keys.numel())

    def lookup(self, keys: Tensor) -> Tensor:
        """Row index (int64) of every query key, -1 where the key is absent."""
        if len(self) == 0:
            return torch.full_like(keys, -1)
        pos = torch.searchsorted(self.sorted_keys, keys).clamp_(max=len(self) - 1)
        found = self.sorted_keys[pos] == keys
        return torch.where(found, self.order[pos], torch.full_like(pos, -1))
