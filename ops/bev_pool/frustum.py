"""Frustum points of a camera rig in the LiDAR frame: the geometry BEV pooling ranks.

As BEVFusion's LSS view transform (``create_frustum`` / ``get_geometry``): every feature-map
pixel at every depth bin is a point ``(u, v, d)`` in network-input pixels; undoing the image
augmentation, back-projecting with the intrinsics and moving with ``cam2lidar`` (then the
LiDAR augmentation) gives ``(B, Ncam, D, fH, fW, 3)`` points in the LiDAR frame.  Matrices
follow :mod:`perception.structures.conventions` (``a2b`` maps frame a into frame b; the image
augmentation ``img_aug`` maps original pixels to network-input pixels).
"""
from __future__ import annotations

from typing import Sequence

import torch


def frustum_points(image_size: Sequence[int], feature_size: Sequence[int], dbound: Sequence[float],
                   dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(D, fH, fW, 3)`` points ``(u, v, d)``: ``fW`` columns spread over ``[0, iW - 1]``, ``fH``
    rows over ``[0, iH - 1]`` and depths ``arange(dmin, dmax, step)`` (BEVFusion's frustum)."""
    (ih, iw), (fh, fw) = (int(v) for v in image_size), (int(v) for v in feature_size)
    if min(ih, iw, fh, fw) < 1:
        raise ValueError(f"image_size {list(image_size)} and feature_size {list(feature_size)} must be positive")
    if len(dbound) != 3 or not (dbound[1] > dbound[0] and dbound[2] > 0):
        raise ValueError(f"dbound must be [min, max, step] with max > min and step > 0, got {list(dbound)}")
    depths = torch.arange(*dbound, dtype=dtype, device=device)
    d = depths.numel()
    xs = torch.linspace(0, iw - 1, fw, dtype=dtype, device=device).view(1, 1, fw).expand(d, fh, fw)
    ys = torch.linspace(0, ih - 1, fh, dtype=dtype, device=device).view(1, fh, 1).expand(d, fh, fw)
    return torch.stack((xs, ys, depths.view(d, 1, 1).expand(d, fh, fw)), dim=-1)


def _check_matrices(matrix: torch.Tensor, name: str, shape: tuple[int, int], lead: tuple[int, ...]) -> None:
    if not isinstance(matrix, torch.Tensor) or tuple(matrix.shape) != lead + shape:
        got = tuple(matrix.shape) if isinstance(matrix, torch.Tensor) else type(matrix).__name__
        raise ValueError(f"{name} must have shape {lead + shape}, got {got}")


def frustum_geometry(frustum: torch.Tensor, cam2img: torch.Tensor, cam2lidar: torch.Tensor,
                     img_aug: torch.Tensor | None = None, lidar_aug: torch.Tensor | None = None) -> torch.Tensor:
    """``(B, Ncam, D, fH, fW, 3)`` LiDAR-frame points of ``frustum (D, fH, fW, 3)``.

    ``cam2img (B, Ncam, 3, 3)``, ``cam2lidar (B, Ncam, 4, 4)``, optional ``img_aug
    (B, Ncam, 4, 4)`` (original -> network pixels: its top-left 3x3 acts on ``(u, v, 1)``-like
    rows as BEVFusion's ``post_rots``, its last column on ``(u, v)`` as ``post_trans``) and
    ``lidar_aug (B, 4, 4)``.  Computed in the frustum's dtype.
    """
    if frustum.dim() != 4 or frustum.shape[-1] != 3:
        raise ValueError(f"frustum must have shape (D, fH, fW, 3), got {tuple(frustum.shape)}")
    if cam2img.dim() != 4:
        raise ValueError(f"cam2img must have shape (B, Ncam, 3, 3), got {tuple(cam2img.shape)}")
    lead = tuple(cam2img.shape[:2])
    _check_matrices(cam2img, "cam2img", (3, 3), lead)
    _check_matrices(cam2lidar, "cam2lidar", (4, 4), lead)
    dtype = frustum.dtype
    pts = frustum.reshape(1, 1, -1, 3).expand(*lead, -1, 3)
    if img_aug is not None:
        _check_matrices(img_aug, "img_aug", (4, 4), lead)
        aug = img_aug.to(dtype)
        pts = (pts - aug[..., None, :3, 3]) @ torch.linalg.inv(aug[..., :3, :3]).transpose(-1, -2)
    pts = torch.cat((pts[..., :2] * pts[..., 2:3], pts[..., 2:3]), dim=-1)
    cam2lidar = cam2lidar.to(dtype)
    combine = cam2lidar[..., :3, :3] @ torch.linalg.inv(cam2img.to(dtype))
    pts = pts @ combine.transpose(-1, -2) + cam2lidar[..., None, :3, 3]
    if lidar_aug is not None:
        _check_matrices(lidar_aug, "lidar_aug", (4, 4), lead[:1])
        aug = lidar_aug.to(dtype)[:, None]
        pts = pts @ aug[..., :3, :3].transpose(-1, -2) + aug[..., None, :3, 3]
    return pts.reshape(*lead, *frustum.shape)
