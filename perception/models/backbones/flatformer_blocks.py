"""Building blocks of the BEV transformer backbones (FlatFormer and the SST baseline).

* :class:`PillarEmbedding`: ``(b, z, y, x)`` voxels -> BEV pillars ``(b, y, x)`` at
  ``bev_stride``: mean and max of the voxels' features (plus normalised z index and offset
  in the pillar) over each pillar, so the z layers collapse (optionally also per sub-cell, in
  fixed slots), then Linear + LayerNorm + GELU.
* :class:`SinePositionalEncoding2D`: fixed sinusoidal encoding of the pillar's (x, y).
* :class:`FlatAttentionLayer`: pre-norm attention + FFN whose attention runs inside the
  groups of a :class:`perception_ops.flatten.GroupLayout`: q / k / v are projected on the
  N voxel rows, then :func:`perception_ops.flatten.group_attention` gathers, attends
  (``scaled_dot_product_attention``, or the fused Triton kernel on CUDA) and scatters.
  :meth:`FlatAttentionLayer.forward_slots` is the same layer on features already kept in
  the groups' slot order (:func:`perception_ops.flatten.slot_attention`, no gathers).
* :class:`PaddedWindowAttentionLayer`: SST's layer: the voxels are first copied into
  windows padded to the largest window, and the projections and attention run on that
  padded tensor (what makes SST slow on uneven LiDAR density); with size buckets (SST's
  drop levels) each bucket's windows are padded to the bucket's fullest window instead.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from perception_ops.flatten import (GroupLayout, WindowBuckets, group_attention, scatter_to_bev,
                                    slot_attention)

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU}


class PillarEmbedding(nn.Module):
    """Voxels ``(M, C_in)`` at ``(b, z, y, x)`` -> pillars ``(P, dim)`` at ``(b, y // s,
    x // s)`` with ``s = bev_stride`` (pillars sorted by ``(b, y, x)``).

    Each voxel's features are extended by its normalised z index and its offset inside the
    pillar; optional per-voxel layers (``voxel_channels``: Linear + LayerNorm + GELU each, a
    PointPillars-style PFN) make them nonlinear shape features; the pillar's mean and max of
    those are embedded by Linear + LayerNorm + GELU.  Without voxel layers the raw voxel rows
    are pooled first, which keeps the cost on the (fewer) pillars.  With ``sub_cells = k > 1``
    the pillar is also cut into ``k x k`` sub-cells whose own mean and max sit in fixed slots of
    the embedding's input (zeros where a sub-cell is empty), like a ViT patch embedding: the
    layout inside the pillar survives the pooling (where objects end, which way they point).
    Coordinates must stay below 2 ** 21 per axis (packed into one sort key)."""

    EXTRA = 3  # z / D, in-pillar x and y offsets

    def __init__(self, in_channels: int, dim: int, depth_cells: int, bev_stride: int,
                 voxel_channels: Sequence[int] = (), sub_cells: int = 1) -> None:
        super().__init__()
        if isinstance(sub_cells, bool) or not isinstance(sub_cells, int) or sub_cells < 1 \
                or bev_stride % sub_cells:
            raise ValueError(f"PillarEmbedding: sub_cells must be a positive int dividing bev_stride "
                             f"{bev_stride}, got {sub_cells!r}")
        self.depth_cells, self.bev_stride, self.sub_cells = depth_cells, bev_stride, sub_cells
        layers: list[nn.Module] = []
        width = in_channels + self.EXTRA
        for channels in voxel_channels:
            if int(channels) < 1:
                raise ValueError(f"PillarEmbedding: voxel_channels must be positive, got {list(voxel_channels)}")
            layers += [nn.Linear(width, int(channels)), nn.LayerNorm(int(channels)), nn.GELU()]
            width = int(channels)
        self.voxel_layers = nn.Sequential(*layers)
        slots = sub_cells * sub_cells if sub_cells > 1 else 0
        self.linear = nn.Linear(2 * width * (1 + slots), dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, features: Tensor, coors: Tensor) -> tuple[Tensor, Tensor]:
        """``(pillar features (P, dim), pillar coords (P, 3) int64 (b, y, x))``."""
        rows = self.voxel_rows(features, coors, self.voxel_layers)
        mean, peak, pillars = self.reduce(rows, coors)
        parts = [mean, peak]
        if self.sub_cells > 1:
            parts.append(self.sub_cell_slots(rows, coors, pillars))
        return F.gelu(self.norm(self.linear(torch.cat(parts, dim=1)))), pillars

    def pool(self, features: Tensor, coors: Tensor, voxel_layers: nn.Module | None = None,
             ) -> tuple[Tensor, Tensor, Tensor]:
        """Mean and max ``(P, C)`` of the extended voxel rows (through ``voxel_layers`` if
        given) over each pillar, and the pillars' ``(b, y, x)`` sorted lexicographically.  One
        sort of a packed int64 key, then segment reductions over the sorted rows (same values
        as scatter pooling)."""
        return self.reduce(self.voxel_rows(features, coors, voxel_layers), coors)

    def voxel_rows(self, features: Tensor, coors: Tensor, voxel_layers: nn.Module | None = None) -> Tensor:
        """``(M, C)`` voxel rows extended by z / in-pillar offsets, through ``voxel_layers`` if given."""
        coors = coors.long()
        s = self.bev_stride
        extra = torch.stack([(coors[:, 1] + 0.5) / self.depth_cells,
                             (coors[:, 3] % s + 0.5) / s, (coors[:, 2] % s + 0.5) / s], dim=1)
        x = torch.cat([features, extra.to(features.dtype)], dim=1)
        return x if voxel_layers is None else voxel_layers(x)

    def reduce(self, rows: Tensor, coors: Tensor, stride: int | None = None,
               ) -> tuple[Tensor, Tensor, Tensor]:
        """Mean and max ``(P, C)`` of voxel ``rows`` over each cell of ``stride`` voxels (default
        the pillar) and the cells' ``(b, y, x)`` sorted lexicographically."""
        coors = coors.long()
        s = self.bev_stride if stride is None else stride
        if rows.shape[0] == 0:
            empty = rows.new_zeros((0, rows.shape[1]))
            return empty, empty, coors.new_zeros((0, 3))
        key = (coors[:, 0] << 42) | ((coors[:, 2] // s) << 21) | (coors[:, 3] // s)
        sorted_key, order = torch.sort(key, stable=True)  # deterministic sum order
        unique, counts = torch.unique_consecutive(sorted_key, return_counts=True)
        rows = rows.index_select(0, order)
        mean = torch.segment_reduce(rows, "mean", lengths=counts)
        peak = torch.segment_reduce(rows, "max", lengths=counts)
        mask = (1 << 21) - 1
        cells = torch.stack([unique >> 42, (unique >> 21) & mask, unique & mask], dim=1)
        return mean, peak, cells

    def sub_cell_slots(self, rows: Tensor, coors: Tensor, pillars: Tensor) -> Tensor:
        """``(P, k * k * 2C)``: each pillar's ``k x k`` sub-cells' mean | max in slot
        ``(y % k) * k + x % k`` (zeros for empty sub-cells); ``pillars`` as :meth:`reduce` gives them."""
        k = self.sub_cells
        mean, peak, cells = self.reduce(rows, coors, self.bev_stride // k)
        stats = torch.cat([mean, peak], dim=1)
        pillar_key = (pillars[:, 0] << 42) | (pillars[:, 1] << 21) | pillars[:, 2]
        owner_key = (cells[:, 0] << 42) | ((cells[:, 1] // k) << 21) | (cells[:, 2] // k)
        owner = torch.searchsorted(pillar_key, owner_key)  # pillars are sorted by the same key
        slot = owner * (k * k) + (cells[:, 1] % k) * k + cells[:, 2] % k
        out = stats.new_zeros((pillars.shape[0] * k * k, stats.shape[1])).index_copy(0, slot, stats)
        return out.view(pillars.shape[0], k * k * stats.shape[1])


class ConvPositionEncoding(nn.Module):
    """CPVT's positional encoding generator on pillars: ``x + dwconv3x3(scatter(x))`` read back
    at the pillars (empty cells count as zeros).  A transformer trained on a few thousand
    frames lacks a convolution's locality prior; this gives every block one cheap local mixing
    step whose output depends on where the neighbours sit, not only on the sine codes."""

    def __init__(self, dim: int, kernel_size: int = 3) -> None:
        super().__init__()
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 \
                or kernel_size % 2 == 0:
            raise ValueError(f"ConvPositionEncoding: kernel_size must be a positive odd int, got {kernel_size!r}")
        self.conv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)

    def forward(self, x: Tensor, coords: Tensor, batch_size: int, bev_shape: Sequence[int]) -> Tensor:
        """``(N, C)`` pillar rows at ``(N, 3)`` ``(b, y, x)`` coords (unique) -> ``(N, C)``."""
        if x.shape[0] == 0:
            return x
        mixed = self.conv(scatter_to_bev(x, coords, batch_size, bev_shape, check_unique=False)).flatten(2)
        return x + mixed[coords[:, 0], :, coords[:, 1] * bev_shape[1] + coords[:, 2]]


class SinePositionalEncoding2D(nn.Module):
    """``(N, dim)`` sin / cos of the pillar's x (first half) and y (second half) cell index
    at frequencies ``temperature ** (-2i / (dim / 2))``; zero-padded when ``dim % 4``."""

    def __init__(self, dim: int, temperature: float = 10000.0) -> None:
        super().__init__()
        self.dim, self.temperature = dim, float(temperature)

    def forward(self, coords: Tensor, dtype: torch.dtype) -> Tensor:
        """Encoding of ``(N, 3)`` ``(b, y, x)`` coords."""
        quarter = self.dim // 4
        freq = self.temperature ** (-torch.arange(quarter, device=coords.device,
                                                  dtype=torch.float32) / max(quarter, 1))
        if coords.shape[0] == 0:
            return torch.zeros((0, self.dim), dtype=dtype, device=coords.device)
        # one (cells, dim / 2) table of sin | cos per cell index, read for x then y: the same
        # values as evaluating every pillar, at the cost of the distinct indices only
        cells = torch.arange(int(coords[:, 1:].max()) + 1, device=coords.device)
        angle = cells[:, None].float() * freq[None, :]
        table = torch.cat([angle.sin(), angle.cos()], dim=1)
        pe = torch.cat([table.index_select(0, coords[:, 2]), table.index_select(0, coords[:, 1])],
                       dim=1)
        return F.pad(pe, (0, self.dim - pe.shape[1])).to(dtype)


class _PreNormLayer(nn.Module):
    """``x + attn(LN(x))`` then ``x + FFN(LN(x))``; positions are added to queries and keys."""

    def __init__(self, dim: int, num_heads: int, ffn_ratio: float = 2.0, dropout: float = 0.0,
                 activation: str = "gelu") -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dims {dim} must be a multiple of num_heads {num_heads}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        hidden = int(round(dim * ffn_ratio))
        self.num_heads = num_heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qk, self.v, self.proj = nn.Linear(dim, 2 * dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.ffn = nn.Sequential(nn.Linear(dim, hidden), ACTIVATIONS[activation](),
                                 nn.Dropout(dropout), nn.Linear(hidden, dim))
        self.drop = nn.Dropout(dropout)

    def attend(self, h: Tensor, pe: Tensor, layout: GroupLayout) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor, pe: Tensor, layout: GroupLayout) -> Tensor:
        x = x + self.drop(self.attend(self.norm1(x), pe, layout))
        return x + self.drop(self.ffn(self.norm2(x)))


class FlatAttentionLayer(_PreNormLayer):
    """FlatFormer's layer: attention inside equal-size groups of one sort order."""

    def __init__(self, *args, backend: str = "auto", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.backend = backend

    def attend(self, h: Tensor, pe: Tensor, layout: GroupLayout) -> Tensor:
        q, k = self.qk(h + pe).chunk(2, dim=1)
        out = group_attention(q, k, self.v(h), layout, self.num_heads, self.backend)
        return self.proj(out)

    def forward_slots(self, xs: Tensor, pe_slots: Tensor, layout: GroupLayout) -> Tensor:
        """:meth:`forward` on rows already in ``layout``'s slot order (``(G * g, C)``, padding
        slots included; positions ``pe_slots`` in that order too): the attention reads its
        groups as views, with no gather or scatter.  Row-wise parts (norms, projections,
        FFN) also run on the ``G * g - N`` padding duplicates, whose rows are discarded."""
        h = self.norm1(xs)
        q, k = self.qk(h + pe_slots).chunk(2, dim=1)
        out = slot_attention(q, k, self.v(h), layout.num_groups, layout.group_size,
                             layout.key_mask, self.num_heads)
        xs = xs + self.drop(self.proj(out))
        return xs + self.drop(self.ffn(self.norm2(xs)))


class PaddedWindowAttentionLayer(_PreNormLayer):
    """SST's layer: copy into ``(windows, max count, C)``, project and attend there; with
    :class:`perception_ops.flatten.WindowBuckets`, once per size bucket (SST's drop levels)."""

    def attend(self, h: Tensor, pe: Tensor, layout: GroupLayout | WindowBuckets) -> Tensor:
        if h.shape[0] == 0:
            return h.new_zeros(h.shape)
        buckets = layout.buckets if isinstance(layout, WindowBuckets) else (layout,)
        outs = [self.attend_windows(h, pe, bucket) for bucket in buckets]
        return (outs[0] if len(outs) == 1 else torch.cat(outs)).index_select(0, layout.scatter)

    def attend_windows(self, h: Tensor, pe: Tensor, layout: GroupLayout) -> Tensor:
        """``(windows * size, C)`` outputs of every slot of ``layout``'s padded windows."""
        windows, size, c = layout.num_groups, layout.group_size, h.shape[1]
        hw = h.index_select(0, layout.gather).view(windows, size, c)
        pw = pe.index_select(0, layout.gather).view(windows, size, c)
        q, k = self.qk(hw + pw).chunk(2, dim=2)

        def heads(t: Tensor) -> Tensor:
            return t.reshape(windows, size, self.num_heads, c // self.num_heads).transpose(1, 2)

        mask = None if layout.key_mask is None else layout.key_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(heads(q), heads(k), heads(self.v(hw)), attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(windows * size, c))


def check_inputs(name: str, in_channels: int, sparse_shape: Sequence[int], features: Tensor,
                 coors: Tensor, batch_size: int) -> Tensor:
    """SparseEncoder-style checks of ``(M, C_in)`` features and ``(M, 4)`` ``(b, z, y, x)``
    coords inside ``(batch_size, *sparse_shape)``; returns the coords as int64."""
    if features.dim() != 2 or features.shape[1] != in_channels:
        raise ValueError(f"{name}: voxel_features must be (M, {in_channels}), got "
                         f"{tuple(features.shape)}")
    if coors.dim() != 2 or coors.shape != (features.shape[0], 4):
        raise ValueError(f"{name}: coors must be (M, 4) (b, z, y, x) with M = "
                         f"{features.shape[0]}, got {tuple(coors.shape)}")
    if coors.is_floating_point():
        raise ValueError(f"{name}: coors must be integers, got {coors.dtype}")
    if isinstance(batch_size, bool) or int(batch_size) < 1:
        raise ValueError(f"{name}: batch_size must be >= 1, got {batch_size!r}")
    coors = coors.long()
    if coors.shape[0]:
        upper = torch.tensor([int(batch_size), *sparse_shape], device=coors.device)
        bad = ((coors < 0) | (coors >= upper)).any(dim=1)
        if bool(bad.any()):
            row = int(torch.nonzero(bad)[0, 0])
            raise ValueError(f"{name}: coors[{row}] = {coors[row].tolist()} outside (batch_size, "
                             f"D, H, W) = {(int(batch_size), *sparse_shape)}")
    return coors
