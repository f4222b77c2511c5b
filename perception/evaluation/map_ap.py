"""Chamfer-distance AP of vectorized maps (MapTR's protocol), for nuScenes and Argoverse 2 alike.

* Every instance, predicted or ground truth, is resampled to ``num_samples`` (100) points
  evenly spaced by arc length (:func:`resample_instances`; polygons along the closed ring).
* Chamfer distance between two instances: the mean of both directed mean nearest-point
  distances (:func:`chamfer_matrix`, vectorized over the pairs of a frame and class whose
  bounding boxes come closer than the largest threshold; the others cannot match).
* Per class and threshold, predictions of each frame are matched greedily by descending
  score: a prediction is a true positive when its nearest ground truth (Chamfer) is within
  the threshold and not yet taken, else a false positive (VOC / MapTR rule).
* AP: VOC all-points (area under the precision envelope), over all frames.
* Per threshold set (default ``{0.5, 1.0, 1.5}`` m and ``{0.2, 0.5, 1.0}`` m) a class's AP is
  the mean over the set's thresholds and the mAP the mean over classes.  A class without any
  ground truth has AP NaN and is left out of the mAP (the result lists it).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..structures import MapInstances

THRESHOLD_SETS: dict[str, tuple[float, ...]] = {"standard": (0.5, 1.0, 1.5), "strict": (0.2, 0.5, 1.0)}
"""MapTR's Chamfer thresholds (m) and the stricter set used for Argoverse 2 reports."""
NUM_SAMPLES = 100
MAX_CHUNK_ELEMENTS = 2_000_000


class MapEvalError(ValueError):
    """Inputs of the map evaluator that do not fit together (the message names them)."""


def resample_instances(points: np.ndarray, closed: np.ndarray, num: int = NUM_SAMPLES) -> np.ndarray:
    """``(M, num, 2)``: ``num`` points evenly spaced by arc length along each ``(P, 2)`` instance.

    Open instances keep both end points; closed ones run around the ring from the first
    vertex (the closing segment included, the first point not repeated).
    """
    points = np.asarray(points, dtype=np.float64)
    closed = np.asarray(closed, dtype=bool).reshape(-1)
    if points.ndim != 3 or points.shape[2] != 2 or closed.shape != (points.shape[0],):
        raise MapEvalError(f"resample_instances: points must be (M, P, 2) with closed (M,), got {points.shape} "
                           f"and {closed.shape}")
    count = points.shape[0]
    if count == 0:
        return np.zeros((0, num, 2))
    # closed: append the first vertex; open: repeat the last (a zero-length closing segment)
    tail = np.where(closed[:, None, None], points[:, :1], points[:, -1:])
    vertices = np.concatenate([points, tail], axis=1)
    segments = np.diff(vertices, axis=1)
    lengths = np.linalg.norm(segments, axis=2)
    cumulative = np.concatenate([np.zeros((count, 1)), np.cumsum(lengths, axis=1)], axis=1)
    fractions = np.where(closed[:, None], np.arange(num)[None] / num, np.linspace(0.0, 1.0, num)[None])
    targets = cumulative[:, -1:] * fractions
    index = (targets[:, :, None] >= cumulative[:, None, :]).sum(axis=2) - 1
    index = np.clip(index, 0, segments.shape[1] - 1)
    rows = np.arange(count)[:, None]
    seg_len = lengths[rows, index]
    offset = np.where(seg_len > 0, (targets - cumulative[rows, index]) / np.maximum(seg_len, 1e-12), 0.0)
    offset = np.clip(offset, 0.0, 1.0)
    return vertices[rows, index] + offset[..., None] * segments[rows, index]


def chamfer_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(K,)`` Chamfer distances of aligned pairs ``a[k]`` ``(S, 2)`` and ``b[k]`` ``(T, 2)``:
    ``(mean_s min_t |a_s - b_t| + mean_t min_s |a_s - b_t|) / 2``.

    Squared distances are taken from coordinate differences (exact), square roots after the minima.
    """
    if len(a) == 0:
        return np.zeros(0)
    dx = a[:, :, None, 0] - b[:, None, :, 0]
    dy = a[:, :, None, 1] - b[:, None, :, 1]
    sq = dx * dx
    sq += dy * dy  # (K, S, T)
    return 0.5 * (np.sqrt(sq.min(axis=2)).mean(axis=1) + np.sqrt(sq.min(axis=1)).mean(axis=1))


def chamfer_matrix(a: np.ndarray, b: np.ndarray, max_distance: float = np.inf) -> np.ndarray:
    """``(N, M)`` Chamfer distances between sampled curves ``a`` ``(N, S, 2)`` and ``b`` ``(M, T, 2)``.

    Pairs whose bounding boxes lie ``max_distance`` or more apart are not computed and get
    ``inf``: every nearest-point distance, hence the Chamfer distance, is at least that gap,
    so such a pair can never match below ``max_distance``.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 3 or b.ndim != 3 or a.shape[2] != 2 or b.shape[2] != 2:
        raise MapEvalError(f"chamfer_matrix: inputs must be (N, S, 2) and (M, T, 2), got {a.shape} and {b.shape}")
    result = np.full((a.shape[0], b.shape[0]), np.inf)
    if a.shape[0] == 0 or b.shape[0] == 0:
        return result
    low_a, high_a, low_b, high_b = a.min(axis=1), a.max(axis=1), b.min(axis=1), b.max(axis=1)
    gap = np.maximum(np.maximum(low_b[None] - high_a[:, None], low_a[:, None] - high_b[None]), 0.0)
    rows, cols = np.nonzero(np.linalg.norm(gap, axis=2) < max_distance)
    chunk = max(1, MAX_CHUNK_ELEMENTS // (a.shape[1] * b.shape[1]))
    for start in range(0, len(rows), chunk):
        r, c = rows[start:start + chunk], cols[start:start + chunk]
        result[r, c] = chamfer_pairs(a[r], b[c])
    return result


def greedy_match(distances: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """True-positive flags ``(N,)`` of predictions (rows of ``distances`` ``(N, M)``) in the given order.

    Predictions are visited by descending score (stable for ties); each takes its nearest
    ground truth if that is within ``threshold`` (inclusive, as MapTR) and still free.
    """
    tp = np.zeros(distances.shape[0], dtype=bool)
    if distances.shape[0] == 0 or distances.shape[1] == 0:
        return tp
    nearest = distances.argmin(axis=1)
    close = distances[np.arange(len(nearest)), nearest] <= threshold
    taken = np.zeros(distances.shape[1], dtype=bool)
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        if close[i] and not taken[nearest[i]]:
            taken[nearest[i]] = tp[i] = True
    return tp


def average_precision(scores: np.ndarray, tp: np.ndarray, num_gt: int) -> float:
    """VOC all-points AP of detections with ``scores`` and true-positive flags ``tp`` (NaN if no GT)."""
    if num_gt == 0:
        return float("nan")
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-np.asarray(scores), kind="stable")
    hits = np.asarray(tp, dtype=np.float64)[order]
    tp_cum, fp_cum = np.cumsum(hits), np.cumsum(1.0 - hits)
    recall = tp_cum / num_gt
    precision = tp_cum / np.maximum(tp_cum + fp_cum, np.finfo(np.float64).eps)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


@dataclass
class MapAPResult:
    """``ap[class][threshold]``, ``class_ap[set][class]`` (mean over the set), ``mean_ap[set]``,
    ``num_gt[class]`` and ``num_pred[class]``."""

    ap: dict[str, dict[float, float]]
    class_ap: dict[str, dict[str, float]]
    mean_ap: dict[str, float]
    num_gt: dict[str, int]
    num_pred: dict[str, int]

    def flat(self, prefix: str = "") -> dict[str, float]:
        """Flat metric names: ``<cls>_AP@<thr>``, ``<cls>_AP_<set>``, ``mAP_<set>`` (with ``prefix``)."""
        out = {f"{prefix}{name}_AP@{thr}": value for name, per in self.ap.items() for thr, value in per.items()}
        out.update({f"{prefix}{name}_AP_{key}": value for key, per in self.class_ap.items()
                    for name, value in per.items()})
        out.update({f"{prefix}mAP_{key}": value for key, value in self.mean_ap.items()})
        return out


def _check_pair(pred: MapInstances, gt: MapInstances, class_names: tuple[str, ...], index: int) -> None:
    if pred.scores is None:
        raise MapEvalError(f"frame {index}: predictions need scores (MapInstances.scores is None)")
    for role, inst in (("prediction", pred), ("ground truth", gt)):
        if inst.class_names != class_names:
            raise MapEvalError(f"frame {index}: {role} class_names {inst.class_names} differ from {class_names}")


def evaluate_map(predictions: Sequence[MapInstances], ground_truths: Sequence[MapInstances],
                 class_names: Sequence[str] | None = None,
                 threshold_sets: Mapping[str, Sequence[float]] | None = None,
                 num_samples: int = NUM_SAMPLES) -> MapAPResult:
    """Chamfer AP of ``predictions`` against ``ground_truths`` (one :class:`MapInstances` per frame each)."""
    if len(predictions) != len(ground_truths):
        raise MapEvalError(f"{len(predictions)} prediction frames but {len(ground_truths)} ground-truth frames")
    threshold_sets = {k: tuple(float(t) for t in v) for k, v in (threshold_sets or THRESHOLD_SETS).items()}
    if not threshold_sets or any(not v or min(v) <= 0 for v in threshold_sets.values()):
        raise MapEvalError(f"threshold_sets must map names to non-empty positive thresholds, got {threshold_sets}")
    if class_names is None:
        class_names = ground_truths[0].class_names if ground_truths else ()
    class_names = tuple(class_names)
    thresholds = sorted({t for values in threshold_sets.values() for t in values})
    scores: dict[str, list[np.ndarray]] = {c: [] for c in class_names}
    hits: dict[str, dict[float, list[np.ndarray]]] = {c: {t: [] for t in thresholds} for c in class_names}
    num_gt = {c: 0 for c in class_names}
    for index, (pred, gt) in enumerate(zip(predictions, ground_truths)):
        _check_pair(pred, gt, class_names, index)
        pred_pts = resample_instances(pred.points, pred.closed, num_samples)
        gt_pts = resample_instances(gt.points, gt.closed, num_samples)
        for label, name in enumerate(class_names):
            p_mask, g_mask = pred.labels == label, gt.labels == label
            num_gt[name] += int(g_mask.sum())
            distances = chamfer_matrix(pred_pts[p_mask], gt_pts[g_mask], max_distance=thresholds[-1])
            scores[name].append(pred.scores[p_mask])
            for thr in thresholds:
                hits[name][thr].append(greedy_match(distances, pred.scores[p_mask], thr))
    ap = {name: {thr: average_precision(np.concatenate(scores[name]) if scores[name] else np.zeros(0),
                                        np.concatenate(hits[name][thr]) if hits[name][thr] else np.zeros(0, bool),
                                        num_gt[name]) for thr in thresholds} for name in class_names}
    class_ap = {key: {name: float(np.mean([ap[name][t] for t in values])) for name in class_names}
                for key, values in threshold_sets.items()}
    mean_ap = {key: float(np.nanmean(list(per.values()))) if any(np.isfinite(list(per.values()))) else float("nan")
               for key, per in class_ap.items()}
    num_pred = {name: int(sum(len(s) for s in scores[name])) for name in class_names}
    return MapAPResult(ap, class_ap, mean_ap, num_gt, num_pred)
