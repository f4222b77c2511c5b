"""Motion-forecasting metrics (av2's functions) and the registered mmengine metric."""
from __future__ import annotations

import numpy as np
import pytest

from perception.evaluation.motion_metrics import (MotionForecastingMetric, MotionMetricError, evaluate_forecasts,
                                                  forecast_errors, planning_errors)
from perception.planning.motion_dataset import MotionSample
from perception.registry import METRICS

T = 60
GT = np.stack([np.arange(1, T + 1) * 1.0, np.zeros(T)], axis=1)


def sample(pred: np.ndarray, scores: np.ndarray, is_ego: bool = False, valid: np.ndarray | None = None):
    s = MotionSample("s", "t", is_ego, "vehicle", 49, np.zeros(3), GT.copy(), np.ones(T, bool) if valid is None else valid)
    s.pred_trajectories, s.pred_scores = pred, scores
    return s


def test_hand_computed_values() -> None:
    modes = np.stack([GT + [0.0, 3.0], GT + [0.0, 1.0], GT + [0.0, 5.0]])
    row = forecast_errors(modes, np.array([0.2, 0.5, 0.3]), GT, np.ones(T, bool), k=6)
    assert row["min_ade"] == pytest.approx(1.0) and row["min_fde"] == pytest.approx(1.0)
    assert row["missed"] == 0.0
    assert row["brier_min_fde"] == pytest.approx(1.0 + (1 - 0.5) ** 2)
    assert row["ade_1"] == pytest.approx(1.0)  # the top-scored mode is the 1 m one
    # k=1 keeps only the top mode; all modes 3 m off -> a miss at 2 m
    far = forecast_errors(modes + [0.0, 2.0], np.array([0.2, 0.5, 0.3]), GT, np.ones(T, bool), k=1)
    assert far["min_fde"] == pytest.approx(3.0) and far["missed"] == 1.0


def test_partial_futures_and_planning() -> None:
    valid = np.zeros(T, bool)
    valid[:20] = True
    pred = GT.copy()
    pred[19:] += [4.0, 0.0]  # wrong only from step 19 on: FDE at the last valid step (19) is 4 m
    row = forecast_errors(pred[None], np.ones(1), GT, valid)
    assert row["min_fde"] == pytest.approx(4.0) and row["min_ade"] == pytest.approx(4.0 / 20)
    assert forecast_errors(pred[None], np.ones(1), GT, np.zeros(T, bool)) is None
    plan = planning_errors(GT + [0.0, 2.0], GT, np.ones(T, bool))
    assert plan == {"l2": pytest.approx(2.0), "l2_1s": pytest.approx(2.0), "l2_2s": pytest.approx(2.0),
                    "l2_3s": pytest.approx(2.0)}


def test_metric_aggregates_agents_and_ego_plans() -> None:
    metric = METRICS.build(dict(type="MotionForecastingMetric", k=6))
    assert isinstance(metric, MotionForecastingMetric)
    agents = [sample(np.stack([GT + [d, 0.0]] * 6), np.full(6, 1 / 6)) for d in (0.0, 3.0)]
    ego = sample(np.stack([GT + [0.0, 1.0], GT + [0.0, 9.0]]), np.array([0.9, 0.1]), is_ego=True)
    metric.process({}, agents + [ego])
    out = metric.compute_metrics(metric.results)
    assert out["minADE_6"] == pytest.approx(1.5) and out["MR_6"] == pytest.approx(0.5)
    assert out["brier_minFDE_6"] == pytest.approx(1.5 + (5 / 6) ** 2)
    assert out["plan_L2"] == pytest.approx(1.0) and out["num_plans"] == 1 and out["num_agents"] == 2
    with pytest.raises(MotionMetricError, match="do not match"):
        forecast_errors(np.zeros((6, T, 3)), np.ones(6), GT, np.ones(T, bool))
    with pytest.raises(MotionMetricError, match="no prediction"):
        evaluate_forecasts([sample(None, None)])
