"""Decoder building blocks of the map heads, pure torch.

:class:`BEVPointAttention` is a deformable-attention-style BEV cross-attention: every query
samples ``num_samples`` points per head around its reference point with learned offsets
(in feature cells) by bilinear ``F.grid_sample``, weighted by a learned softmax.  One scale,
no custom kernel, so it runs on any device.  :class:`SelfAttention` and :class:`FFN` are
post-norm residual blocks (Deformable DETR's layout).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class BEVPointAttention(nn.Module):
    """Bilinear multi-head sampling of a BEV map around reference points (module doc).

    ``forward(query (B, T, C), ref_grid (B, T, 2) grid_sample coords, value (B, C, H, W))``
    returns ``(B, T, C)``; the value projection is shared over the queries of a call."""

    def __init__(self, embed_dims: int, num_heads: int = 4, num_samples: int = 4) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f"BEVPointAttention: embed_dims {embed_dims} not divisible by num_heads {num_heads}")
        self.embed_dims, self.num_heads, self.num_samples = embed_dims, num_heads, num_samples
        self.offsets = nn.Linear(embed_dims, num_heads * num_samples * 2)
        self.weights = nn.Linear(embed_dims, num_heads * num_samples)
        self.value_proj = nn.Conv2d(embed_dims, embed_dims, 1)
        self.output_proj = nn.Linear(embed_dims, embed_dims)
        self._reset()

    def _reset(self) -> None:
        """Offsets start on a ring of radius 1..K cells per head (Deformable DETR's init)."""
        nn.init.zeros_(self.offsets.weight)
        angles = torch.arange(self.num_heads, dtype=torch.float32) * (2 * math.pi / self.num_heads)
        ring = torch.stack([angles.cos(), angles.sin()], -1)
        ring = ring / ring.abs().max(-1, keepdim=True).values
        radius = torch.arange(1, self.num_samples + 1, dtype=torch.float32)[None, :, None]
        with torch.no_grad():
            self.offsets.bias.copy_((ring[:, None, :] * radius).flatten())
        nn.init.zeros_(self.weights.weight)
        nn.init.zeros_(self.weights.bias)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.zeros_(self.value_proj.bias)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)

    def forward(self, query: Tensor, ref_grid: Tensor, value: Tensor) -> Tensor:
        batch, tokens, _ = query.shape
        heads, samples = self.num_heads, self.num_samples
        height, width = value.shape[-2:]
        cell = query.new_tensor([2.0 / width, 2.0 / height])
        offsets = self.offsets(query).view(batch, tokens, heads, samples, 2) * cell
        loc = ref_grid[:, :, None, None, :] + offsets  # (B, T, h, K, 2)
        weights = self.weights(query).view(batch, tokens, heads, samples).softmax(-1)
        value = self.value_proj(value).reshape(batch * heads, self.embed_dims // heads, height, width)
        loc = loc.permute(0, 2, 1, 3, 4).reshape(batch * heads, tokens, samples, 2)
        sampled = F.grid_sample(value, loc.to(value.dtype), mode="bilinear", padding_mode="zeros",
                                align_corners=False)  # (B*h, C/h, T, K)
        weights = weights.permute(0, 2, 1, 3).reshape(batch * heads, 1, tokens, samples)
        out = (sampled * weights).sum(-1)  # (B*h, C/h, T)
        out = out.view(batch, self.embed_dims, tokens).transpose(1, 2)
        return self.output_proj(out)


class SelfAttention(nn.Module):
    """Post-norm residual multi-head self-attention with a positional embedding added to the
    queries and keys; ``attn_mask`` ``(T, T)`` bool, True = blocked."""

    def __init__(self, embed_dims: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(embed_dims, num_heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(embed_dims)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, pos: Tensor | None, attn_mask: Tensor | None = None) -> Tensor:
        qk = x if pos is None else x + pos
        out, _ = self.attn(qk, qk, x, attn_mask=attn_mask, need_weights=False)
        return self.norm(x + self.drop(out))


class CrossAttention(nn.Module):
    """Post-norm residual :class:`BEVPointAttention` (positional embedding added to the query)."""

    def __init__(self, embed_dims: int, num_heads: int, num_samples: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.attn = BEVPointAttention(embed_dims, num_heads, num_samples)
        self.norm = nn.LayerNorm(embed_dims)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, pos: Tensor | None, ref_grid: Tensor, value: Tensor) -> Tensor:
        out = self.attn(x if pos is None else x + pos, ref_grid, value)
        return self.norm(x + self.drop(out))


class FFN(nn.Module):
    """Post-norm residual two-layer MLP."""

    def __init__(self, embed_dims: int, ffn_dims: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(embed_dims, ffn_dims), nn.ReLU(inplace=True),
                                 nn.Dropout(dropout), nn.Linear(ffn_dims, embed_dims))
        self.norm = nn.LayerNorm(embed_dims)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x + self.drop(self.net(x)))


def mlp(in_dims: int, hidden: int, out_dims: int, layers: int = 2) -> nn.Sequential:
    """``layers`` linear layers with ReLU in between (the heads' regression branches)."""
    mods: list[nn.Module] = []
    dims = [in_dims] + [hidden] * (layers - 1) + [out_dims]
    for i in range(layers):
        mods.append(nn.Linear(dims[i], dims[i + 1]))
        if i < layers - 1:
            mods.append(nn.ReLU(inplace=True))
    return nn.Sequential(*mods)
