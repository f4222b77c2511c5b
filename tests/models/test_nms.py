"""BEV rotated IoU against shapely, rotated / circle NMS against brute-force greedy references."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from shapely.geometry import Polygon

from perception.models.layers import bev_corners, bev_rotated_iou, circle_nms, rotated_nms
from perception.models.layers import nms as nms_module
from perception.structures import Boxes3D


@pytest.fixture(autouse=True)
def one_thread():
    """Small tensor ops gain nothing from threads, and OpenMP spin-waits make them far slower
    when the machine's cores are busy; restore the setting afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_boxes(count: int, spread: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.uniform(-spread, spread, (count, 2)),
                           rng.uniform(0.3, 5.0, (count, 2)),
                           rng.uniform(-np.pi, np.pi, (count, 1))], axis=1)


def shapely_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    polys_a = [Polygon(c) for c in bev_corners(torch.tensor(boxes_a)).numpy()]
    polys_b = [Polygon(c) for c in bev_corners(torch.tensor(boxes_b)).numpy()]
    return np.array([[a.intersection(b).area / a.union(b).area for b in polys_b]
                     for a in polys_a])


def reference_nms(iou: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """Plain greedy NMS on (shapely) IoUs, one pair at a time."""
    keep: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if all(iou[i, j] <= threshold for j in keep):
            keep.append(int(i))
    return keep


def test_corners_match_boxes3d() -> None:
    boxes = random_boxes(20, 10, seed=1)
    data = np.zeros((20, 9))
    data[:, [0, 1, 3, 4, 6]] = boxes
    data[:, 5] = 1.0
    expected = Boxes3D(data, np.zeros(20)).corners()[:, :4, :2]
    np.testing.assert_allclose(bev_corners(torch.tensor(boxes)).numpy(), expected, atol=1e-12)


def test_iou_matches_shapely_on_random_boxes() -> None:
    boxes_a, boxes_b = random_boxes(80, 4, seed=2), random_boxes(60, 4, seed=3)
    iou = bev_rotated_iou(torch.tensor(boxes_a), torch.tensor(boxes_b)).numpy()
    reference = shapely_iou(boxes_a, boxes_b)
    assert (reference > 0).mean() > 0.2  # the test really exercises overlaps
    np.testing.assert_allclose(iou, reference, atol=1e-9)
    iou32 = bev_rotated_iou(torch.tensor(boxes_a, dtype=torch.float32),
                            torch.tensor(boxes_b, dtype=torch.float32))
    assert iou32.dtype == torch.float32
    np.testing.assert_allclose(iou32.numpy(), reference, atol=1e-5)


def test_iou_special_cases() -> None:
    boxes = torch.tensor([[0.0, 0, 2, 1, 0], [0, 0, 2, 1, np.pi], [2, 0, 2, 1, 0],
                          [1, 0, 2, 1, np.pi / 2], [50, 50, 2, 1, 0.3], [0, 0, 0, 0, 0]],
                         dtype=torch.float64)
    iou = bev_rotated_iou(boxes, boxes)
    assert iou[0, 1] == pytest.approx(1.0, abs=1e-9)  # same rectangle, opposite heading
    assert iou[0, 2] == pytest.approx(0.0, abs=1e-9)  # touching edges
    assert iou[0, 3] == pytest.approx(0.5 / 3.5, abs=1e-9)  # crossing at right angles
    assert iou[0, 4] == 0 and iou[5, 5] == 0  # far apart / zero area
    assert bev_rotated_iou(boxes[:0], boxes).shape == (0, 6)
    with pytest.raises(ValueError, match="boxes_a must be a \\(N, 5\\)"):
        bev_rotated_iou(boxes[:, :4], boxes)


def clustered(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Detections as a heatmap decoder yields them: jittered copies around a few objects."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-20, 20, (count // 8, 2))
    boxes = np.concatenate([np.repeat(centres, 8, 0) + rng.normal(0, 0.6, (count, 2)),
                            rng.uniform(1.0, 4.5, (count, 2)),
                            rng.normal(0, 0.4, (count, 1))], axis=1)
    return boxes, rng.uniform(0, 1, count)


@pytest.mark.parametrize("chunk", [32768, 4])  # one vectorized call / lazy per-kept-box IoUs
def test_rotated_nms_matches_reference(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nms_module, "_CHUNK", chunk)
    boxes, scores = clustered(120, seed=4)
    iou = shapely_iou(boxes, boxes)
    for threshold in (0.1, 0.3, 0.6):
        keep = rotated_nms(torch.tensor(boxes), torch.tensor(scores), threshold)
        expected = reference_nms(iou, scores, threshold)
        assert keep.tolist() == expected
        assert 15 < len(expected) < 120


def test_rotated_nms_pre_and_post_max_size() -> None:
    boxes, scores = clustered(64, seed=5)
    iou = shapely_iou(boxes, boxes)
    order = np.argsort(-scores, kind="stable")
    keep = rotated_nms(torch.tensor(boxes), torch.tensor(scores), 0.2, pre_max_size=30)
    top = order[:30]
    expected = [int(top[i]) for i in reference_nms(iou[np.ix_(top, top)], scores[top], 0.2)]
    assert keep.tolist() == expected
    full = reference_nms(iou, scores, 0.2)
    assert len(full) > len(expected)  # pre_max_size really dropped candidates
    capped = rotated_nms(torch.tensor(boxes), torch.tensor(scores), 0.2, post_max_size=5)
    assert capped.tolist() == full[:5]


def test_rotated_nms_handles_1000_boxes() -> None:
    boxes, scores = clustered(1000, seed=6)
    keep = rotated_nms(torch.tensor(boxes, dtype=torch.float32), torch.tensor(scores), 0.2)
    kept = torch.tensor(boxes[keep.numpy()])
    iou = bev_rotated_iou(kept, kept) - torch.eye(len(kept), dtype=torch.float64)
    assert iou.max() <= 0.2 and len(keep) >= 125  # at least one per object survives


def test_circle_nms_matches_reference() -> None:
    rng = np.random.default_rng(7)
    centres, scores = rng.uniform(-10, 10, (300, 2)), rng.uniform(0, 1, 300)
    radius_sq = 2.5
    expected: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if all(((centres[i] - centres[j]) ** 2).sum() > radius_sq for j in expected):
            expected.append(int(i))
    keep = circle_nms(torch.tensor(centres), torch.tensor(scores), radius_sq)
    assert keep.tolist() == expected and 30 < len(expected) < 300
    assert circle_nms(torch.tensor(centres), torch.tensor(scores), radius_sq,
                      post_max_size=10).tolist() == expected[:10]
    with pytest.raises(ValueError, match="scores must be a \\(300,\\)"):
        circle_nms(torch.tensor(centres), torch.tensor(scores[:5]), radius_sq)
