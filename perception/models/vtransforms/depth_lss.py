"""DepthLSSTransform: the LSS view transform whose depth net also sees the LiDAR depth.

BEVFusion's depth-aware variant: the LiDAR points are projected into every network-input
image (undo the LiDAR augmentation, ``lidar2img``, then the image augmentation) and written
as a sparse one-channel depth image (metres, 0 where no point falls); a strided conv stack
(``dtransform``: 1 -> 8 -> 32 -> 64 channels, total stride ``image / feature`` = 8) brings it to
the feature map, where it is concatenated with the image features before a deeper
``depthnet`` (two 3x3 conv-norm-ReLU blocks and the 1x1 bin/context conv).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from ...registry import MODELS
from ..necks.lss_fpn import ConvNormAct
from .lss import CameraInputs, LSSTransform


def project_depth(points: Sequence[Tensor], cams: CameraInputs, image_size: tuple[int, int]) -> Tensor:
    """``(B, N, 1, H, W)`` sparse depth images of the (augmented-frame) LiDAR ``points``.

    Each point goes back to the original LiDAR frame (``inv(lidar_aug)``), into the original
    image (``lidar2img``: pixels times depth) and through ``img_aug`` to network pixels; points
    behind the camera or outside the image are dropped.  Where several points share a pixel the
    last one written wins (as BEVFusion).
    """
    batch, cams_n = cams.lidar2img.shape[:2]
    height, width = image_size
    dtype = cams.lidar2img.dtype
    depth = cams.lidar2img.new_zeros(batch, cams_n, 1, height, width)
    for b in range(batch):
        xyz = points[b][:, :3].to(dtype)
        homogeneous = torch.cat([xyz, xyz.new_ones(len(xyz), 1)], dim=1)
        original = homogeneous @ torch.linalg.inv(cams.lidar_aug[b].to(dtype)).T          # (P, 4)
        cam = torch.einsum("nij,pj->npi", cams.lidar2img[b].to(dtype), original)        # (N, P, 4)
        dist = cam[..., 2]
        uvd = torch.stack([cam[..., 0] / dist.clamp(min=1e-5), cam[..., 1] / dist.clamp(min=1e-5), dist], -1)
        aug = cams.img_aug[b].to(dtype)
        uvd = uvd @ aug[:, :3, :3].transpose(1, 2) + aug[:, None, :3, 3]
        u, v = uvd[..., 0], uvd[..., 1]
        keep = (dist > 1e-3) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
        cam_idx, point_idx = keep.nonzero(as_tuple=True)
        rows, cols = v[cam_idx, point_idx].long(), u[cam_idx, point_idx].long()
        depth[b, cam_idx, 0, rows, cols] = dist[cam_idx, point_idx]
    return depth


@MODELS.register_module()
class DepthLSSTransform(LSSTransform):
    """LSS with a LiDAR depth input to the depth net (module doc); same arguments as
    :class:`LSSTransform`, whose output it shares."""

    def __init__(self, *args: Any, depth_channels: int = 64, **kwargs: Any) -> None:
        self.depth_channels = int(depth_channels)
        super().__init__(*args, **kwargs)
        stride_h = self.image_size[0] // self.feature_size[0]
        stride_w = self.image_size[1] // self.feature_size[1]
        if stride_h != stride_w or stride_h * self.feature_size[0] != self.image_size[0] or stride_h % 4:
            raise ValueError(f"DepthLSSTransform: image_size {self.image_size} must be feature_size "
                             f"{self.feature_size} times one stride that is a multiple of 4")
        norm_cfg = dict(type="BN2d")
        self.dtransform = nn.Sequential(
            ConvNormAct(1, 8, 1, norm_cfg),
            ConvNormAct(8, 32, 5, norm_cfg, stride=4),
            ConvNormAct(32, self.depth_channels, 5, norm_cfg, stride=stride_h // 4))

    def _build_depthnet(self, norm_cfg: Mapping[str, Any]) -> nn.Module:
        c = self.in_channels
        return nn.Sequential(ConvNormAct(c + self.depth_channels, c, 3, norm_cfg), ConvNormAct(c, c, 3, norm_cfg),
                             nn.Conv2d(c, self.num_bins + self.out_channels, 1))

    def depth_and_context(self, feats: Tensor, cams: CameraInputs, points: Sequence[Tensor] | None
                          ) -> tuple[Tensor, Tensor]:
        """As :meth:`LSSTransform.depth_and_context` with the projected LiDAR depth as input."""
        if points is None or len(points) != feats.shape[0]:
            raise ValueError(f"DepthLSSTransform needs one point cloud per sample ({feats.shape[0]}), "
                             f"got {None if points is None else len(points)}")
        with torch.no_grad(), torch.autocast(feats.device.type, enabled=False):  # full-precision projection
            sparse = project_depth(points, cams, self.image_size).to(feats.dtype)
        lidar = self.dtransform(sparse.flatten(0, 1))
        x = self.depthnet(torch.cat([feats.flatten(0, 1), lidar], dim=1))
        return x[:, : self.num_bins].softmax(dim=1), x[:, self.num_bins:]
