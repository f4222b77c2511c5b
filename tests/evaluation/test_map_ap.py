"""Chamfer-distance map AP (perception/evaluation/map_ap.py) and its mmengine metric on hand-computed cases."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from perception.evaluation.map_ap import (
    MapEvalError,
    average_precision,
    chamfer_matrix,
    evaluate_map,
    greedy_match,
    resample_instances,
)
from perception.evaluation.map_metric import VectorMapMetric
from perception.registry import METRICS
from perception.structures import DetSample, MapInstances

CLASSES = ("divider", "ped_crossing", "boundary")


def line(x0: float, y0: float, x1: float, y1: float, num: int = 20) -> np.ndarray:
    return np.stack([np.linspace(x0, x1, num), np.linspace(y0, y1, num)], axis=1)


def square(x0: float, y0: float, side: float) -> np.ndarray:
    """A square sampled at 20 points, 5 per side, starting at its lower-left corner, counter-clockwise."""
    t = np.arange(5) / 5 * side
    return np.concatenate([np.stack([x0 + t, np.full(5, y0)], 1), np.stack([np.full(5, x0 + side), y0 + t], 1),
                           np.stack([x0 + side - t, np.full(5, y0 + side)], 1),
                           np.stack([np.full(5, x0), y0 + side - t], 1)])


def instances(shapes: list[np.ndarray], labels: list[int], closed: list[bool],
              scores: list[float] | None = None) -> MapInstances:
    points = np.stack(shapes) if shapes else np.zeros((0, 20, 2))
    return MapInstances(points, labels, CLASSES, closed, scores)


GT = instances([line(0, 0, 10, 0), square(2, 2, 2.0), line(-5, -5, -5, 5)], [0, 1, 2], [False, True, False])


def evaluate(pred: MapInstances, gt: MapInstances = GT) -> dict[str, float]:
    return evaluate_map([pred], [gt]).flat()


# ------------------------------------------------------------------ building blocks


def test_resample_open_and_closed() -> None:
    open_line = np.array([[[0.0, 0.0], [1.0, 0.0], [1.0, 3.0]]])  # length 4
    out = resample_instances(open_line, np.array([False]), num=5)
    np.testing.assert_allclose(out[0], [[0, 0], [1, 0], [1, 1], [1, 2], [1, 3]], atol=1e-12)
    ring = np.array([[[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]]])  # perimeter 8, closing side included
    out = resample_instances(ring, np.array([True]), num=8)
    np.testing.assert_allclose(out[0], [[0, 0], [1, 0], [2, 0], [2, 1], [2, 2], [1, 2], [0, 2], [0, 1]], atol=1e-12)
    # repeated vertices (zero-length segments) and a degenerate (point-like) instance
    dup = np.array([[[0.0, 0.0], [0.0, 0.0], [2.0, 0.0], [2.0, 0.0]], [[3.0, 3.0]] * 4])
    out = resample_instances(dup, np.array([False, False]), num=3)
    np.testing.assert_allclose(out, [[[0, 0], [1, 0], [2, 0]], [[3, 3]] * 3], atol=1e-12)
    with pytest.raises(MapEvalError, match="closed"):
        resample_instances(ring, np.array([True, False]))


def test_chamfer_matrix_hand_values_and_naive_reference() -> None:
    a = resample_instances(np.array([line(0, 0, 10, 0)]), np.array([False]))
    b = resample_instances(np.array([line(0, 0.7, 10, 0.7), line(0, 0, 10, 0)[::-1]]), np.array([False, False]))
    np.testing.assert_allclose(chamfer_matrix(a, b), [[0.7, 0.0]], atol=1e-12)
    # a 1 m segment against the point (0, 1) at its start: a->b mean of sqrt(x^2 + 1), b->a 1
    seg = resample_instances(np.array([line(0, 0, 1, 0)]), np.array([False]), num=100)
    point = np.zeros((1, 100, 2)) + [0.0, 1.0]
    expected = 0.5 * (np.sqrt(np.linspace(0, 1, 100) ** 2 + 1).mean() + 1.0)
    np.testing.assert_allclose(chamfer_matrix(seg, point), [[expected]], rtol=1e-12)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(7, 30, 2)) * 5, rng.normal(size=(4, 25, 2)) * 5
    naive = [[0.5 * (cdist(p, g).min(1).mean() + cdist(p, g).min(0).mean()) for g in b] for p in a]
    np.testing.assert_allclose(chamfer_matrix(a, b), naive, rtol=1e-9, atol=1e-9)
    assert chamfer_matrix(a, np.zeros((0, 25, 2))).shape == (7, 0)
    # pairs whose boxes are max_distance apart are skipped as inf, the others are unchanged
    far = np.concatenate([b, b[:1] + 100.0])
    limited = chamfer_matrix(a, far, max_distance=1.5)
    assert np.isinf(limited[:, -1]).all()
    np.testing.assert_allclose(limited[:, :-1][np.isfinite(limited[:, :-1])],
                               np.asarray(naive)[np.isfinite(limited[:, :-1])], rtol=1e-9)


def test_greedy_match_takes_nearest_free_ground_truth_by_score() -> None:
    distances = np.array([[0.1, 5.0], [0.2, 5.0], [5.0, 0.4], [0.3, 0.35]])
    scores = np.array([0.5, 0.9, 0.8, 0.7])
    # order: row 1 takes gt 0; row 2 takes gt 1; row 3's nearest (gt 0) is taken -> FP; row 0 -> FP
    assert greedy_match(distances, scores, 0.5).tolist() == [False, True, True, False]
    # at 0.15 only row 0 is close enough, and gt 0 is still free when it comes
    assert greedy_match(distances, scores, 0.15).tolist() == [True, False, False, False]


def test_average_precision_voc_all_points() -> None:
    # TP, FP, TP over 2 GT: precision envelope 1 up to recall 0.5, then 2/3 up to recall 1
    assert average_precision(np.array([0.9, 0.8, 0.7]), np.array([1, 0, 1], bool), 2) == pytest.approx(0.5 + 1 / 3)
    assert average_precision(np.array([0.9]), np.array([True]), 4) == pytest.approx(0.25)
    assert average_precision(np.zeros(0), np.zeros(0, bool), 3) == 0.0
    assert np.isnan(average_precision(np.array([0.5]), np.array([False]), 0))


# ------------------------------------------------------------------ the listed known-answer cases


def test_perfect() -> None:
    metrics = evaluate(instances(list(GT.points), [0, 1, 2], [False, True, False], [0.9, 0.8, 0.7]))
    assert metrics["mAP_standard"] == pytest.approx(1.0) and metrics["mAP_strict"] == pytest.approx(1.0)


def test_shifted_by_0_7_m() -> None:
    shifted = GT.points + np.array([0.0, 0.7])  # Chamfer 0.7 for the divider (perpendicular shift)
    pred = instances([shifted[0]], [0], [False], [0.9])
    metrics = evaluate(pred)
    assert [metrics[f"divider_AP@{t}"] for t in (0.2, 0.5, 1.0, 1.5)] == pytest.approx([0, 0, 1, 1])
    assert metrics["divider_AP_standard"] == pytest.approx(2 / 3)
    assert metrics["divider_AP_strict"] == pytest.approx(1 / 3)
    assert metrics["ped_crossing_AP_standard"] == 0.0 and metrics["mAP_standard"] == pytest.approx(2 / 9)


def test_reversed_direction_matches() -> None:
    pred = instances([GT.points[0][::-1], GT.points[2][::-1]], [0, 2], [False, False], [0.9, 0.9])
    metrics = evaluate(pred)
    assert metrics["divider_AP@0.2"] == pytest.approx(1.0) and metrics["boundary_AP@0.2"] == pytest.approx(1.0)


def test_polygon_with_another_start_vertex_matches() -> None:
    rolled = np.roll(GT.points[1], -5, axis=0)  # starts at the next corner
    reversed_ring = GT.points[1][::-1]
    for ring in (rolled, reversed_ring):
        sampled = resample_instances(np.stack([ring, GT.points[1]]), np.array([True, True]))
        assert chamfer_matrix(sampled[:1], sampled[1:])[0, 0] < 1e-6  # float32 storage
        metrics = evaluate(instances([ring], [1], [True], [0.6]))
        assert metrics["ped_crossing_AP@0.2"] == pytest.approx(1.0)
    # a start between vertices on a 1 x 3 rectangle: samples interleave, Chamfer below half the spacing
    rect = np.array([[0, 0], [3, 0], [3, 1], [0, 1]], float)
    shifted_start = np.array([[1.3, 0], [3, 0], [3, 1], [0, 1], [0, 0]], float)
    a = resample_instances(rect[None], np.array([True]))
    b = resample_instances(shifted_start[None], np.array([True]))
    assert 0 < chamfer_matrix(a, b)[0, 0] < 0.5 * 8 / 100


def test_open_polyline_scored_against_polygon_shape_is_not_perfect() -> None:
    # the same vertices read as an open line miss the closing 0.4 m side: Chamfer clearly > 0
    a = resample_instances(GT.points[1:2], np.array([True]))
    b = resample_instances(GT.points[1:2], np.array([False]))
    assert chamfer_matrix(a, b)[0, 0] > 0.01


def test_missed_instance_halves_recall() -> None:
    gt = instances([line(0, 0, 10, 0), line(0, 5, 10, 5)], [0, 0], [False, False])
    pred = instances([line(0, 0, 10, 0)], [0], [False], [0.9])
    metrics = evaluate(pred, gt)
    assert metrics["divider_AP@0.5"] == pytest.approx(0.5)
    assert np.isnan(metrics["ped_crossing_AP_standard"])  # no GT of the class: NaN, left out of the mAP
    assert metrics["mAP_standard"] == pytest.approx(0.5)


def test_duplicated_prediction_is_a_false_positive() -> None:
    gt = instances([line(0, 0, 10, 0), line(0, 5, 10, 5)], [0, 0], [False, False])
    pred = instances([line(0, 0, 10, 0), line(0, 0.1, 10, 0.1), line(0, 5, 10, 5)], [0, 0, 0], [False] * 3,
                     [0.9, 0.8, 0.7])
    result = evaluate_map([pred], [gt])
    assert result.ap["divider"][0.5] == pytest.approx(0.5 + 0.5 * 2 / 3)  # TP, FP, TP
    low_dup = instances(list(pred.points), [0, 0, 0], [False] * 3, [0.9, 0.6, 0.7])
    assert evaluate_map([low_dup], [gt]).ap["divider"][0.5] == pytest.approx(1.0)  # TP, TP, FP


def test_wrong_class_does_not_match_and_frames_accumulate() -> None:
    wrong = instances([GT.points[0]], [2], [False], [0.9])
    assert evaluate(wrong)["divider_AP@1.5"] == 0.0 and evaluate(wrong)["boundary_AP@1.5"] == 0.0
    # two frames: a perfect divider in frame A scored below a false one in frame B
    pred_a = instances([GT.points[0]], [0], [False], [0.5])
    pred_b = instances([line(50, 50, 60, 50)], [0], [False], [0.9])
    empty_gt = instances([], [], [])
    result = evaluate_map([pred_a, pred_b], [GT, empty_gt])
    assert result.ap["divider"][0.5] == pytest.approx(0.5) and result.num_gt["divider"] == 1
    assert result.num_pred["divider"] == 2


def test_bad_input() -> None:
    with pytest.raises(MapEvalError, match="scores"):
        evaluate_map([GT], [GT])
    with pytest.raises(MapEvalError, match="1 prediction frames but 2"):
        evaluate_map([GT], [GT, GT])
    other = MapInstances(GT.points, GT.labels, ("a", "b", "c"), GT.closed, np.ones(3))
    with pytest.raises(MapEvalError, match="class_names"):
        evaluate_map([other], [GT])
    with pytest.raises(MapEvalError, match="threshold_sets"):
        evaluate_map([GT.select(np.ones(3, bool))], [GT], threshold_sets={"x": ()})


def test_many_instances_fast_and_consistent() -> None:
    rng = np.random.default_rng(1)  # 30 GT and 50 predictions per frame spread over a MapTR patch
    starts = rng.uniform([-15, -30], [15, 30], size=(30, 1, 2))
    gt_pts = starts + rng.normal(size=(30, 1, 2)) * np.linspace(0, 3, 20)[None, :, None]
    gt = MapInstances(gt_pts, rng.integers(0, 3, 30), CLASSES, rng.random(30) < 0.3)
    noisy = gt_pts + rng.normal(scale=0.3, size=gt_pts.shape)
    pred = MapInstances(np.concatenate([noisy, noisy[:20] + 5.0]), np.concatenate([gt.labels, gt.labels[:20]]),
                        CLASSES, np.concatenate([gt.closed, gt.closed[:20]]), rng.random(50))
    result = evaluate_map([pred] * 4, [gt] * 4)
    assert all(0.0 <= v <= 1.0 for v in result.mean_ap.values())
    assert result.mean_ap["standard"] > result.mean_ap["strict"]


# ------------------------------------------------------------------ mmengine metric


def _sample(token: str, pred: MapInstances | None, gt: MapInstances | None) -> DetSample:
    return DetSample(token=token, class_names=("car",), lidar2global=np.eye(4), gt_boxes=torch.zeros(0, 9),
                     gt_labels=torch.zeros(0, dtype=torch.int64), gt_map=gt, pred_map=pred)


def test_vector_map_metric() -> None:
    metric = METRICS.build(dict(type="VectorMapMetric"))
    assert isinstance(metric, VectorMapMetric)
    half = instances([GT.points[0]], [0], [False], [0.9])
    metric.process({}, [_sample("a", half, GT), _sample("b", half, GT)])
    metric.process({}, [_sample("b", half, GT)])  # padded duplicate counts once
    metrics = metric.evaluate(3)
    assert metrics["map/divider_AP@0.5"] == pytest.approx(1.0)
    assert metrics["map/boundary_AP@0.5"] == 0.0 and "map/mAP_strict" in metrics
    assert metrics["map/mAP_standard"] == pytest.approx(1 / 3)
    with pytest.raises(MapEvalError, match="pred_map must be MapInstances.*map head"):
        metric.process({}, [_sample("c", None, GT)])
