"""STR context encoders: map and agent context as tokens for the causal backbone.

* :class:`VectorContextEncoder` (``STRVectorEncoder``): each map piece through a PointNet
  (shared point MLP, max-pool, MLP) plus a type embedding, each agent's whole history
  (flattened local states) through an MLP plus a type embedding -> one token per piece / agent.
* :class:`RasterContextEncoder` (``STRRasterEncoder``): the BEV raster of the same context
  through a small strided CNN -> one token per cell of the output grid (with a learned position
  embedding).

Both take the feature dict of :mod:`perception.planning.motion_features` (positions in metres,
scaled by ``1 / pos_scale`` inside) and return ``(tokens (B, C, D), valid (B, C))``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ...registry import MODELS

NUM_AGENT_TYPES = 5
NUM_POLYLINE_TYPES = 4


def mlp(dims: list[int]) -> nn.Sequential:
    """Linear + LayerNorm + GELU stacks, plain Linear last."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers += [nn.LayerNorm(b), nn.GELU()]
    return nn.Sequential(*layers)


def scale_states(states: Tensor, pos_scale: float) -> Tensor:
    """Local states ``x, y, cos, sin, vx, vy, valid`` with positions / velocities normalised."""
    return torch.cat([states[..., :2] / pos_scale, states[..., 2:4], states[..., 4:6] / pos_scale,
                      states[..., 6:]], dim=-1)


@MODELS.register_module(name="STRVectorEncoder")
class VectorContextEncoder(nn.Module):
    """PointNet map pieces + MLP agent histories -> context tokens."""

    def __init__(self, embed_dim: int = 128, history_frames: int = 10, point_dim: int = 4, state_dim: int = 7,
                 hidden_dim: int = 64, pos_scale: float = 20.0) -> None:
        super().__init__()
        self.embed_dim, self.pos_scale = embed_dim, pos_scale
        self.point_mlp = mlp([point_dim, hidden_dim, hidden_dim])
        self.piece_mlp = mlp([hidden_dim, hidden_dim, embed_dim])
        self.piece_type = nn.Embedding(NUM_POLYLINE_TYPES, embed_dim)
        self.agent_mlp = mlp([(history_frames + 1) * state_dim, hidden_dim * 2, embed_dim])
        self.agent_type = nn.Embedding(NUM_AGENT_TYPES, embed_dim)

    def forward(self, inputs: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        polylines = inputs["polylines"]
        if polylines.dim() != 4:
            raise ValueError(f"STRVectorEncoder: polylines must be (B, M, P, 4), got {tuple(polylines.shape)}")
        points = torch.cat([polylines[..., :2] / self.pos_scale, polylines[..., 2:]], dim=-1)
        pieces = self.piece_mlp(self.point_mlp(points).max(dim=2).values) + self.piece_type(inputs["polyline_types"])
        agents = scale_states(inputs["agents"], self.pos_scale)
        agents = self.agent_mlp(agents.flatten(2)) + self.agent_type(inputs["agent_types"])
        tokens = torch.cat([pieces, agents], dim=1)
        valid = torch.cat([inputs["polyline_mask"], inputs["agent_mask"]], dim=1).bool()
        return tokens, valid


@MODELS.register_module(name="STRRasterEncoder")
class RasterContextEncoder(nn.Module):
    """Strided CNN over the BEV raster -> one token per output cell."""

    def __init__(self, embed_dim: int = 128, in_channels: int = 7, raster_size: int = 64, channels: int = 32,
                 num_downsamples: int = 3) -> None:
        super().__init__()
        if raster_size % (2 ** num_downsamples):
            raise ValueError(f"STRRasterEncoder: raster_size {raster_size} is not divisible by 2**{num_downsamples}")
        layers: list[nn.Module] = []
        width = in_channels
        for _ in range(num_downsamples):
            layers += [nn.Conv2d(width, channels, 3, stride=2, padding=1), nn.GroupNorm(1, channels), nn.GELU()]
            width = channels
        layers.append(nn.Conv2d(width, embed_dim, 1))
        self.cnn = nn.Sequential(*layers)
        self.in_channels, self.cells = in_channels, (raster_size // 2 ** num_downsamples) ** 2
        self.pos = nn.Parameter(torch.randn(1, self.cells, embed_dim) * 0.02)

    def forward(self, inputs: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        if "raster" not in inputs:
            raise ValueError("STRRasterEncoder: inputs have no 'raster'; set the dataset's feature_cfg.raster_size")
        raster = inputs["raster"]
        if raster.dim() != 4 or raster.shape[1] != self.in_channels:
            raise ValueError(f"STRRasterEncoder: raster must be (B, {self.in_channels}, S, S), got {tuple(raster.shape)}")
        tokens = self.cnn(raster).flatten(2).transpose(1, 2)
        if tokens.shape[1] != self.cells:
            raise ValueError(f"STRRasterEncoder: raster gives {tokens.shape[1]} cells, configured for {self.cells}")
        tokens = tokens + self.pos
        return tokens, torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
