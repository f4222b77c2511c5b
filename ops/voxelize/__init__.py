"""Voxelization for the LiDAR branch: hard (mmcv ``Voxelization``), dynamic and pooling.

Public entry points live in :mod:`.api`; each has a plain-PyTorch reference
(:mod:`.reference`), a vectorized CPU path (:mod:`.cpu`) and Triton GPU kernels
(:mod:`.triton_kernels`).  Coordinates are int32 ``(z, y, x)`` / ``(b, z, y, x)`` as in spconv.
"""
from .api import (POOLING_MODES, dynamic_voxelize, dynamic_voxelize_batch, hard_voxelize,
                  hard_voxelize_batch, select_sweeps, voxel_pooling)
from .grid import VoxelGrid

__all__ = [
    "POOLING_MODES",
    "VoxelGrid",
    "dynamic_voxelize",
    "dynamic_voxelize_batch",
    "hard_voxelize",
    "hard_voxelize_batch",
    "select_sweeps",
    "voxel_pooling",
]
