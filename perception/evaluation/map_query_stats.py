"""Which map queries fire, and are they right: hit / false counts of seeded vs learned queries.

A diagnostic for HRMapNet-style query seeding (``tools/hrmap_proof.py --query-stats``).  Per
frame, every one-to-one query whose best class scores at least ``score_threshold`` is a *hit*
when its point set lies within ``max_chamfer`` metres (Chamfer distance, 100-point resampling as
the AP evaluator) of a ground-truth element of that class, else *false*; it counts as seeded
when a map seed started it.  ``gt_found`` counts the ground-truth elements some hit lies on.
Unlike AP this says whether a drop comes from seeds that fire wrongly or from learned queries
that stop firing.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from ..structures.map_instances import MapInstances
from .map_ap import chamfer_matrix, resample_instances

QUERY_STAT_KEYS: tuple[str, ...] = ("seeds", "hit_seeded", "false_seeded", "hit_learned", "false_learned",
                                    "gt", "gt_found")


def query_hits(points: np.ndarray, labels: np.ndarray, scores: np.ndarray, seeded: np.ndarray,
               gt: MapInstances, closed_labels: set[int] | frozenset[int] = frozenset(),
               score_threshold: float = 0.3, max_chamfer: float = 1.5) -> Counter:
    """Counts of one frame (module doc): ``points (Q, P, 2)`` metres, ``labels``/``scores``/``seeded``
    ``(Q,)`` per query (its best class), ``gt`` the frame's ground truth; ``closed_labels`` the
    polygon classes (resampled round the ring)."""
    points, labels = np.asarray(points, dtype=np.float64), np.asarray(labels)
    scores, seeded = np.asarray(scores), np.asarray(seeded, dtype=bool)
    if points.ndim != 3 or not (len(points) == len(labels) == len(scores) == len(seeded)):
        raise ValueError(f"query_hits: points (Q, P, 2) with (Q,) labels / scores / seeded, got {points.shape}, "
                         f"{labels.shape}, {scores.shape}, {seeded.shape}")
    counts: Counter = Counter({key: 0 for key in QUERY_STAT_KEYS})
    counts["seeds"] = int(seeded.sum())
    counts["gt"] = len(gt)
    firing = np.flatnonzero(scores >= score_threshold)
    found: set[int] = set()
    closed_pred = np.array([int(label) in closed_labels for label in labels[firing]], dtype=bool)
    pred = resample_instances(points[firing], closed_pred)
    truth = resample_instances(gt.points, gt.closed)
    distances = chamfer_matrix(pred, truth, max_chamfer)
    same_class = labels[firing][:, None] == np.asarray(gt.labels)[None]
    distances = np.where(same_class, distances, np.inf)
    for row, query in enumerate(firing):
        kind = "seeded" if seeded[query] else "learned"
        if distances.shape[1] and distances[row].min() <= max_chamfer:
            counts[f"hit_{kind}"] += 1
            found.add(int(distances[row].argmin()))
        else:
            counts[f"false_{kind}"] += 1
    counts["gt_found"] = len(found)
    return counts
