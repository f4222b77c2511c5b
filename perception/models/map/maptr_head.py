"""MapTR-style head (Liao et al., ICLR 2023): hierarchical queries, one per (instance, point).

Every element has ``num_points`` point queries: the instance embedding plus a shared point
embedding (each ``2C`` wide, split into a positional and a content half).  Each decoder layer
runs self-attention over all ``Q * P`` point queries (``self_attn="full"``, MapTR) or
MapTRv2's decoupled form (among the points of an instance, then among instances at each point
index: ``self_attn="decoupled"``), BEV cross-attention around each point's reference point,
and an FFN; a per-point regression branch refines the reference points, and the class comes
from the mean of an instance's point queries.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ...registry import MODELS
from .base_head import BaseMapHead, SeedQueries
from .geometry import inverse_sigmoid, to_grid
from .layers import FFN, CrossAttention, SelfAttention, mlp


class MapTRDecoderLayer(nn.Module):
    """Self-attention over point queries, BEV point cross-attention, FFN."""

    def __init__(self, embed_dims: int, num_heads: int, num_samples: int, ffn_dims: int, dropout: float,
                 self_attn: str) -> None:
        super().__init__()
        if self_attn not in ("full", "decoupled"):
            raise ValueError(f"MapTRHead: self_attn must be 'full' or 'decoupled', got {self_attn!r}")
        self.mode = self_attn
        self.self_attn = SelfAttention(embed_dims, num_heads, dropout)
        self.inter_attn = SelfAttention(embed_dims, num_heads, dropout) if self_attn == "decoupled" else None
        self.cross_attn = CrossAttention(embed_dims, num_heads, num_samples, dropout)
        self.ffn = FFN(embed_dims, ffn_dims, dropout)

    def forward(self, x: Tensor, pos: Tensor, ref_grid: Tensor, value: Tensor, attn_mask: Tensor | None) -> Tensor:
        """``x``/``pos`` ``(B, Q, P, C)``, ``ref_grid`` ``(B, Q, P, 2)``; ``attn_mask`` is instance-level."""
        batch, queries, points, dims = x.shape
        if self.mode == "full":
            mask = None if attn_mask is None else attn_mask.repeat_interleave(points, 0).repeat_interleave(points, 1)
            x = self.self_attn(x.flatten(1, 2), pos.flatten(1, 2), mask).view(batch, queries, points, dims)
        else:  # intra-instance (over P), then inter-instance (over Q) at each point index
            x = self.self_attn(x.flatten(0, 1), pos.flatten(0, 1)).view(batch, queries, points, dims)
            xt, pt = x.transpose(1, 2).flatten(0, 1), pos.transpose(1, 2).flatten(0, 1)
            x = self.inter_attn(xt, pt, attn_mask).view(batch, points, queries, dims).transpose(1, 2)
        flat = self.cross_attn(x.flatten(1, 2), pos.flatten(1, 2), ref_grid.flatten(1, 2), value)
        return self.ffn(flat).view(batch, queries, points, dims)


@MODELS.register_module()
class MapTRHead(BaseMapHead):
    """MapTR-style vector-map head on BEV features (module doc; options in :class:`BaseMapHead`)."""

    def __init__(self, *args: Any, self_attn: str = "full", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        c = self.embed_dims
        self.instance_embed = nn.Embedding(self.num_all_queries, 2 * c)
        self.point_embed = nn.Embedding(self.num_points, 2 * c)
        self.seed_embed = nn.Embedding(1, 2 * c) if self.num_seed_queries else None
        self.ref_head = nn.Linear(c, 2)
        self.layers = nn.ModuleList(MapTRDecoderLayer(c, self.num_heads, self.num_samples, self.ffn_dims,
                                                      self.dropout, self_attn) for _ in range(self.num_layers))
        self.reg_branches = nn.ModuleList(mlp(c, c, 2, 3) for _ in range(self.num_layers))
        self.cls_branches = nn.ModuleList(nn.Linear(c, self.num_classes) for _ in range(self.num_layers))
        for branch in self.reg_branches:
            nn.init.zeros_(branch[-1].weight)
            nn.init.zeros_(branch[-1].bias)
        for branch in self.cls_branches:
            nn.init.constant_(branch.bias, -4.6)  # prior probability 0.01

    def initial_reference_points(self, num_queries: int) -> Tensor:
        """``(num_queries, P, 2)`` learned initial reference points in ``[0, 1]`` (from the
        positional half of the hierarchical query embeddings)."""
        embed = self.instance_embed.weight[:num_queries, None] + self.point_embed.weight[None]
        return self.ref_head(embed[..., :self.embed_dims]).sigmoid()

    def decode(self, value: Tensor, query_init: Tensor | None, ref_init: Tensor | None,
               num_queries: int, attn_mask: Tensor | None,
               seeds: SeedQueries | None = None) -> tuple[list[Tensor], list[Tensor]]:
        batch = value.shape[0]
        embed = self.instance_embed.weight[:num_queries, None] + self.point_embed.weight[None]  # (Q, P, 2C)
        pos, x = embed.split(self.embed_dims, dim=-1)
        pos = pos[None].expand(batch, -1, -1, -1)
        x = x[None].expand(batch, -1, -1, -1).clone()
        if query_init is not None:
            x[:, :self.num_queries] = x[:, :self.num_queries] + query_init[:, :, None].to(x.dtype)
        ref = self.initial_reference_points(num_queries)[None].expand(batch, -1, -1, -1)
        if ref_init is not None:
            ref = torch.cat([ref_init.to(ref.dtype).clamp(0, 1), ref[:, self.num_queries:]], dim=1)
        if seeds is not None:  # the seed embedding + each seed's query, at the seed's points
            seed = self.seed_embed.weight[:, None] + self.point_embed.weight[None]    # (1, P, 2C)
            seed_pos, seed_x = seed.split(self.embed_dims, dim=-1)
            k = seeds.query.shape[1]
            pos = torch.cat([pos, seed_pos[None].expand(batch, k, -1, -1)], dim=1)
            x = torch.cat([x, seed_x[None] + seeds.query[:, :, None].to(x.dtype)], dim=1)
            ref = torch.cat([ref, seeds.ref.to(ref.dtype).clamp(0, 1)], dim=1)
        all_cls, all_pts = [], []
        for layer, reg, cls in zip(self.layers, self.reg_branches, self.cls_branches):
            x = layer(x, pos, to_grid(ref, self.map_range, self.bev_range), value, attn_mask)
            new_ref = (inverse_sigmoid(ref) + reg(x)).sigmoid()
            all_pts.append(new_ref)
            all_cls.append(cls(x.mean(dim=2)))
            ref = new_ref.detach()
        return all_cls, all_pts
