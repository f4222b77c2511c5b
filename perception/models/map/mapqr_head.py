"""MapQR-style head (Liu et al., ECCV 2024): one query per element, scatter-and-gather.

Each layer runs self-attention among the ``Q`` instance queries only (not ``Q * P`` point
queries: MapQR's saving over MapTR), then *scatters* every instance query to ``P`` point
queries by adding the positional embedding of each current reference point (sinusoidal ->
MLP), cross-attends the BEV around each point, and *gathers* the point results back to one
instance query (``gather="concat"``: the ``P`` outputs concatenated and projected, or
``"mean"`` / ``"max"`` + linear) with a residual and FFN.  The reference points are refined
from the instance query alone (``regression="instance"``, default: one MLP -> ``P x 2``
offsets) or from the point features (``"point"``: each scattered point query plus what it
sampled, plus the updated instance query, -> an MLP -> its own offset); a linear branch on the instance
query gives the class.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ...registry import MODELS
from .base_head import BaseMapHead, SeedQueries
from .geometry import inverse_sigmoid, sine_embedding, to_grid
from .layers import FFN, BEVPointAttention, SelfAttention, mlp

GATHER_MODES = ("concat", "mean", "max")
REGRESSION_MODES = ("point", "instance")


class ScatterGatherLayer(nn.Module):
    """Instance self-attention, scatter -> per-point BEV attention -> gather, FFN."""

    def __init__(self, embed_dims: int, num_points: int, num_heads: int, num_samples: int, ffn_dims: int,
                 dropout: float, gather: str) -> None:
        super().__init__()
        if gather not in GATHER_MODES:
            raise ValueError(f"MapQRHead: gather must be one of {GATHER_MODES}, got {gather!r}")
        self.gather_mode = gather
        self.self_attn = SelfAttention(embed_dims, num_heads, dropout)
        self.cross_attn = BEVPointAttention(embed_dims, num_heads, num_samples)
        self.gather = nn.Linear(embed_dims * (num_points if gather == "concat" else 1), embed_dims)
        self.norm = nn.LayerNorm(embed_dims)
        self.point_norm = nn.LayerNorm(embed_dims)
        self.drop = nn.Dropout(dropout)
        self.ffn = FFN(embed_dims, ffn_dims, dropout)

    def forward(self, x: Tensor, point_pos: Tensor, ref_grid: Tensor, value: Tensor,
                attn_mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """``x`` ``(B, Q, C)``, ``point_pos`` ``(B, Q, P, C)``, ``ref_grid`` ``(B, Q, P, 2)`` ->
        the updated instance queries ``(B, Q, C)`` and the point features ``(B, Q, P, C)``."""
        batch, queries, points, dims = point_pos.shape
        x = self.self_attn(x, point_pos.mean(dim=2), attn_mask)
        scattered = (x[:, :, None] + point_pos).flatten(1, 2)
        sampled = self.cross_attn(scattered, ref_grid.flatten(1, 2), value).view(batch, queries, points, dims)
        if self.gather_mode == "concat":
            gathered = sampled.flatten(2)
        elif self.gather_mode == "mean":
            gathered = sampled.mean(dim=2)
        else:
            gathered = sampled.amax(dim=2)
        x = self.norm(x + self.drop(self.gather(gathered)))
        points_out = self.point_norm(scattered.view(batch, queries, points, dims) + self.drop(sampled))
        return self.ffn(x), points_out


@MODELS.register_module()
class MapQRHead(BaseMapHead):
    """MapQR-style scatter-and-gather vector-map head (module doc; options in :class:`BaseMapHead`)."""

    def __init__(self, *args: Any, gather: str = "concat", regression: str = "instance", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if regression not in REGRESSION_MODES:
            raise ValueError(f"MapQRHead: regression must be one of {REGRESSION_MODES}, got {regression!r}")
        self.regression = regression
        c, p = self.embed_dims, self.num_points
        self.query_embed = nn.Embedding(self.num_all_queries, c)
        self.seed_embed = nn.Embedding(1, c) if self.num_seed_queries else None
        self.ref_head = nn.Linear(c, p * 2)
        self.pos_mlp = mlp(c, c, c, 2)
        self.layers = nn.ModuleList(ScatterGatherLayer(c, p, self.num_heads, self.num_samples, self.ffn_dims,
                                                       self.dropout, gather) for _ in range(self.num_layers))
        reg_out = 2 if regression == "point" else p * 2
        self.reg_branches = nn.ModuleList(mlp(c, c, reg_out, 3) for _ in range(self.num_layers))
        self.cls_branches = nn.ModuleList(nn.Linear(c, self.num_classes) for _ in range(self.num_layers))
        for branch in self.reg_branches:
            nn.init.zeros_(branch[-1].weight)
            nn.init.zeros_(branch[-1].bias)
        for branch in self.cls_branches:
            nn.init.constant_(branch.bias, -4.6)  # prior probability 0.01

    def point_pos(self, ref: Tensor) -> Tensor:
        """``(B, Q, P, C)`` positional embeddings of ``(B, Q, P, 2)`` normalized reference points."""
        return self.pos_mlp(sine_embedding(ref, self.embed_dims // 2))

    def initial_reference_points(self, num_queries: int) -> Tensor:
        """``(num_queries, P, 2)`` learned initial reference points in ``[0, 1]`` (from the
        instance query embeddings, before any ``query_init``)."""
        return self.ref_head(self.query_embed.weight[:num_queries]).view(num_queries, self.num_points, 2).sigmoid()

    def decode(self, value: Tensor, query_init: Tensor | None, ref_init: Tensor | None,
               num_queries: int, attn_mask: Tensor | None,
               seeds: SeedQueries | None = None) -> tuple[list[Tensor], list[Tensor]]:
        batch = value.shape[0]
        x = self.query_embed.weight[:num_queries][None].expand(batch, -1, -1).clone()
        ref = self.initial_reference_points(num_queries)[None].expand(batch, -1, -1, -1)
        if query_init is not None:
            x[:, :self.num_queries] = x[:, :self.num_queries] + query_init.to(x.dtype)
        if ref_init is not None:
            ref = torch.cat([ref_init.to(ref.dtype).clamp(0, 1), ref[:, self.num_queries:]], dim=1)
        if seeds is not None:  # the seed embedding + each seed's query, at the seed's points
            x = torch.cat([x, self.seed_embed.weight[None] + seeds.query.to(x.dtype)], dim=1)
            ref = torch.cat([ref, seeds.ref.to(ref.dtype).clamp(0, 1)], dim=1)
        num_queries = x.shape[1]
        all_cls, all_pts = [], []
        for layer, reg, cls in zip(self.layers, self.reg_branches, self.cls_branches):
            x, point_feats = layer(x, self.point_pos(ref), to_grid(ref, self.map_range, self.bev_range), value,
                                   attn_mask)
            if self.regression == "point":
                delta = reg(point_feats + x[:, :, None])
            else:
                delta = reg(x).view(batch, num_queries, self.num_points, 2)
            new_ref = (inverse_sigmoid(ref) + delta).sigmoid()
            all_pts.append(new_ref)
            all_cls.append(cls(x))
            ref = new_ref.detach()
        return all_cls, all_pts
