"""Motion-forecasting and open-loop planning metrics with av2's own metric functions.

Prediction targets (agents): minADE / minFDE over the top-``k`` modes, miss rate (final error
of the best mode > ``miss_threshold`` m), brier-minFDE (the minFDE mode's FDE plus
``(1 - p)^2``), all from ``av2.datasets.motion_forecasting.eval.metrics`` (``compute_ade``,
``compute_fde``, ``compute_is_missed_prediction``, ``compute_brier_fde``), and the top-1 ADE /
FDE.  Planning targets (the ego): L2 of the top-scored mode, averaged over the horizon and at
1 / 2 / 3 s.  Targets whose future is partly unknown are scored on their valid steps (the last
valid one counts as final); targets with no valid future step are skipped.

``MotionForecastingMetric`` (registered in ``METRICS``) reads the samples that
``STR.predict`` fills (``pred_trajectories`` ``(K, F, 2)``, ``pred_scores``, ``gt_future``,
``gt_valid``, ``is_ego``); :func:`evaluate_forecasts` does the same for plain arrays.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from av2.datasets.motion_forecasting.eval.metrics import (
    compute_ade, compute_brier_fde, compute_fde, compute_is_missed_prediction)
from mmengine.evaluator import BaseMetric

from ..registry import METRICS


class MotionMetricError(ValueError):
    """Predictions and ground truth disagree in shape."""


def forecast_errors(trajectories: np.ndarray, scores: np.ndarray, gt: np.ndarray, valid: np.ndarray,
                    k: int = 6, miss_threshold: float = 2.0) -> dict[str, float] | None:
    """Metrics of one target: ``trajectories`` ``(K, F, 2)``, ``scores`` ``(K,)``, ``gt`` ``(F, 2)``,
    ``valid`` ``(F,)``; ``None`` when no future step is valid."""
    trajectories, gt = np.asarray(trajectories, np.float64), np.asarray(gt, np.float64)
    valid = np.asarray(valid, bool)
    scores = np.asarray(scores, np.float64)
    if trajectories.ndim != 3 or trajectories.shape[1:] != gt.shape or gt.shape[-1] != 2:
        raise MotionMetricError(f"predictions {trajectories.shape} do not match ground truth {gt.shape} (want (K, F, 2), (F, 2))")
    if scores.shape != trajectories.shape[:1]:
        raise MotionMetricError(f"scores {scores.shape} do not match {len(trajectories)} modes")
    if not valid.any():
        return None
    order = np.argsort(-scores, kind="stable")[:k]
    modes, probs = trajectories[order][:, valid], scores[order]
    probs = probs / probs.sum() if probs.sum() > 0 else np.full(len(probs), 1.0 / len(probs))
    truth = gt[valid]
    ade, fde = compute_ade(modes, truth), compute_fde(modes, truth)
    best = int(np.argmin(fde))
    brier = compute_brier_fde(modes, truth, np.clip(probs, 0.0, 1.0))
    return dict(min_ade=float(ade.min()), min_fde=float(fde[best]),
                missed=float(compute_is_missed_prediction(modes, truth, miss_threshold).all()),
                brier_min_fde=float(brier[best]), ade_1=float(ade[0]), fde_1=float(fde[0]))


def planning_errors(plan: np.ndarray, gt: np.ndarray, valid: np.ndarray, dt: float = 0.1,
                    horizons: Sequence[float] = (1.0, 2.0, 3.0)) -> dict[str, float] | None:
    """L2 of one plan ``(F, 2)`` against the truth: mean over valid steps and at each horizon."""
    valid = np.asarray(valid, bool)
    if not valid.any():
        return None
    err = np.linalg.norm(np.asarray(plan, np.float64)[:, :2] - np.asarray(gt, np.float64), axis=-1)
    out = dict(l2=float(err[valid].mean()))
    for h in horizons:
        i = int(round(h / dt)) - 1
        if 0 <= i < len(err) and valid[i]:
            out[f"l2_{h:g}s"] = float(err[i])
    return out


def _mean(rows: list[dict[str, float]], key: str) -> float:
    values = [r[key] for r in rows if key in r]
    return float(np.mean(values)) if values else float("nan")


def evaluate_forecasts(samples: Sequence[Any], k: int = 6, miss_threshold: float = 2.0, dt: float = 0.1
                       ) -> dict[str, float]:
    """Aggregate metrics of predicted samples (attributes of ``MotionSample``)."""
    pred_rows, plan_rows = [], []
    for sample in samples:
        if sample.pred_trajectories is None or sample.pred_scores is None:
            raise MotionMetricError(f"sample {sample.scene_id}/{sample.track_id} has no prediction")
        if sample.is_ego:
            top = int(np.argmax(sample.pred_scores))
            row = planning_errors(sample.pred_trajectories[top], sample.gt_future, sample.gt_valid, dt)
            if row is not None:
                plan_rows.append(row)
        else:
            row = forecast_errors(sample.pred_trajectories, sample.pred_scores, sample.gt_future, sample.gt_valid,
                                  k, miss_threshold)
            if row is not None:
                pred_rows.append(row)
    out: dict[str, float] = {}
    if pred_rows:
        out.update({f"minADE_{k}": _mean(pred_rows, "min_ade"), f"minFDE_{k}": _mean(pred_rows, "min_fde"),
                    f"MR_{k}": _mean(pred_rows, "missed"), f"brier_minFDE_{k}": _mean(pred_rows, "brier_min_fde"),
                    "ADE_1": _mean(pred_rows, "ade_1"), "FDE_1": _mean(pred_rows, "fde_1"),
                    "num_agents": float(len(pred_rows))})
    if plan_rows:
        out.update({"plan_L2": _mean(plan_rows, "l2"), "num_plans": float(len(plan_rows))})
        for key in ("l2_1s", "l2_2s", "l2_3s"):
            out[f"plan_{key.replace('l2', 'L2')}"] = _mean(plan_rows, key)
    return out


@METRICS.register_module()
class MotionForecastingMetric(BaseMetric):
    """AV2 motion-forecasting metrics (K modes, miss threshold in metres) + ego planning L2."""

    default_prefix = "motion"

    def __init__(self, k: int = 6, miss_threshold: float = 2.0, dt: float = 0.1, collect_device: str = "cpu",
                 prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.k, self.miss_threshold, self.dt = k, miss_threshold, dt

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        self.results.extend(data_samples)

    def compute_metrics(self, results: list) -> dict[str, float]:
        return evaluate_forecasts(results, self.k, self.miss_threshold, self.dt)
