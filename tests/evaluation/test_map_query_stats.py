"""query_hits: seeded / learned queries that fire on, or away from, the ground truth."""
from __future__ import annotations

import numpy as np
import pytest

from perception.evaluation.map_query_stats import QUERY_STAT_KEYS, query_hits
from perception.structures.map_instances import MapInstances

CLASSES = ("divider", "ped_crossing", "boundary")


def line(y: float, x0: float = -10.0, x1: float = 10.0) -> np.ndarray:
    return np.stack([np.linspace(x0, x1, 20), np.full(20, y)], axis=1)


def test_hits_false_firings_and_found_elements() -> None:
    gt = MapInstances(np.stack([line(0.0), line(8.0)]).astype(np.float32), np.array([0, 2]), CLASSES,
                      np.array([False, False]))
    points = np.stack([line(0.2),          # learned, on the divider: hit
                       line(0.0),          # seeded, on the divider but boundary class: false
                       line(8.0, -10, -5),  # seeded, a quarter of the boundary: Chamfer ~2.8 m: false
                       line(8.1),          # seeded, on the boundary: hit
                       line(-20.0),        # learned, nowhere: false
                       line(0.0)])         # learned but below the score threshold: not counted
    labels = np.array([0, 2, 2, 2, 0, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.1])
    seeded = np.array([False, True, True, True, False, False])
    counts = query_hits(points, labels, scores, seeded, gt)
    assert set(counts) == set(QUERY_STAT_KEYS)
    assert dict(counts) == {"seeds": 3, "hit_seeded": 1, "false_seeded": 2, "hit_learned": 1, "false_learned": 1,
                            "gt": 2, "gt_found": 2}
    loose = query_hits(points, labels, scores, seeded, gt, max_chamfer=3.0)
    assert loose["hit_seeded"] == 2 and loose["false_seeded"] == 1
    none_firing = query_hits(points, labels, scores * 0, seeded, gt)
    assert none_firing["gt_found"] == 0 and none_firing["hit_learned"] == none_firing["false_learned"] == 0
    empty_gt = MapInstances(np.zeros((0, 20, 2), np.float32), np.zeros(0, np.int64), CLASSES, np.zeros(0, bool))
    assert query_hits(points, labels, scores, seeded, empty_gt)["false_learned"] == 2
    with pytest.raises(ValueError, match="query_hits"):
        query_hits(points, labels[:2], scores, seeded, gt)
