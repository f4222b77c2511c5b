"""BEVFusion's batch preparation: images stacked on the device, camera matrices from the samples.

:class:`BEVFusionDataPreprocessor` extends :class:`Det3DDataPreprocessor` (points cast and
moved, voxelized when a ``voxel_layer`` is given; ``voxel=False`` for camera-only models) with
``inputs["imgs"]``: the per-sample ``(N_cam, 3, H, W)`` tensors of ``PackDetInputs`` stacked to
``(B, N_cam, 3, H, W)``.  :func:`camera_inputs` turns the matrices the camera pipeline put in
``DetSample.metainfo`` (``lidar2img``, ``cam2img``, ``lidar2cam``, ``img_aug_matrix``,
``lidar_aug_matrix``; see :mod:`perception.transforms.camera`) into a
:class:`~perception.models.vtransforms.CameraInputs`.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from ...registry import MODELS
from ..data_preprocessors.voxelize import Det3DDataPreprocessor
from ..vtransforms.lss import CameraInputs

CAMERA_META_KEYS: tuple[str, ...] = ("lidar2img", "cam2img", "lidar2cam", "img_aug_matrix")
"""Per-camera ``(N_cam, 4, 4)`` matrices every camera sample must carry in its metainfo."""


@MODELS.register_module()
class BEVFusionDataPreprocessor(Det3DDataPreprocessor):
    """Points (and voxels) as :class:`Det3DDataPreprocessor`, plus stacked images (module doc)."""

    def forward(self, data: dict, training: bool = False) -> dict[str, Any]:
        imgs = dict(data.get("inputs") or {}).get("imgs") if isinstance(data, dict) else None
        out = super().forward(data, training)
        if imgs is not None:
            out["inputs"]["imgs"] = self._stack_images(imgs, out["data_samples"])
        return out

    def _stack_images(self, imgs: Tensor | Sequence[Tensor], samples: Sequence[Any]) -> Tensor:
        if isinstance(imgs, Tensor):
            imgs = [imgs] if imgs.dim() == 4 else list(imgs)
        shapes = {tuple(img.shape) for img in imgs}
        if len(shapes) != 1 or len(next(iter(shapes))) != 4 or next(iter(shapes))[1] != 3:
            raise ValueError(f"BEVFusionDataPreprocessor: every sample's imgs must be (N_cam, 3, H, W) "
                             f"with one shape, got {sorted(shapes)}")
        if samples and len(samples) != len(imgs):
            raise ValueError(f"BEVFusionDataPreprocessor: {len(imgs)} image sets for {len(samples)} samples")
        return torch.stack([self.cast_data(img).float() for img in imgs])


def _meta_matrix(sample: Any, key: str, shape: tuple[int, ...]) -> np.ndarray:
    meta = getattr(sample, "metainfo", {}) or {}
    if key not in meta:
        raise KeyError(f"sample {getattr(sample, 'token', '?')}: metainfo has no {key!r} (add the camera "
                       f"transforms and PackDetInputs(meta_keys=(..., {key!r})); has {sorted(meta)})")
    value = np.asarray(meta[key], dtype=np.float64)
    if value.shape[-2:] != shape[-2:] or (len(shape) == 2 and value.shape != shape):
        raise ValueError(f"sample {getattr(sample, 'token', '?')}: metainfo[{key!r}] must be {shape}, "
                         f"got {value.shape}")
    return value


def lidar_aug_of(sample: Any) -> np.ndarray:
    """The sample's ``lidar_aug_matrix`` (top level, else the ``aug`` record, else identity)."""
    meta = getattr(sample, "metainfo", {}) or {}
    if "lidar_aug_matrix" in meta:
        return _meta_matrix(sample, "lidar_aug_matrix", (4, 4))
    aug = meta.get("aug") or {}
    return np.asarray(aug.get("lidar_aug_matrix", np.eye(4)), dtype=np.float64).reshape(4, 4)


def camera_inputs(samples: Sequence[Any], num_cams: int, device: torch.device,
                  dtype: torch.dtype = torch.float32) -> CameraInputs:
    """Batch the samples' camera matrices (module doc) as tensors on ``device``."""
    per_key = {key: [] for key in CAMERA_META_KEYS}
    for sample in samples:
        for key in CAMERA_META_KEYS:
            value = _meta_matrix(sample, key, (num_cams, 4, 4))
            if value.shape != (num_cams, 4, 4):
                raise ValueError(f"sample {getattr(sample, 'token', '?')}: metainfo[{key!r}] must be "
                                 f"({num_cams}, 4, 4) for {num_cams} images, got {value.shape}")
            per_key[key].append(value)

    def stack(key: str) -> Tensor:
        return torch.as_tensor(np.stack(per_key[key]), dtype=dtype, device=device)

    lidar2cam = torch.as_tensor(np.stack(per_key["lidar2cam"]), dtype=torch.float64)
    cam2lidar = torch.linalg.inv(lidar2cam).to(device=device, dtype=dtype)
    lidar_aug = torch.as_tensor(np.stack([lidar_aug_of(s) for s in samples]), dtype=dtype, device=device)
    return CameraInputs(cam2img=stack("cam2img")[..., :3, :3], cam2lidar=cam2lidar, lidar2img=stack("lidar2img"),
                        img_aug=stack("img_aug_matrix"), lidar_aug=lidar_aug)
