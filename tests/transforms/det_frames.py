"""Hand-made frames for the detector-pipeline tests: boxes with known interior points."""
from __future__ import annotations

import numpy as np

from perception.structures import NUSCENES_CLASSES, Boxes3D, Frame, make_transform, yaw_matrix

FEATURES = ("x", "y", "z", "intensity", "ring")
"""``intensity`` holds each point's id (exact in float32), so point sets can be compared."""


def make_boxes() -> Boxes3D:
    """Four boxes: varied yaws, sizes and velocities (along, across, NaN, zero)."""
    data = np.array([
        [10.0, 5.0, -1.0, 4.5, 1.9, 1.6, 0.3, 0.0, 0.0],
        [-12.0, 8.0, -0.8, 11.0, 2.9, 3.4, 2.4, 0.0, 0.0],
        [3.0, -15.0, -1.2, 0.7, 0.6, 1.8, -1.9, np.nan, np.nan],
        [-20.0, -20.0, -1.1, 0.4, 0.4, 0.9, 0.0, 0.0, 0.0],
    ])
    data[0, 7:9] = 6.0 * np.array([np.cos(0.3), np.sin(0.3)])  # along the heading
    data[1, 7:9] = 2.0 * np.array([np.cos(2.4 + np.pi / 2), np.sin(2.4 + np.pi / 2)])  # to its left
    return Boxes3D(data, np.array([0, 3, 7, 8]), track_ids=["a", "b", "c", "d"])


def make_frame(points_per_box: int = 200, background: int = 2000, seed: int = 0) -> Frame:
    """A frame whose points are either well inside one box (at most 45% of each half extent
    from the centre) or at least 0.5 m outside every box, so no point sits on a face."""
    rng = np.random.default_rng(seed)
    boxes = make_boxes()
    parts = []
    for index in range(len(boxes)):
        local = rng.uniform(-0.45, 0.45, size=(points_per_box, 3)) * boxes.sizes[index]
        parts.append(local @ yaw_matrix(boxes.yaws[index]).T + boxes.centers[index])
    scene = rng.uniform([-40, -40, -3], [40, 40, 3], size=(background, 3))
    grown = Boxes3D(boxes.data.copy(), boxes.labels)
    grown.data[:, 3:6] += 1.0
    scene = scene[~grown.points_in_boxes(scene).any(axis=1)]
    xyz = np.concatenate(parts + [scene])
    ids = np.arange(len(xyz), dtype=np.float32)[:, None]
    points = np.concatenate([xyz.astype(np.float32), ids, np.zeros_like(ids)], axis=1)
    return Frame(token="tok", timestamp=1.5, dataset="nuscenes", points=points, point_features=FEATURES,
                 lidar2ego=make_transform(yaw_matrix(-np.pi / 2), [0.9, 0.0, 1.8]),
                 ego2global=make_transform(yaw_matrix(0.7), [100.0, 200.0, 0.0]),
                 class_names=NUSCENES_CLASSES, boxes=boxes, scene="scene-x", lidar_path="/nowhere/tok.bin")


def ids_in_boxes(frame: Frame) -> list[set[int]]:
    """The point ids inside each box of ``frame``."""
    mask = frame.boxes.points_in_boxes(frame.points)
    ids = frame.points[:, 3].astype(np.int64)
    return [set(ids[mask[:, i]].tolist()) for i in range(len(frame.boxes))]
