"""The per-frame sample that a detector's pipeline, model and metrics pass around.

``PackDetInputs`` (:mod:`perception.transforms.formatting`) builds one per frame; the model's
data preprocessor moves it to the device with :meth:`DetSample.to`; ``model.predict`` fills
:attr:`DetSample.pred`; metrics read ``token``, ``lidar2global``, ``class_names`` and ``pred``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .boxes import BOX_DIM, Boxes3D
from .map_instances import MapInstances


@dataclass
class DetSample:
    """Ground truth and metadata of one frame (conventions in :mod:`.conventions`).

    ``gt_boxes`` are ``(M, 9)`` float32 in the LiDAR frame *after* augmentation
    (x, y, z gravity centre, l, w, h, yaw, vx, vy; NaN velocity = unknown) and
    ``gt_labels`` ``(M,)`` int64 indices into ``class_names``.  ``lidar2global`` is the pose
    of the original, un-augmented LiDAR frame (the augmentation is recorded in
    ``metainfo['aug']``).  ``pred`` is filled by ``model.predict``: boxes in the LiDAR
    frame with ``scores`` set and ``labels`` indexing ``class_names``.
    """

    token: str
    class_names: tuple[str, ...]
    lidar2global: np.ndarray
    gt_boxes: torch.Tensor
    gt_labels: torch.Tensor
    dataset: str = ""
    timestamp: float = 0.0
    scene: str = ""
    metainfo: dict[str, Any] = field(default_factory=dict)
    pred: Boxes3D | None = None
    gt_bev_seg: torch.Tensor | None = None
    """``(C, H, W)`` bool BEV map-segmentation target (BEV grid convention), if the pipeline made one."""
    gt_map: MapInstances | None = None
    """Vectorized map ground truth in the LiDAR frame, if the pipeline made one."""
    pred_bev_seg: torch.Tensor | None = None
    """``(C, H, W)`` float probabilities filled by a segmentation head's ``predict``."""
    pred_map: MapInstances | None = None
    """Vectorized map predictions (with scores) filled by a map head's ``predict``."""

    def __post_init__(self) -> None:
        self.class_names = tuple(self.class_names)
        self.lidar2global = np.asarray(self.lidar2global, dtype=np.float64)
        if self.lidar2global.shape != (4, 4):
            raise ValueError(f"DetSample {self.token}: lidar2global must be 4x4, got {self.lidar2global.shape}")
        if not isinstance(self.gt_boxes, torch.Tensor):
            self.gt_boxes = torch.as_tensor(np.asarray(self.gt_boxes, dtype=np.float32))
        if not isinstance(self.gt_labels, torch.Tensor):
            self.gt_labels = torch.as_tensor(np.asarray(self.gt_labels, dtype=np.int64))
        if self.gt_boxes.ndim != 2 or self.gt_boxes.shape[1] != BOX_DIM:
            raise ValueError(f"DetSample {self.token}: gt_boxes must be (M, {BOX_DIM}), "
                             f"got {tuple(self.gt_boxes.shape)}")
        if self.gt_labels.shape != (self.gt_boxes.shape[0],):
            raise ValueError(f"DetSample {self.token}: {self.gt_boxes.shape[0]} gt_boxes but gt_labels "
                             f"of shape {tuple(self.gt_labels.shape)}")

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "DetSample":
        """A copy with the ground-truth tensors on ``device`` (numpy fields are shared)."""
        return dataclasses.replace(
            self,
            gt_boxes=self.gt_boxes.to(device, non_blocking=non_blocking),
            gt_labels=self.gt_labels.to(device, non_blocking=non_blocking),
            gt_bev_seg=None if self.gt_bev_seg is None else self.gt_bev_seg.to(device, non_blocking=non_blocking),
        )

    def gt_as_boxes(self) -> Boxes3D:
        """The ground truth as a numpy :class:`Boxes3D` (e.g. for drawing or metrics)."""
        return Boxes3D(self.gt_boxes.detach().cpu().double().numpy(), self.gt_labels.detach().cpu().numpy())
