"""Reuse a :class:`~.plan.BEVPoolPlan` while the camera calibration is unchanged.

The frustum geometry, and so the ranks, the sort and the intervals, depend only on the
cameras' matrices (intrinsics, extrinsics, image and LiDAR augmentation) and the grid.  The
cache keys a plan by a hash of those matrices' bytes (dtype, shape and device included),
the grid and any extra settings the caller names (feature size, depth bins), and builds the
geometry only on a miss::

    cache = BEVPoolPlanCache()
    plan = cache.get([cam2img, cam2lidar, img_aug], grid, lambda: frustum_geometry(...),
                     extra=(feature_size, dbound))

A model owns its cache (no module-level state); it is a small LRU (``max_entries``).
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Callable, Hashable, Mapping, Sequence

import torch

from ..voxelize.grid import VoxelGrid
from .plan import BEVPoolPlan

Calibration = torch.Tensor | Sequence[torch.Tensor] | Mapping[str, torch.Tensor]


def _tensors(calibration: Calibration) -> list[tuple[str, torch.Tensor]]:
    if isinstance(calibration, torch.Tensor):
        return [("0", calibration)]
    if isinstance(calibration, Mapping):
        items = sorted(calibration.items())
    elif isinstance(calibration, Sequence) and not isinstance(calibration, (str, bytes)):
        items = [(str(i), t) for i, t in enumerate(calibration)]
    else:
        raise ValueError(f"calibration must be a tensor, a sequence or a mapping of tensors, "
                         f"got {type(calibration).__name__}")
    for name, tensor in items:
        if not isinstance(tensor, torch.Tensor):
            raise ValueError(f"calibration entry {name!r} must be a torch.Tensor, got {type(tensor).__name__}")
    return items


def calibration_key(calibration: Calibration, grid: VoxelGrid, extra: Hashable = None) -> str:
    """Hex digest of the calibration tensors' bytes, dtypes, shapes and device, the grid and
    ``repr(extra)``; equal calibrations give equal keys, any changed bit a different one."""
    digest = hashlib.blake2b(digest_size=20)
    device = None
    for name, tensor in _tensors(calibration):
        device = device or tensor.device
        data = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{data.dtype}|{tuple(data.shape)}|".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    digest.update(f"{grid}|{device}|{extra!r}".encode())
    return digest.hexdigest()


class BEVPoolPlanCache:
    """LRU of plans keyed by :func:`calibration_key`; ``hits`` / ``misses`` count lookups."""

    def __init__(self, max_entries: int = 4) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"max_entries must be a positive int, got {max_entries!r}")
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._plans: OrderedDict[str, BEVPoolPlan] = OrderedDict()

    def __len__(self) -> int:
        return len(self._plans)

    def clear(self) -> None:
        """Forget every plan (the counters are kept)."""
        self._plans.clear()

    def get(self, calibration: Calibration, grid: VoxelGrid,
            geometry: torch.Tensor | Callable[[], torch.Tensor], extra: Hashable = None) -> BEVPoolPlan:
        """The plan of ``calibration`` + ``grid`` + ``extra``; on a miss ``geometry`` (a tensor,
        or a function computing it, called only then) is ranked and sorted.  A geometry tensor's
        shape is part of the key."""
        shape = tuple(geometry.shape) if isinstance(geometry, torch.Tensor) else None
        key = calibration_key(calibration, grid, (extra, shape))
        plan = self._plans.get(key)
        if plan is not None:
            self.hits += 1
            self._plans.move_to_end(key)
            return plan
        self.misses += 1
        points = geometry if isinstance(geometry, torch.Tensor) else geometry()
        plan = BEVPoolPlan.build(points, grid)
        self._plans[key] = plan
        while len(self._plans) > self.max_entries:
            self._plans.popitem(last=False)
        return plan
