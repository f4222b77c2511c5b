"""BEVSegMetric / BEVFusion mIoU protocol: known answers and the constant baselines."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from perception.evaluation.bev_seg_baselines import constant_baseline, spatial_prior_baseline
from perception.evaluation.bev_seg_metric import (BEVFUSION_THRESHOLDS, BEVSegMetric, confusion_counts,
                                                  evaluate_bev_seg)
from perception.registry import METRICS
from perception.structures import DetSample

CLASSES = ("a", "b")


def left_half(height: int = 8, width: int = 8) -> torch.Tensor:
    mask = torch.zeros(height, width, dtype=torch.bool)
    mask[:, : width // 2] = True
    return mask


def sample(pred: torch.Tensor | None, gt: torch.Tensor | None, token: str = "t") -> DetSample:
    return DetSample(token=token, class_names=("car",), lidar2global=np.eye(4), gt_boxes=np.zeros((0, 9)),
                     gt_labels=np.zeros(0), gt_bev_seg=gt, pred_bev_seg=pred)


def test_perfect_prediction_scores_one() -> None:
    gt = torch.stack([left_half(), ~left_half()])
    scores = evaluate_bev_seg([gt.float()], [gt], CLASSES)
    assert scores["a/iou@max"] == pytest.approx(1.0) and scores["b/iou@max"] == pytest.approx(1.0)
    assert scores["mIoU"] == pytest.approx(1.0)


def test_empty_prediction_scores_zero() -> None:
    gt = torch.stack([left_half(), left_half()])
    scores = evaluate_bev_seg([torch.zeros(2, 8, 8)], [gt], CLASSES)
    assert scores["mIoU"] == 0.0 and scores["a/iou@0.35"] == 0.0


def test_half_overlap_and_threshold_maximum() -> None:
    """Predicting the top half of a left-half target: IoU = 16 / 48 = 1/3.  Probabilities 0.5
    count only at thresholds <= 0.5, so the per-threshold IoUs differ and the max picks 1/3."""
    top = torch.zeros(8, 8)
    top[4:, :] = 0.5
    gt = torch.stack([left_half(), left_half()])
    pred = torch.stack([top, left_half().float() * 0.5])  # class b: exact, but only at t <= 0.5
    scores = evaluate_bev_seg([pred], [gt], CLASSES)
    assert scores["a/iou@0.50"] == pytest.approx(1 / 3)
    assert scores["a/iou@0.55"] == 0.0
    assert scores["a/iou@max"] == pytest.approx(1 / 3)
    assert scores["b/iou@0.45"] == pytest.approx(1.0) and scores["b/iou@0.65"] == 0.0
    assert scores["mIoU"] == pytest.approx((1 / 3 + 1.0) / 2)


def test_counts_are_summed_over_samples_not_averaged() -> None:
    """Sample 1: 32 TP; sample 2: 1 FN in a 1-cell target.  Dataset IoU = 32 / 33, not the mean 0.5."""
    gt1 = left_half()[None]
    gt2 = torch.zeros(1, 8, 8, dtype=torch.bool)
    gt2[0, 0, 0] = True
    scores = evaluate_bev_seg([gt1.float(), torch.zeros(1, 8, 8)], [gt1, gt2], ("a",))
    assert scores["a/iou@max"] == pytest.approx(32 / 33)


def test_absent_class_counts_zero_in_miou_but_not_in_present() -> None:
    gt = torch.stack([left_half(), torch.zeros(8, 8, dtype=torch.bool)])
    scores = evaluate_bev_seg([gt.float()], [gt], CLASSES)
    assert scores["mIoU"] == pytest.approx(0.5)
    assert scores["mIoU_present"] == pytest.approx(1.0)


def test_confusion_counts_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="must"):
        confusion_counts(torch.zeros(2, 4, 4), torch.zeros(2, 4, 5, dtype=torch.bool))


def test_metric_process_compute_and_errors() -> None:
    metric = METRICS.build(dict(type="BEVSegMetric", classes=CLASSES))
    assert isinstance(metric, BEVSegMetric)
    gt = torch.stack([left_half(), ~left_half()])
    metric.process({}, [sample(gt.float(), gt, "x"), sample(torch.zeros(2, 8, 8), gt, "y")])
    scores = metric.compute_metrics(metric.results)
    assert scores["a/iou@max"] == pytest.approx(0.5) and scores["mIoU"] == pytest.approx(0.5)
    assert len([k for k in scores if k.startswith("a/iou@0")]) == len(BEVFUSION_THRESHOLDS)
    with pytest.raises(ValueError, match="no pred_bev_seg"):
        metric.process({}, [sample(None, gt)])
    with pytest.raises(ValueError, match="no gt_bev_seg"):
        metric.process({}, [sample(gt.float(), None)])
    with pytest.raises(ValueError, match="predicts 3 classes"):
        metric.process({}, [sample(torch.zeros(3, 8, 8), torch.zeros(3, 8, 8, dtype=torch.bool))])


def test_constant_baselines_match_class_frequency() -> None:
    """All-ones IoU = fraction of positive cells; the frequency constant only counts if >= 0.35."""
    a = left_half()  # 50 %
    b = torch.zeros(8, 8, dtype=torch.bool)
    b[0, :4] = True  # 4 / 64
    gts = [torch.stack([a, b])] * 3
    scores = constant_baseline(gts, CLASSES)
    assert scores["all_ones"]["a/iou@max"] == pytest.approx(0.5)
    assert scores["all_ones"]["b/iou@max"] == pytest.approx(4 / 64)
    assert scores["class_frequency"]["a/iou@max"] == pytest.approx(0.5)
    assert scores["class_frequency"]["b/iou@max"] == 0.0
    prior = spatial_prior_baseline(gts, gts, CLASSES)  # fixed layout: the prior is exact
    assert prior["mIoU"] == pytest.approx(1.0)
