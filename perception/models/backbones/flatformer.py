"""FlatFormer (Liu et al., CVPR 2023) and an SST-style padded-window baseline, as BEV
backbones with the :class:`SparseEncoder` call signature so a config can swap them.

``forward(voxel_features (M, C), coors (M, 4) (b, z, y, x), batch_size)`` returns the BEV
map ``(B, C_out, H', W')`` with ``H' = ceil(H / bev_stride)``, ``W' = ceil(W / bev_stride)``
(columns +x, rows +y: ``bev[b, :, y // s, x // s]`` holds the pillar of voxel ``(b, z, y,
x)``).  The voxels' z layers collapse into pillars (:class:`.flatformer_blocks.PillarEmbedding`).

* :class:`FlatFormer`: ``depth`` blocks of four layers attending inside equal-size groups
  of ``group_size`` pillars of the serpentine orders ``x``, ``x_shift``, ``y``, ``y_shift``
  (:mod:`perception_ops.flatten`); the four sorts are computed once per frame.  Its
  features stay in the slot order of the layer running (padding duplicates included):
  one gather per layer moves them to the next layer's order (:meth:`FlattenPlan.transition`),
  positional encodings are gathered once per order and reused by every block, and the
  attention reads its equal-size groups as views (unmasked SDPA when every group is full).
  ``keep_sorted=False`` (or the fused Triton attention on CUDA) runs the per-layer
  gather / attend / scatter path instead; both compute the same outputs.
* :class:`SSTWindowBackbone`: ``depth`` blocks of two layers (windows, half-window shifted
  windows) attending inside equal-*shape* windows, each padded to the fullest window's count
  or, with ``buckets=(30, 60)`` (SST's inference drop levels), to the fullest window of its
  size bucket (windows fuller than every bound form the last bucket).

``window_shape`` is ``(wx, wy)`` in pillars (x first, as FlatFormer's and SST's configs).
With ``sparse_shape=(41, 1440, 1440)``, ``bev_stride=8`` and ``out_channels=256`` the output
is the CenterPoint nuScenes sparse encoder's ``(B, 256, 180, 180)``.
"""
from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from perception_ops.flatten import (ORDERS, FlattenPlan, GroupLayout, WindowBuckets, build_plan,
                                    scatter_to_bev, uses_triton, window_buckets,
                                    window_partition)
from perception_ops.flatten.plan import check_positive_pair

from ...registry import MODELS
from .flatformer_blocks import (ConvPositionEncoding, FlatAttentionLayer, PaddedWindowAttentionLayer,
                                PillarEmbedding, SinePositionalEncoding2D, _PreNormLayer, check_inputs)


def bev_refinement(channels: int, layers: int) -> nn.Module:
    """``layers`` dense 3 x 3 conv + BN + ReLU on the scattered BEV map (identity for 0): the
    attention only writes occupied pillars, while a sparse conv encoder's strided layers also
    fill the cells around them (the empty middle of a bus seen from one side); these layers
    spread the features into those cells before the BEV backbone."""
    if layers == 0:
        return nn.Identity()
    blocks: list[nn.Module] = []
    for _ in range(layers):
        blocks += [nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                   nn.BatchNorm2d(channels, eps=1e-3, momentum=0.1), nn.ReLU(inplace=True)]
    return nn.Sequential(*blocks)


class _BEVTransformer(nn.Module):
    """Shared body: pillar embedding, positions, ``depth`` blocks, norm, projection, BEV."""

    LAYERS_PER_BLOCK = 4

    def __init__(self, in_channels: int, sparse_shape: Sequence[int], bev_stride: int = 1,
                 embed_dims: int = 128, num_heads: int = 8, depth: int = 2,
                 window_shape: int | Sequence[int] = (9, 9), ffn_ratio: float = 2.0,
                 dropout: float = 0.0, activation: str = "gelu",
                 out_channels: int | None = None, pos_temperature: float = 10000.0,
                 voxel_channels: Sequence[int] = (), sub_cells: int = 1, bev_convs: int = 0,
                 conv_pos: bool = False) -> None:
        super().__init__()
        name = type(self).__name__
        if len(sparse_shape) != 3 or any(int(s) < 1 for s in sparse_shape):
            raise ValueError(f"{name}: sparse_shape must be (D, H, W) positive, got {sparse_shape}")
        if max(int(s) for s in sparse_shape[1:]) > 2 ** 21:
            raise ValueError(f"{name}: sparse_shape H and W must be <= 2 ** 21 (packed pillar "
                             f"keys), got {sparse_shape}")
        for arg, value in (("in_channels", in_channels), ("bev_stride", bev_stride),
                           ("embed_dims", embed_dims), ("num_heads", num_heads), ("depth", depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: {arg} must be a positive int, got {value!r}")
        self.in_channels = in_channels
        self.sparse_shape = tuple(int(s) for s in sparse_shape)
        self.bev_stride = bev_stride
        self.bev_shape = (-(-self.sparse_shape[1] // bev_stride), -(-self.sparse_shape[2] // bev_stride))
        self.window_shape = check_positive_pair(
            tuple(window_shape) if not isinstance(window_shape, int) else window_shape,
            f"{name}: window_shape")
        self.out_channels = out_channels or embed_dims
        self.embed = PillarEmbedding(in_channels, embed_dims, self.sparse_shape[0], bev_stride, voxel_channels,
                                     sub_cells)
        self.pos = SinePositionalEncoding2D(embed_dims, pos_temperature)
        self.blocks = nn.ModuleList(
            nn.ModuleList(self.make_layer(embed_dims, num_heads, ffn_ratio, dropout, activation)
                          for _ in range(self.LAYERS_PER_BLOCK)) for _ in range(depth))
        # one CPVT positional-encoding generator before each block (``conv_pos``), else nothing
        self.conv_pos = nn.ModuleList(ConvPositionEncoding(embed_dims) for _ in range(depth)) if conv_pos else None
        self.norm = nn.LayerNorm(embed_dims)
        self.out_proj = (nn.Identity() if self.out_channels == embed_dims
                         else nn.Linear(embed_dims, self.out_channels))
        if isinstance(bev_convs, bool) or not isinstance(bev_convs, int) or bev_convs < 0:
            raise ValueError(f"{name}: bev_convs must be an int >= 0, got {bev_convs!r}")
        self.bev_refine = bev_refinement(self.out_channels, bev_convs)

    def make_layer(self, dim: int, heads: int, ffn_ratio: float, dropout: float,
                   activation: str) -> _PreNormLayer:
        raise NotImplementedError

    def layouts(self, coords: Tensor, batch_size: int) -> list[GroupLayout]:
        """The group layout of each layer of a block (computed once per frame)."""
        raise NotImplementedError

    def forward(self, voxel_features: Tensor, coors: Tensor, batch_size: int) -> Tensor:
        """BEV map ``(B, C_out, H', W')`` of the voxels (module doc)."""
        coors = check_inputs(type(self).__name__, self.in_channels, self.sparse_shape,
                             voxel_features, coors, batch_size)
        x, coords = self.embed(voxel_features, coors)
        x = self.encode(x, self.pos(coords, x.dtype), coords, int(batch_size))
        x = self.out_proj(self.norm(x))
        bev = scatter_to_bev(x, coords, int(batch_size), self.bev_shape, check_unique=False)
        return self.bev_refine(bev)

    def encode(self, x: Tensor, pe: Tensor, coords: Tensor, batch_size: int) -> Tensor:
        """Every block's layers on the pillar rows ``x (N, C)`` (positions ``pe``), each
        layer gathering into its groups and scattering back (the layouts of a frame are
        computed once)."""
        layouts = self.layouts(coords, batch_size)
        for index, block in enumerate(self.blocks):
            x = self.mix_positions(index, x, coords, batch_size)
            for layer, layout in zip(block, layouts):
                x = layer(x, pe, layout)
        return x

    def mix_positions(self, block: int, x: Tensor, coords: Tensor, batch_size: int) -> Tensor:
        """Block ``block``'s convolutional positional encoding of the pillar rows (identity
        without ``conv_pos``)."""
        if self.conv_pos is None:
            return x
        return self.conv_pos[block](x, coords, batch_size, self.bev_shape)


@MODELS.register_module()
class FlatFormer(_BEVTransformer):
    """Flattened window attention backbone (module doc); ``group_size`` pillars per group."""

    def __init__(self, in_channels: int, sparse_shape: Sequence[int], group_size: int = 69,
                 attention_backend: str = "auto", keep_sorted: bool = True, **kwargs) -> None:
        if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
            raise ValueError(f"FlatFormer: group_size must be a positive int, got {group_size!r}")
        if attention_backend not in ("auto", "torch", "triton"):
            raise ValueError(f"FlatFormer: attention_backend must be 'auto', 'torch' or "
                             f"'triton', got {attention_backend!r}")
        self.group_size, self.attention_backend = group_size, attention_backend
        self.keep_sorted = bool(keep_sorted)
        super().__init__(in_channels, sparse_shape, **kwargs)

    def make_layer(self, dim: int, heads: int, ffn_ratio: float, dropout: float,
                   activation: str) -> _PreNormLayer:
        return FlatAttentionLayer(dim, heads, ffn_ratio, dropout, activation,
                                  backend=self.attention_backend)

    def plan(self, coords: Tensor, batch_size: int) -> FlattenPlan:
        """The frame's four sorts and group padding (pillar coords ``(P, 3)``)."""
        return build_plan(coords, batch_size, self.bev_shape, self.window_shape, self.group_size)

    def layouts(self, coords: Tensor, batch_size: int) -> list[GroupLayout]:
        plan = self.plan(coords, batch_size)
        return [plan.layout(order) for order in ORDERS]

    def encode(self, x: Tensor, pe: Tensor, coords: Tensor, batch_size: int) -> Tensor:
        """The slot-order path (:meth:`sorted_layers`) unless ``keep_sorted`` is off or the
        attention runs the fused Triton kernel (per-layer gathers, the base class)."""
        if not self.keep_sorted or uses_triton(x, self.attention_backend):
            return super().encode(x, pe, coords, batch_size)
        return self.sorted_layers(x, pe, self.plan(coords, batch_size), coords, batch_size)

    def sorted_layers(self, x: Tensor, pe: Tensor, plan: FlattenPlan, coords: Tensor | None = None,
                      batch_size: int = 1) -> Tensor:
        """Every block's layers on ``x (N, C)`` kept in slot order; returns ``(N, C)`` in
        voxel order (each voxel from its primary slot of the last layer).  With ``conv_pos``
        the rows go back to pillar order at each block start for the convolution (``coords``
        needed then)."""
        layouts = [plan.layout(order) for order in ORDERS]
        pe_slots = [pe.index_select(0, layout.gather) for layout in layouts]  # once per order
        steps = [i for _ in self.blocks for i in range(self.LAYERS_PER_BLOCK)]
        mixing = self.conv_pos is not None
        if mixing and coords is None:
            raise ValueError("FlatFormer.sorted_layers: conv_pos needs the pillar coords")
        xs = self.mix_positions(0, x, coords, batch_size).index_select(0, layouts[0].gather)
        for j, i in enumerate(steps):
            layer = self.blocks[j // self.LAYERS_PER_BLOCK][i]
            xs = layer.forward_slots(xs, pe_slots[i], layouts[i])
            block_end = i == self.LAYERS_PER_BLOCK - 1
            if j + 1 < len(steps) and not (mixing and block_end):
                xs = xs.index_select(0, plan.transition(ORDERS[i], ORDERS[steps[j + 1]]))
                continue
            xs = xs.index_select(0, layouts[i].scatter)
            if j + 1 < len(steps):  # a block start with conv_pos: mix in pillar order
                block = (j + 1) // self.LAYERS_PER_BLOCK
                xs = self.mix_positions(block, xs, coords, batch_size).index_select(0, layouts[0].gather)
        return xs


@MODELS.register_module()
class SSTWindowBackbone(_BEVTransformer):
    """SST-style baseline (module doc): blocks of (windows, shifted windows) layers."""

    LAYERS_PER_BLOCK = 2

    def __init__(self, in_channels: int, sparse_shape: Sequence[int],
                 buckets: Sequence[int] | None = None, **kwargs) -> None:
        self.buckets = None if buckets is None else tuple(int(b) for b in buckets)
        if self.buckets is not None and (any(b < 1 for b in self.buckets)
                                         or list(self.buckets) != sorted(set(self.buckets))):
            raise ValueError(f"SSTWindowBackbone: buckets must be increasing positive ints, "
                             f"got {buckets!r}")
        super().__init__(in_channels, sparse_shape, **kwargs)

    def make_layer(self, dim: int, heads: int, ffn_ratio: float, dropout: float,
                   activation: str) -> _PreNormLayer:
        return PaddedWindowAttentionLayer(dim, heads, ffn_ratio, dropout, activation)

    def layouts(self, coords: Tensor, batch_size: int) -> list[GroupLayout | WindowBuckets]:
        if self.buckets is not None:
            return [window_buckets(coords, batch_size, self.bev_shape, self.window_shape, shift,
                                   self.buckets) for shift in (False, True)]
        return [window_partition(coords, batch_size, self.bev_shape, self.window_shape, shift)
                for shift in (False, True)]
