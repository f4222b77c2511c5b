"""Merge the ranks' global raster maps under DDP, so multi-process evaluation equals one process.

Each rank only sees its shard of the test frames, so its map only holds what its frames observed,
with its own bounds.  :func:`merge_across_ranks` all-gathers every rank's maps (bounds differ: the
tile lattice makes them align) and folds them with :meth:`GlobalRasterMap.merge_from`, whose max /
sum rules commute: every rank ends with the same map, equal to the map a single process builds
from all frames.  Use a sampler without padding (``DefaultSampler(round_up=False)``): padded
duplicates would count twice in ``probabilistic`` fusion (``max`` is idempotent).
"""
from __future__ import annotations

import torch.distributed as dist

from .hrmap_global_map import GlobalRasterMap


def world_size() -> int:
    """Processes in the default group (1 without torch.distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def merge_across_ranks(global_map: GlobalRasterMap, group: object | None = None) -> GlobalRasterMap:
    """Replace ``global_map``'s content by the merge of all ranks' maps (in place, returned).

    A no-op in a single process.  Collective: every rank must call it.
    """
    if world_size() == 1:
        return global_map
    gathered: list[GlobalRasterMap | None] = [None] * dist.get_world_size(group)
    dist.all_gather_object(gathered, global_map, group=group)
    merged = GlobalRasterMap(**global_map.settings())
    for rank_map in gathered:  # the order does not matter (max / sum), rank order for readability
        merged.merge_from(rank_map)
    global_map.locations = merged.locations
    return global_map
