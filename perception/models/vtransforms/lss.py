"""LSSTransform: lift image features to a depth distribution, splat them into the BEV grid.

BEVFusion's camera view transform (Philion & Fidler's Lift-Splat-Shoot): a 1x1 ``depthnet``
predicts, per feature-map pixel, ``D`` depth-bin logits and ``C`` context channels; the
softmax over bins times the context is pooled into the BEV cells of the frustum points
(:func:`perception_ops.bev_pool.bev_pool_depth`, which never materializes the
``(B, Ncam, D, fH, fW, C)`` outer product), then an optional strided conv stack brings the
``xbound/ybound`` grid down to the LiDAR branch's BEV grid (nuScenes: 360 x 360 cells of
0.3 m -> 180 x 180 of 0.6 m, the sparse encoder's stride-8 grid over +-54 m).

The frustum geometry depends only on the camera matrices, so its pooling plan is cached
(:class:`perception_ops.bev_pool.BEVPoolPlanCache`) and rebuilt only when they change.
Output: ``(B, out_channels, Y, X)``, rows along +y and columns along +x of the LiDAR frame.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from perception_ops.bev_pool import (BEVPoolPlan, BEVPoolPlanCache, bev_pool_depth, frustum_geometry,
                                     frustum_points, grid_from_bounds, grid_shape)

from ...registry import MODELS
from ..necks.lss_fpn import ConvNormAct


@dataclass
class CameraInputs:
    """The camera matrices of a batch, tensors on the model's device (conventions module).

    ``cam2img (B, N, 3, 3)``, ``cam2lidar (B, N, 4, 4)``, ``lidar2img (B, N, 4, 4)`` (original
    image pixels times depth), ``img_aug (B, N, 4, 4)`` (original -> network pixels) and
    ``lidar_aug (B, 4, 4)`` (original -> augmented LiDAR frame).
    """

    cam2img: Tensor
    cam2lidar: Tensor
    lidar2img: Tensor
    img_aug: Tensor
    lidar_aug: Tensor

    def calibration(self) -> list[Tensor]:
        """The tensors that fix the frustum geometry (the plan cache key)."""
        return [self.cam2img, self.cam2lidar, self.img_aug, self.lidar_aug]


def downsample_block(channels: int, factor: int, norm_cfg: Mapping[str, Any]) -> nn.Module:
    """BEVFusion's BEV downsampling: 3x3 conv, 3x3 conv with stride ``factor``, 3x3 conv."""
    if factor == 1:
        return nn.Identity()
    return nn.Sequential(ConvNormAct(channels, channels, 3, norm_cfg),
                         ConvNormAct(channels, channels, 3, norm_cfg, stride=factor),
                         ConvNormAct(channels, channels, 3, norm_cfg))


@MODELS.register_module()
class LSSTransform(BaseModule):
    """Camera features ``(B, N, C_in, fH, fW)`` -> BEV ``(B, out_channels, Y, X)`` (module doc).

    Args:
        in_channels / out_channels: image-feature and BEV channels.
        image_size / feature_size: network input ``(H, W)`` and feature map ``(fH, fW)``.
        xbound, ybound, zbound: BEV cells ``[min, max, step]`` in the LiDAR frame.
        dbound: depth bins ``[min, max, step]`` (default 1-60 m by 0.5 m: 118 bins).
        downsample: stride of the BEV conv stack after pooling (1: none).
        pool_backend: ``bev_pool`` backend (``auto`` picks by device).
    """

    def __init__(self, in_channels: int, out_channels: int, image_size: Sequence[int],
                 feature_size: Sequence[int], xbound: Sequence[float], ybound: Sequence[float],
                 zbound: Sequence[float], dbound: Sequence[float] = (1.0, 60.0, 0.5), downsample: int = 1,
                 norm_cfg: Mapping[str, Any] | None = None, pool_backend: str = "auto",
                 plan_cache_size: int = 4, init_cfg: dict | list[dict] | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.image_size = tuple(int(v) for v in image_size)
        self.feature_size = tuple(int(v) for v in feature_size)
        self.dbound = tuple(float(v) for v in dbound)
        self.grid = grid_from_bounds(xbound, ybound, zbound)
        self.register_buffer("frustum", frustum_points(self.image_size, self.feature_size, self.dbound),
                             persistent=False)
        self.num_bins = int(self.frustum.shape[0])
        self.num_z = grid_shape(self.grid)[0]
        self.pool_backend = pool_backend
        self.plan_cache = BEVPoolPlanCache(plan_cache_size)
        norm_cfg = dict(type="BN2d") if norm_cfg is None else dict(norm_cfg)
        self.depthnet = self._build_depthnet(norm_cfg)
        self.downsample = downsample_block(self.out_channels * self.num_z, int(downsample), norm_cfg)

    def _build_depthnet(self, norm_cfg: Mapping[str, Any]) -> nn.Module:
        return nn.Conv2d(self.in_channels, self.num_bins + self.out_channels, 1)

    @property
    def bev_shape(self) -> tuple[int, int]:
        """``(Y, X)`` cells of the pooled grid (before ``downsample``)."""
        _, ny, nx = grid_shape(self.grid)
        return ny, nx

    def geometry(self, cams: CameraInputs) -> Tensor:
        """``(B, N, D, fH, fW, 3)`` LiDAR-frame (augmented) frustum points."""
        return frustum_geometry(self.frustum, cams.cam2img, cams.cam2lidar, cams.img_aug, cams.lidar_aug)

    def plan(self, cams: CameraInputs) -> BEVPoolPlan:
        """The cached pooling plan of these cameras (geometry in full precision, outside autocast:
        bf16 would move a 50 m point by ~0.2 m)."""
        with torch.no_grad(), torch.autocast(self.frustum.device.type, enabled=False):
            return self.plan_cache.get(cams.calibration(), self.grid, lambda: self.geometry(cams),
                                       extra=(self.image_size, self.feature_size, self.dbound))

    def depth_and_context(self, feats: Tensor, cams: CameraInputs, points: Sequence[Tensor] | None
                          ) -> tuple[Tensor, Tensor]:
        """Depth distribution ``(B*N, D, fH, fW)`` and context ``(B*N, C, fH, fW)``."""
        x = self.depthnet(feats.flatten(0, 1))
        return x[:, : self.num_bins].softmax(dim=1), x[:, self.num_bins:]

    def check_inputs(self, feats: Tensor, cams: CameraInputs) -> None:
        """Raise ``ValueError`` naming the shape that does not fit the configured sizes."""
        if feats.dim() != 5 or feats.shape[2] != self.in_channels or tuple(feats.shape[-2:]) != self.feature_size:
            raise ValueError(f"{type(self).__name__}: image features must be (B, N, {self.in_channels}, "
                             f"{self.feature_size[0]}, {self.feature_size[1]}), got {tuple(feats.shape)}")
        lead = tuple(feats.shape[:2])
        for name, value, tail in (("cam2img", cams.cam2img, (3, 3)), ("cam2lidar", cams.cam2lidar, (4, 4)),
                                  ("img_aug", cams.img_aug, (4, 4)), ("lidar2img", cams.lidar2img, (4, 4))):
            if tuple(value.shape) != lead + tail:
                raise ValueError(f"{type(self).__name__}: {name} must be {lead + tail}, got {tuple(value.shape)}")
        if tuple(cams.lidar_aug.shape) != (lead[0], 4, 4):
            raise ValueError(f"{type(self).__name__}: lidar_aug must be ({lead[0]}, 4, 4), "
                             f"got {tuple(cams.lidar_aug.shape)}")

    def pool(self, depth: Tensor, context: Tensor, plan: BEVPoolPlan, batch: int, cams: int) -> Tensor:
        """``(B, Z*C, Y, X)`` sum of ``depth x context`` over each BEV cell."""
        fh, fw = self.feature_size
        depth = depth.reshape(batch, cams, self.num_bins, fh, fw)
        context = context.reshape(batch, cams, self.out_channels, fh, fw).permute(0, 1, 3, 4, 2)
        return bev_pool_depth(depth, context.to(depth.dtype), plan, collapse_z=True,
                              backend=self.pool_backend).contiguous()

    def forward(self, feats: Tensor, cams: CameraInputs, points: Sequence[Tensor] | None = None) -> Tensor:
        """BEV features ``(B, out_channels * Z, Y / downsample, X / downsample)``."""
        self.check_inputs(feats, cams)
        batch, num_cams = feats.shape[:2]
        depth, context = self.depth_and_context(feats, cams, points)
        bev = self.pool(depth, context, self.plan(cams), batch, num_cams)
        return self.downsample(bev)
