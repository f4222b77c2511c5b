"""Reference predictors for BEV map segmentation, scored with the same protocol as a model.

* **constant**: the same probability everywhere.  With BEVFusion's max-over-thresholds rule
  the best constant is "all ones" (every cell positive), whose IoU per class is the fraction of
  cells of that class; :func:`constant_baseline` scores it (and, for reference, the class-
  frequency constant, which falls under the lowest threshold for rare classes).
* **spatial prior**: each cell's frequency of each class over the training targets, i.e. the
  best a model can do that ignores the sensors (the road is usually around the ego).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from ..structures.bev_seg_classes import BEV_SEG_CLASSES
from .bev_seg_metric import BEVFUSION_THRESHOLDS, confusion_counts, scores_from_counts


def _stack(targets: Iterable[np.ndarray | torch.Tensor]) -> np.ndarray:
    arrays = [np.asarray(torch.as_tensor(t).cpu().numpy(), dtype=bool) for t in targets]
    if not arrays:
        raise ValueError("no BEV segmentation targets given")
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1 or len(arrays[0].shape) != 3:
        raise ValueError(f"targets must all be (C, H, W) of one shape, got {sorted(shapes)}")
    return np.stack(arrays)


def _score_constant(gts: np.ndarray, probs: np.ndarray, classes: Sequence[str],
                    thresholds: Sequence[float]) -> dict[str, float]:
    """Scores of a per-class (or per-class-and-cell) probability map used for every sample."""
    pred = np.broadcast_to(probs, gts.shape[1:]).astype(np.float32)
    total = sum(confusion_counts(pred, gt, thresholds) for gt in gts)
    return scores_from_counts(total, classes, thresholds)


def constant_baseline(gts: Iterable[np.ndarray | torch.Tensor], classes: Sequence[str] = BEV_SEG_CLASSES,
                      thresholds: Sequence[float] = BEVFUSION_THRESHOLDS) -> dict[str, dict[str, float]]:
    """Scores of the all-ones and class-frequency constant predictors on ``gts``."""
    stacked = _stack(gts)
    frequency = stacked.mean(axis=(0, 2, 3))
    ones = np.ones((stacked.shape[1], 1, 1), dtype=np.float32)
    return {"all_ones": _score_constant(stacked, ones, classes, thresholds),
            "class_frequency": _score_constant(stacked, frequency[:, None, None], classes, thresholds)}


def spatial_prior_baseline(train_gts: Iterable[np.ndarray | torch.Tensor],
                           eval_gts: Iterable[np.ndarray | torch.Tensor],
                           classes: Sequence[str] = BEV_SEG_CLASSES,
                           thresholds: Sequence[float] = BEVFUSION_THRESHOLDS) -> dict[str, float]:
    """Scores on ``eval_gts`` of the per-cell class frequency of ``train_gts``."""
    prior = _stack(train_gts).mean(axis=0)
    return _score_constant(_stack(eval_gts), prior, classes, thresholds)
