"""Vehicle silhouettes: cars and trucks are not front/back symmetric to the sensors."""
from __future__ import annotations

import numpy as np
import pytest

from perception.datasets.synthetic.raycast import BoxSet, cast
from perception.datasets.synthetic.shapes import FULL_BOX, part_boxes, parts_of


def depth_at_height(category: str, from_front: bool, height_fraction: float) -> float:
    """Depth of a horizontal ray at ``height_fraction`` of the box height, shot along the box
    axis at its front (or back) from 10 m away; the box sits at the origin with yaw 0."""
    size = np.array([4.6, 1.9, 1.7])
    boxes = BoxSet(np.array([[0.0, 0.0, size[2] / 2]]), size[None], np.zeros(1), [category])
    z = height_fraction * size[2]
    origin = np.array([10.0 if from_front else -10.0, 0.0, z], dtype=np.float32)
    direction = np.array([[[-1.0 if from_front else 1.0, 0.0, 0.0]]], dtype=np.float32)
    hits = cast(origin, direction, boxes, lambda b: [(0, 1, 0, 1)])
    assert hits.index[0, 0] == 0
    return float(hits.depth[0, 0])


def test_car_bonnet_is_lower_than_its_cabin():
    # low rays hit the bumper both ways; high rays meet the cabin, set back from the bonnet
    assert depth_at_height("vehicle.car", True, 0.3) == pytest.approx(10 - 2.3, abs=1e-4)
    assert depth_at_height("vehicle.car", False, 0.3) == pytest.approx(10 - 2.3, abs=1e-4)
    front, back = depth_at_height("vehicle.car", True, 0.8), depth_at_height("vehicle.car", False, 0.8)
    assert front == pytest.approx(10 - 0.18 * 4.6, abs=1e-4)
    assert back == pytest.approx(10 - 0.38 * 4.6, abs=1e-4)
    assert front - back > 0.5  # the asymmetry a detector can learn the heading from


def test_other_categories_are_full_boxes_and_parts_fit_inside():
    assert parts_of("human.pedestrian.adult") == FULL_BOX
    assert depth_at_height("vehicle.bus.rigid", True, 0.8) == pytest.approx(depth_at_height(
        "vehicle.bus.rigid", False, 0.8))
    size = np.array([6.9, 2.5, 2.85])
    for category in ("vehicle.car", "vehicle.truck", "vehicle.bus.rigid"):
        parts = part_boxes(category, size)
        low = np.min([c - h for c, h in parts], axis=0)
        high = np.max([c + h for c, h in parts], axis=0)
        np.testing.assert_allclose(low, -size / 2, atol=1e-9)  # the parts span the annotated box
        np.testing.assert_allclose(high, size / 2, atol=1e-9)
