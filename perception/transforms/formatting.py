"""The last pipeline step of a detector: ``{"frame": Frame, ...}`` -> model inputs + DetSample.

Output (the detector contract)::

    {"inputs": {"points": Tensor (N, C) float32[, "imgs": Tensor (N_cam, 3, H, W) float32]},
     "data_samples": DetSample}

Camera pipelines put ``imgs`` (a tensor or a list of ``(3, H, W)`` arrays) in the pipeline dict
and their matrices (``lidar2img``, ``cam2img``, ``lidar2cam``, ``img_aug_matrix``,
``lidar_aug_matrix``...) as entries named in ``meta_keys``; map pipelines put ``gt_bev_seg``
and/or ``gt_map``, which land in the DetSample's fields of the same names.  Packing is the last
step that sees both the ground truth and the augmentation record, so it checks that neither map
target was drawn before a later geometric augmentation (:func:`.map_gt.check_map_gt_current`,
:func:`.bev_seg.check_bev_seg_consistent`: a stale target raises).  The frame's map location
(``results["location"]`` or ``frame.location``) goes into ``metainfo["location"]`` (HRMapNet keys
its global map by it).

mmengine's ``pseudo_collate`` then batches it into lists.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..registry import TRANSFORMS
from ..structures import DetSample, Frame
from .bev_seg import check_bev_seg_consistent
from .map_gt import check_map_gt_current


@TRANSFORMS.register_module()
class PackDetInputs:
    """Pack the (augmented) frame into tensors and a :class:`DetSample`.

    The ground truth is packed whenever the frame has it, in test mode too (metrics do not use
    it; it costs nothing and helps debugging).  ``metainfo`` holds the entries of
    ``meta_keys`` found in the pipeline dict (``aug`` is the record of the augmentations,
    ``sample_idx`` the dataset index) plus the frame's ``point_features``, ``lidar_path``,
    ``lidar2ego``, ``ego2global`` and ``location`` (when known; module doc).  A ``gt_map`` or
    ``gt_bev_seg`` drawn before the last geometric augmentation raises
    :class:`~.map_gt.MapGTStaleError` / :class:`~.bev_seg_raster.BEVSegAugmentationError`.
    """

    def __init__(self, meta_keys: Sequence[str] = ("sample_idx", "aug")) -> None:
        self.meta_keys = tuple(meta_keys)

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        frame = results.get("frame")
        if not isinstance(frame, Frame):
            raise KeyError(f"PackDetInputs: the pipeline dict needs a 'frame' (a Frame), got keys {sorted(results)}"
                           + ("" if frame is None else f" with 'frame' of type {type(frame).__name__}"))
        check_map_gt_current(results)
        check_bev_seg_consistent(results)
        metainfo: dict[str, Any] = {key: results[key] for key in self.meta_keys if key in results}
        metainfo.update(point_features=frame.point_features, lidar_path=frame.lidar_path,
                        lidar2ego=frame.lidar2ego.copy(), ego2global=frame.ego2global.copy())
        location = metainfo.get("location") or results.get("location") or getattr(frame, "location", "")
        if location:
            metainfo["location"] = str(location)
        sample = DetSample(
            token=frame.token,
            class_names=frame.class_names,
            lidar2global=frame.lidar2global,
            gt_boxes=torch.tensor(frame.boxes.data, dtype=torch.float32).reshape(-1, frame.boxes.data.shape[1]),
            gt_labels=torch.tensor(frame.boxes.labels, dtype=torch.int64).reshape(-1),
            dataset=frame.dataset,
            timestamp=float(frame.timestamp),
            scene=frame.scene,
            metainfo=metainfo,
            gt_bev_seg=_as_tensor_or_none(results.get("gt_bev_seg"), torch.bool),
            gt_map=results.get("gt_map"),
        )
        inputs: dict[str, torch.Tensor] = {
            "points": torch.tensor(np.ascontiguousarray(frame.points), dtype=torch.float32)}
        if results.get("imgs") is not None:
            inputs["imgs"] = _stack_images(results["imgs"])
        return {"inputs": inputs, "data_samples": sample}


def _as_tensor_or_none(value: Any, dtype: torch.dtype) -> torch.Tensor | None:
    """``value`` as a tensor of ``dtype`` (None stays None)."""
    if value is None:
        return None
    return torch.as_tensor(np.asarray(value)).to(dtype)


def _stack_images(images: Any) -> torch.Tensor:
    """``(N_cam, 3, H, W)`` float32 from a tensor or a list of ``(3, H, W)`` arrays/tensors."""
    if isinstance(images, torch.Tensor):
        stacked = images.float()
    else:
        stacked = torch.stack([torch.as_tensor(np.asarray(image)).float() for image in images])
    if stacked.ndim != 4 or stacked.shape[1] != 3:
        raise ValueError(f"PackDetInputs: imgs must be (N_cam, 3, H, W), got {tuple(stacked.shape)}")
    return stacked
