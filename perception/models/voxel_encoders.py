"""Voxelization data steps and simple voxel feature encoders (mmdet3d's, on perception_ops).

* :class:`HardVoxelizer`: mmcv ``Voxelization`` of a batch of clouds -> voxels (M, P, C),
  num_points (M,), coors (M, 4) int32 (b, z, y, x); ``max_voxels`` may be
  ``(training, testing)`` as in mmdet3d.
* :class:`DynamicVoxelizer`: cell of every point -> coors (N, 4), rows of -1 when dropped.
* :class:`HardSimpleVFE`: mean of the first ``num_features`` columns of each voxel's points.
* :class:`DynamicSimpleVFE`: mean of the points of each cell (voxel_pooling).

All registered in ``MODELS``; coordinates follow spconv (``(b, z, y, x)``), ready for
:class:`~perception.models.backbones.SparseEncoder`.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from perception_ops.voxelize import (dynamic_voxelize_batch, hard_voxelize_batch,
                                     voxel_pooling)

from ..registry import MODELS


def _grid_shape(voxel_size: Sequence[float], point_cloud_range: Sequence[float]) -> list[int]:
    """(D, H, W) of the grid, i.e. the SparseEncoder's ``sparse_shape`` (without padding)."""
    if len(voxel_size) != 3 or len(point_cloud_range) != 6:
        raise ValueError(f"voxel_size must have 3 values and point_cloud_range 6, got "
                         f"{list(voxel_size)} and {list(point_cloud_range)}")
    size = [round((point_cloud_range[i + 3] - point_cloud_range[i]) / voxel_size[i])
            for i in range(3)]
    return size[::-1]


class _Voxelizer(nn.Module):
    def __init__(self, voxel_size: Sequence[float], point_cloud_range: Sequence[float]) -> None:
        super().__init__()
        self.voxel_size = [float(v) for v in voxel_size]
        self.point_cloud_range = [float(v) for v in point_cloud_range]
        self.grid_shape = _grid_shape(self.voxel_size, self.point_cloud_range)

    @staticmethod
    def _as_list(points: Sequence[Tensor] | Tensor) -> list[Tensor]:
        if isinstance(points, Tensor):
            return [points]
        return list(points)


@MODELS.register_module()
class HardVoxelizer(_Voxelizer):
    """Hard voxelization of a batch (module doc)."""

    def __init__(self, voxel_size: Sequence[float], point_cloud_range: Sequence[float],
                 max_num_points: int = 10, max_voxels: int | Sequence[int] = 90000,
                 deterministic: bool = True) -> None:
        super().__init__(voxel_size, point_cloud_range)
        pair = (max_voxels, max_voxels) if isinstance(max_voxels, int) else tuple(max_voxels)
        if len(pair) != 2:
            raise ValueError(f"max_voxels must be an int or (training, testing), got {max_voxels}")
        self.max_num_points, self.max_voxels = int(max_num_points), pair
        self.deterministic = deterministic

    def forward(self, points: Sequence[Tensor] | Tensor) -> dict[str, Tensor]:
        """{'voxels' (M, P, C), 'num_points' (M,), 'coors' (M, 4) (b, z, y, x)}."""
        max_voxels = self.max_voxels[0 if self.training else 1]
        voxels, coors, num = hard_voxelize_batch(
            self._as_list(points), self.voxel_size, self.point_cloud_range,
            self.max_num_points, max_voxels, self.deterministic)
        return {"voxels": voxels, "num_points": num, "coors": coors}


@MODELS.register_module()
class DynamicVoxelizer(_Voxelizer):
    """Dynamic voxelization of a batch (module doc)."""

    def forward(self, points: Sequence[Tensor] | Tensor) -> dict[str, Tensor]:
        """{'points' (N, C) concatenated, 'coors' (N, 4) (b, z, y, x), -1 rows dropped}."""
        clouds = self._as_list(points)
        coors = dynamic_voxelize_batch(clouds, self.voxel_size, self.point_cloud_range)
        return {"points": torch.cat(clouds), "coors": coors}


@MODELS.register_module()
class HardSimpleVFE(nn.Module):
    """mmdet3d ``HardSimpleVFE``: mean of the first ``num_features`` point columns."""

    def __init__(self, num_features: int = 4) -> None:
        super().__init__()
        self.num_features = int(num_features)

    def forward(self, voxels: Tensor, num_points: Tensor, coors: Tensor | None = None) -> Tensor:
        """(M, num_features) mean over each voxel's points (padding rows are zero)."""
        if voxels.dim() != 3 or voxels.shape[2] < self.num_features:
            raise ValueError(f"HardSimpleVFE: voxels must be (M, P, C >= {self.num_features}), "
                             f"got {tuple(voxels.shape)}")
        total = voxels[:, :, :self.num_features].sum(dim=1)
        return (total / num_points.clamp_min(1).to(total.dtype)[:, None]).contiguous()


@MODELS.register_module()
class DynamicSimpleVFE(nn.Module):
    """mmdet3d ``DynamicSimpleVFE``: mean of the points of every occupied cell."""

    def forward(self, points: Tensor, coors: Tensor) -> tuple[Tensor, Tensor]:
        """(features (M, C), coors (M, 4)) of the occupied cells, sorted by (b, z, y, x)."""
        features, voxel_coors, _ = voxel_pooling(points, coors, "mean")
        return features, voxel_coors
