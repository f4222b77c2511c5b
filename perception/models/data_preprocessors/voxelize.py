"""Det3DDataPreprocessor: the detector's data preprocessor (mmdet3d 1.x argument names).

It turns the collated pipeline output ``{"inputs": {"points": [Tensor (N_b, C)]},
"data_samples": [DetSample]}`` into the model's input on the model's device: points as float32
(corrupt clouds rejected, naming the sample token), the samples' tensors moved with
:meth:`DetSample.to`, and the voxels of the whole batch from the existing
:class:`~perception.models.HardVoxelizer` / :class:`~perception.models.DynamicVoxelizer`::

    {"inputs": {"points": [...], "voxels": {"voxels", "num_points", "coors"}}   # hard
                                           {"points", "coors"}                  # dynamic
     "data_samples": [...]}

``coors`` rows are ``(b, z, y, x)`` with ``b`` the index of the cloud in the batch.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping, Sequence

import torch
from mmengine.model import BaseDataPreprocessor
from torch import Tensor, nn

from ...registry import MODELS
from ..voxel_encoders import DynamicVoxelizer, HardVoxelizer

VOXEL_TYPES: Mapping[str, type[nn.Module]] = MappingProxyType(
    {"hard": HardVoxelizer, "dynamic": DynamicVoxelizer})
"""``voxel_type`` -> voxelizer class built from ``voxel_layer``."""
_UNLIMITED = (-1, [-1, -1], (-1, -1))  # mmdet3d's "no limit" values in dynamic voxel_layer dicts


def _build_voxel_layer(voxel_layer: Mapping[str, Any], voxel_type: str) -> nn.Module:
    """Voxelizer of ``voxel_type`` from an mmdet3d ``voxel_layer`` dict (``type`` optional)."""
    if voxel_type not in VOXEL_TYPES:
        raise ValueError(f"Det3DDataPreprocessor: voxel_type must be one of {sorted(VOXEL_TYPES)}, "
                         f"got {voxel_type!r}")
    cls = VOXEL_TYPES[voxel_type]
    options = dict(voxel_layer)
    kind = options.pop("type", cls.__name__)
    if kind != cls.__name__:
        raise ValueError(f"Det3DDataPreprocessor: voxel_type {voxel_type!r} needs voxel_layer type "
                         f"{cls.__name__!r}, got {kind!r}")
    if cls is DynamicVoxelizer:
        for key in ("max_num_points", "max_voxels"):
            if key in options and options.pop(key) not in _UNLIMITED:
                raise ValueError(f"Det3DDataPreprocessor: dynamic voxelization keeps every point; "
                                 f"voxel_layer.{key} must be -1 or absent")
    return cls(**options)


@MODELS.register_module()
class Det3DDataPreprocessor(BaseDataPreprocessor):
    """Cast, move and voxelize a batch of point clouds (module doc).

    ``voxel=False`` skips voxelization (point-based models); ``voxel_layer`` is mmdet3d's dict
    (``voxel_size``, ``point_cloud_range``, ``max_num_points``, ``max_voxels``).
    """

    def __init__(self, voxel_layer: dict | None = None, voxel_type: str = "hard",
                 voxel: bool = True, non_blocking: bool = False) -> None:
        super().__init__(non_blocking=non_blocking)
        self.voxel, self.voxel_type = bool(voxel), voxel_type
        if self.voxel and voxel_layer is None:
            raise ValueError("Det3DDataPreprocessor: voxel=True needs a voxel_layer dict")
        self.voxel_layer = _build_voxel_layer(voxel_layer, voxel_type) if self.voxel else None

    def forward(self, data: dict, training: bool = False) -> dict[str, Any]:
        """Batch ready for the detector (module doc); ``training`` picks max_voxels' entry."""
        if not isinstance(data, Mapping) or "inputs" not in data:
            raise ValueError(f"Det3DDataPreprocessor: expected a dict with 'inputs' (and "
                             f"'data_samples'), got {type(data).__name__}")
        samples = list(data.get("data_samples") or [])
        inputs = dict(data["inputs"])
        points = self._check_points(inputs.get("points"), samples)
        inputs["points"] = [self.cast_data(p).float() for p in points]
        samples = [s.to(self.device, non_blocking=self._non_blocking) for s in samples]
        if self.voxel_layer is not None:
            self.voxel_layer.train(training)
            inputs["voxels"] = self.voxel_layer(inputs["points"])
        return {"inputs": inputs, "data_samples": samples}

    @staticmethod
    def _check_points(points: Any, samples: Sequence[Any]) -> list[Tensor]:
        """The clouds as a list, with a clear error naming the sample of a corrupt one."""
        if isinstance(points, Tensor):
            points = [points]
        if not isinstance(points, (list, tuple)) or not points:
            raise ValueError(f"Det3DDataPreprocessor: inputs['points'] must be a non-empty list of "
                             f"(N, C) tensors, got {type(points).__name__}")
        if samples and len(samples) != len(points):
            raise ValueError(f"Det3DDataPreprocessor: {len(points)} point clouds but "
                             f"{len(samples)} data samples")
        for b, cloud in enumerate(points):
            token = getattr(samples[b], "token", "?") if samples else "?"
            where = f"point cloud {b} (sample {token})"
            if isinstance(cloud, Tensor) and cloud.numel() == 0:
                raise ValueError(f"Det3DDataPreprocessor: {where} is empty (0 points)")
            if not isinstance(cloud, Tensor) or cloud.dim() != 2 or cloud.shape[1] < 3:
                shape = tuple(cloud.shape) if isinstance(cloud, Tensor) else type(cloud).__name__
                raise ValueError(f"Det3DDataPreprocessor: {where} must be an (N, C >= 3) tensor, "
                                 f"got {shape}")
            finite = torch.isfinite(cloud).all(dim=1)
            if not bool(finite.all()):
                bad = int((~finite).sum())
                first = int((~finite).nonzero()[0, 0])
                raise ValueError(f"Det3DDataPreprocessor: {where} has {bad} point(s) with NaN/Inf "
                                 f"values (first at row {first}); the cloud is corrupt")
        return list(points)
