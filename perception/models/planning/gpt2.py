"""A GPT-2 style causal transformer over continuous token embeddings (the STR backbone).

Pre-norm blocks (LayerNorm -> causal multi-head self-attention -> residual, LayerNorm -> GELU
MLP -> residual), learned absolute position embeddings and a final LayerNorm, as GPT-2; the
attention is PyTorch's ``scaled_dot_product_attention`` (flash / memory-efficient kernels where
the device has them).  Padded tokens are masked as keys; every token still attends to itself so
no attention row is empty.  ``PRESETS`` name sizes from ~30 k to ~85 M parameters for scaling
studies.
"""
from __future__ import annotations

import math
from types import MappingProxyType
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...registry import MODELS

PRESETS: Mapping[str, Mapping[str, int]] = MappingProxyType({
    "tiny": MappingProxyType(dict(embed_dim=32, num_layers=2, num_heads=2)),
    "mini": MappingProxyType(dict(embed_dim=64, num_layers=3, num_heads=4)),
    "small": MappingProxyType(dict(embed_dim=128, num_layers=4, num_heads=4)),
    "medium": MappingProxyType(dict(embed_dim=256, num_layers=6, num_heads=8)),
    "large": MappingProxyType(dict(embed_dim=512, num_layers=8, num_heads=8)),
    "xl": MappingProxyType(dict(embed_dim=768, num_layers=12, num_heads=12)),
})
"""Backbone sizes (GPT-2 small is ``xl``); the backbone alone spans ~25 k to ~85 M parameters."""


def resolve_size(preset: str | None, embed_dim: int | None, num_layers: int | None,
                 num_heads: int | None) -> tuple[int, int, int]:
    """``(embed_dim, num_layers, num_heads)`` from a preset name, overridden by explicit values."""
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown STR size preset {preset!r}; choose from {sorted(PRESETS)}")
    base = dict(PRESETS[preset or "small"])
    dim = int(embed_dim or base["embed_dim"])
    layers, heads = int(num_layers or base["num_layers"]), int(num_heads or base["num_heads"])
    if dim % heads:
        raise ValueError(f"embed_dim {dim} must be divisible by num_heads {heads}")
    return dim, layers, heads


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention on ``scaled_dot_product_attention``."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, mask: Tensor, past: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """``x`` ``(B, n, D)`` new tokens; ``past`` cached keys / values ``(B, h, L0, D/h)`` of
        earlier tokens; returns the output and the keys / values of all tokens."""
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.proj(out.transpose(1, 2).reshape(b, n, d)), (k, v)


class Block(nn.Module):
    """One pre-norm transformer block."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads, dropout)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), nn.Dropout(dropout))

    def forward(self, x: Tensor, mask: Tensor, past: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        attended, cache = self.attn(self.ln1(x), mask, past)
        x = x + attended
        return x + self.mlp(self.ln2(x)), cache


@MODELS.register_module(name="STRGPT2")
class GPT2Backbone(nn.Module):
    """Causal transformer over ``(B, L, D)`` token embeddings (``L <= max_tokens``)."""

    def __init__(self, preset: str | None = "small", embed_dim: int | None = None, num_layers: int | None = None,
                 num_heads: int | None = None, max_tokens: int = 512, dropout: float = 0.0) -> None:
        super().__init__()
        self.embed_dim, self.num_layers, self.num_heads = resolve_size(preset, embed_dim, num_layers, num_heads)
        self.max_tokens = max_tokens
        self.pos = nn.Parameter(torch.zeros(1, max_tokens, self.embed_dim))
        self.blocks = nn.ModuleList(Block(self.embed_dim, self.num_heads, dropout) for _ in range(self.num_layers))
        self.ln_f = nn.LayerNorm(self.embed_dim)
        self.apply(self._init_weights)
        for name, param in self.named_parameters():  # GPT-2's scaled init of residual projections
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(param, std=0.02 / math.sqrt(2 * self.num_layers))
        nn.init.normal_(self.pos, std=0.02)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)

    def forward(self, tokens: Tensor, valid: Tensor | None = None, past: "KVCache | None" = None,
                return_cache: bool = False) -> Tensor | tuple[Tensor, "KVCache"]:
        """``tokens`` ``(B, n, D)``; ``valid`` ``(B, n)`` bool (False = padding, masked as a key).

        With ``past`` (a :class:`KVCache` of the ``L0`` tokens before these) only the new tokens
        are computed, attending to the cached ones -- autoregressive decoding without recomputing
        the prefix.  ``return_cache`` also returns the cache of all ``L0 + n`` tokens."""
        if tokens.dim() != 3 or tokens.shape[-1] != self.embed_dim:
            raise ValueError(f"STRGPT2: tokens must be (B, L, {self.embed_dim}), got {tuple(tokens.shape)}")
        b, n, _ = tokens.shape
        offset = 0 if past is None else past.length
        if offset + n > self.max_tokens:
            raise ValueError(f"STRGPT2: {offset + n} tokens exceed max_tokens={self.max_tokens}")
        if past is not None and past.valid.shape[0] != b:
            raise ValueError(f"STRGPT2: cache batch {past.valid.shape[0]} != token batch {b}")
        device = tokens.device
        new_valid = torch.ones(b, n, dtype=torch.bool, device=device) if valid is None else valid.bool()
        all_valid = new_valid if past is None else torch.cat([past.valid, new_valid], dim=1)
        rows = torch.arange(offset, offset + n, device=device)[:, None]
        cols = torch.arange(offset + n, device=device)[None]
        mask = ((cols <= rows)[None, None] & all_valid[:, None, None, :]) | (cols == rows)[None, None]
        x = tokens + self.pos[:, offset:offset + n]
        caches = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, mask, None if past is None else past.layers[i])
            caches.append(kv)
        out = self.ln_f(x)
        return (out, KVCache(caches, all_valid)) if return_cache else out


class KVCache:
    """Per-layer keys / values ``(B, heads, L, D/heads)`` and validity ``(B, L)`` of a prefix."""

    def __init__(self, layers: list[tuple[Tensor, Tensor]], valid: Tensor) -> None:
        self.layers, self.valid = layers, valid

    @property
    def length(self) -> int:
        return int(self.valid.shape[1])

    def repeat_interleave(self, repeats: int) -> "KVCache":
        """The cache with each batch entry repeated ``repeats`` times (one per mode)."""
        return KVCache([(k.repeat_interleave(repeats, 0), v.repeat_interleave(repeats, 0)) for k, v in self.layers],
                       self.valid.repeat_interleave(repeats, 0))
