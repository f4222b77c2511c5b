"""Flattened-window ops of FlatFormer: serpentine window sorting, equal-size groups with
padding by duplication, group attention and scatter back to voxels / a dense BEV grid.

Public functions live in :mod:`.api` (vectorized torch on any device; fused Triton attention
on CUDA, :mod:`.triton_kernels`); :mod:`.reference` is the plain-Python reference and
:mod:`.plan` holds the per-frame :class:`FlattenPlan` and :class:`GroupLayout`.
"""
from .api import (build_plan, flatten_keys, group_attention, group_attention_torch,
                  group_padding, num_windows, parse_order, scatter_to_bev, slot_attention,
                  sort_order, uses_triton, window_coords, window_index,
                  window_buckets, window_partition)
from .plan import ORDERS, FlattenPlan, GroupLayout, GroupPadding, WindowBuckets

__all__ = [
    "ORDERS",
    "FlattenPlan",
    "GroupLayout",
    "GroupPadding",
    "WindowBuckets",
    "build_plan",
    "flatten_keys",
    "group_attention",
    "group_attention_torch",
    "group_padding",
    "num_windows",
    "parse_order",
    "scatter_to_bev",
    "slot_attention",
    "sort_order",
    "uses_triton",
    "window_coords",
    "window_index",
    "window_buckets",
    "window_partition",
]
