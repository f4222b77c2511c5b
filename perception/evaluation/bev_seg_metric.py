"""BEV map-segmentation mIoU with BEVFusion's protocol, as an mmengine metric.

Per class and per threshold ``t`` in (0.35, 0.40, ..., 0.65), a cell is predicted positive when
its probability is ``>= t``; true positives, false positives and false negatives are summed over
*all cells of all samples* (not averaged per sample), ``IoU = TP / (TP + FP + FN)``; a class'
score is its best IoU over the thresholds and ``mIoU`` the mean of those over every class
(a class that never occurs scores 0, as in BEVFusion; ``mIoU_present`` averages only the classes
with ground truth, a convenience for datasets such as the synthetic world without car parks).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from ..registry import METRICS
from ..structures.bev_seg_classes import BEV_SEG_CLASSES

BEVFUSION_THRESHOLDS: tuple[float, ...] = (0.35, 0.40, 0.45, 0.50, 0.55, 0.60, 0.65)
"""Probability thresholds of BEVFusion's map-segmentation evaluation."""
IOU_EPS = 1e-7


def confusion_counts(pred: torch.Tensor | np.ndarray, gt: torch.Tensor | np.ndarray,
                     thresholds: Sequence[float] = BEVFUSION_THRESHOLDS) -> np.ndarray:
    """``(C, T, 3)`` int64 TP, FP, FN of one sample's ``(C, H, W)`` probabilities vs bool target."""
    pred_t = torch.as_tensor(pred).detach().float().cpu()
    gt_t = torch.as_tensor(gt).detach().cpu().bool()
    if pred_t.shape != gt_t.shape or pred_t.ndim != 3:
        raise ValueError(f"BEV seg prediction {tuple(pred_t.shape)} and target {tuple(gt_t.shape)} must "
                         "both be (C, H, W)")
    flat_pred = pred_t.reshape(pred_t.shape[0], -1, 1) >= torch.tensor(thresholds, dtype=torch.float32)
    flat_gt = gt_t.reshape(gt_t.shape[0], -1, 1)
    tp = (flat_pred & flat_gt).sum(dim=1)
    fp = (flat_pred & ~flat_gt).sum(dim=1)
    fn = (~flat_pred & flat_gt).sum(dim=1)
    return torch.stack([tp, fp, fn], dim=-1).numpy().astype(np.int64)


def scores_from_counts(counts: np.ndarray, classes: Sequence[str],
                       thresholds: Sequence[float] = BEVFUSION_THRESHOLDS) -> dict[str, float]:
    """Per-class IoU at each threshold, ``iou@max``, ``mIoU`` and ``mIoU_present`` of summed counts."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.shape != (len(classes), len(thresholds), 3):
        raise ValueError(f"counts must be (C={len(classes)}, T={len(thresholds)}, 3), got {counts.shape}")
    tp, fp, fn = counts[..., 0], counts[..., 1], counts[..., 2]
    ious = tp / (tp + fp + fn + IOU_EPS)
    best = ious.max(axis=1)
    scores: dict[str, float] = {}
    for index, name in enumerate(classes):
        scores[f"{name}/iou@max"] = float(best[index])
        for threshold, iou in zip(thresholds, ious[index]):
            scores[f"{name}/iou@{threshold:.2f}"] = float(iou)
    present = (tp + fn)[:, 0] > 0
    scores["mIoU"] = float(best.mean())
    scores["mIoU_present"] = float(best[present].mean()) if present.any() else 0.0
    return scores


def evaluate_bev_seg(preds: Sequence[Any], gts: Sequence[Any], classes: Sequence[str] = BEV_SEG_CLASSES,
                     thresholds: Sequence[float] = BEVFUSION_THRESHOLDS) -> dict[str, float]:
    """The protocol's scores of paired ``(C, H, W)`` probabilities and bool targets."""
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predictions for {len(gts)} targets")
    total = np.zeros((len(classes), len(thresholds), 3), dtype=np.int64)
    for pred, gt in zip(preds, gts):
        total += confusion_counts(pred, gt, thresholds)
    return scores_from_counts(total, classes, thresholds)


@METRICS.register_module()
class BEVSegMetric(BaseMetric):
    """BEVFusion's BEV map-segmentation mIoU of ``pred_bev_seg`` against ``gt_bev_seg`` (module doc).

    Args:
        classes: channel names (default BEVFusion's six).
        thresholds: probability thresholds whose best IoU counts.
    """

    default_prefix = "bev_seg"

    def __init__(self, classes: Sequence[str] = BEV_SEG_CLASSES,
                 thresholds: Sequence[float] = BEVFUSION_THRESHOLDS, collect_device: str = "cpu",
                 prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not thresholds or any(not 0.0 <= t <= 1.0 for t in thresholds):
            raise ValueError(f"BEVSegMetric: thresholds must be in [0, 1], got {thresholds}")
        self.classes = tuple(classes)
        self.thresholds = tuple(float(t) for t in thresholds)

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Keep only the confusion counts of each sample (a few hundred integers)."""
        for sample in data_samples:
            token = _field(sample, "token")
            pred, gt = _field(sample, "pred_bev_seg"), _field(sample, "gt_bev_seg")
            if pred is None:
                raise ValueError(f"BEVSegMetric: sample {token} has no pred_bev_seg (no segmentation head?)")
            if gt is None:
                raise ValueError(f"BEVSegMetric: sample {token} has no gt_bev_seg; add LoadBEVSegmentation "
                                 "to the test pipeline")
            if pred.shape[0] != len(self.classes):
                raise ValueError(f"BEVSegMetric: sample {token} predicts {pred.shape[0]} classes, metric has "
                                 f"{len(self.classes)} {self.classes}")
            self.results.append(confusion_counts(pred, gt, self.thresholds))

    def compute_metrics(self, results: list) -> dict[str, float]:
        """Scores of the counts summed over every processed sample."""
        if not results:
            raise ValueError("BEVSegMetric: no samples were processed")
        return scores_from_counts(np.sum(results, axis=0), self.classes, self.thresholds)


def _field(sample: Any, name: str) -> Any:
    """Field ``name`` of a ``DetSample`` or of its dict form."""
    if isinstance(sample, Mapping):
        return sample.get(name)
    return getattr(sample, name, None)
