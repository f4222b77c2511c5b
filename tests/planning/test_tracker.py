"""Tracker: association with constant-velocity prediction and class gating, life cycle, scenes,
and tracking the synthetic world's noisy ground truth with few identity switches (motmetrics)."""
from __future__ import annotations

import numpy as np
import pytest

from perception.planning.closed_loop_world import synthetic_world
from perception.planning.tracker import (MultiObjectTracker, TrackerConfig, TrackerError, build_planning_scene,
                                         ego_history)
from perception.structures import Boxes3D
from perception.structures.geometry import invert_transform, make_transform, yaw_matrix

CLASSES = ("car", "pedestrian")


def boxes(rows: list[tuple[float, float, float, float, int]]) -> Boxes3D:
    """Boxes from (x, y, vx, vy, label) rows, yaw 0, car/pedestrian sizes."""
    data = [[x, y, 0.8, 4.5 if lab == 0 else 0.7, 2.0 if lab == 0 else 0.7, 1.6, 0.0, vx, vy]
            for x, y, vx, vy, lab in rows]
    return Boxes3D(np.array(data).reshape(-1, 9), [r[4] for r in rows], scores=np.ones(len(rows)))


def test_crossing_objects_keep_their_ids_with_constant_velocity_prediction() -> None:
    # two cars swap lateral positions 1.2 m apart while passing: nearest-centre matching without
    # prediction would swap them; without velocities the displacement estimate has to carry it
    tracker = MultiObjectTracker(TrackerConfig(min_hits=1, use_detection_velocity=False))
    ids_a, ids_b = [], []
    for k in range(12):
        t = 0.1 * k
        a, b = (-6.0 + 12.0 * t, 0.0), (6.0 - 12.0 * t, 1.2)
        tracker.update(boxes([(*a, 0, 0, 0), (*b, 0, 0, 0)]), np.eye(4), CLASSES, t)
        by_x = {round(float(tr.state[1]), 1): tr.track_id for tr in tracker.tracks if tr.misses == 0}
        ids_a.append(by_x[0.0])
        ids_b.append(by_x[1.2])
    assert len(set(ids_a)) == 1 and len(set(ids_b)) == 1 and ids_a[0] != ids_b[0]
    track = next(t for t in tracker.tracks if t.track_id == ids_a[0])
    assert np.allclose(track.state[3:5], [12.0, 0.0], atol=1e-6)


def test_class_gating_life_cycle_and_world_frame() -> None:
    config = TrackerConfig(min_hits=2, max_age=1)
    tracker = MultiObjectTracker(config)
    pose = make_transform(yaw_matrix(np.pi / 2), [10.0, 0.0, 0.0])  # LiDAR x axis points along world +y
    assert tracker.update(boxes([(5.0, 0.0, 0, 0, 0)]), pose, CLASSES, 0.0) == []  # tentative
    confirmed = tracker.update(boxes([(5.0, 0.0, 0, 0, 1)]), pose, CLASSES, 0.1)  # same place, other class
    assert confirmed == [] and len(tracker.tracks) == 2
    confirmed = tracker.update(boxes([(5.0, 0.0, 0, 0, 0), (5.0, 0.1, 0, 0, 1)]), pose, CLASSES, 0.2)
    assert {t.category for t in confirmed} == {"car", "pedestrian"}
    car = next(t for t in confirmed if t.category == "car")
    assert np.allclose(car.state[:2], [10.0, 5.0]) and car.hits == 2  # world frame
    for k in range(2):  # unseen for more than max_age frames: deleted, kept among the finished
        tracker.update(Boxes3D.empty(), pose, CLASSES, 0.3 + 0.1 * k)
    assert tracker.tracks == [] and {t.track_id for t in tracker.finished} >= {car.track_id}
    histories = tracker.histories()
    car_history = next(h for h in histories if h.track_id == car.track_id)
    assert car_history.valid.tolist() == [True, False, True, False, False]
    with pytest.raises(TrackerError, match="increase"):
        tracker.update(Boxes3D.empty(), pose, CLASSES, 0.1)
    with pytest.raises(TrackerError, match="labels"):
        tracker.update(boxes([(0, 0, 0, 0, 5)]), pose, CLASSES, 1.0)


def test_planning_scene_from_tracks_and_poses() -> None:
    tracker = MultiObjectTracker(TrackerConfig(min_hits=2))
    poses, times = [], 0.1 * np.arange(6)
    for t in times:
        pose = make_transform(np.eye(3), [3.0 * t, 0.0, 0.0])
        poses.append(pose)
        # a car 10 m ahead of the ego in the world, seen from the moving LiDAR
        tracker.update(boxes([(10.0 - 3.0 * t + 1.0 * t, 0.0, 1.0, 0.0, 0)]), pose, CLASSES, t)
    scene = build_planning_scene(tracker, poses, "tracked", history_steps=3)
    assert scene.current_index == 3 and len(scene.timestamps) == 4
    assert np.allclose(scene.ego.states[:, 3], 3.0) and np.allclose(scene.ego.states[-1, :2], [1.5, 0.0])
    assert len(scene.agents) == 1 and scene.agents[0].valid.all()
    assert np.allclose(scene.agents[0].states[-1, :2], [10.5, 0.0]) and np.allclose(scene.agents[0].states[-1, 3], 1.0)
    with pytest.raises(TrackerError, match="poses"):
        ego_history(poses[:2], times)


def test_tracks_noisy_synthetic_ground_truth_with_few_id_switches() -> None:
    motmetrics = pytest.importorskip("motmetrics")
    world = synthetic_world("track-test", 3, duration_s=6.0, history_s=0.0)
    rng = np.random.default_rng(0)
    tracker = MultiObjectTracker(TrackerConfig(min_hits=2, max_age=3))
    accumulator = motmetrics.MOTAccumulator(auto_id=True)
    classes = ("vehicle", "pedestrian", "other")
    moving = [a for a in world.agents if not a.category.startswith("movable")]
    gt_ids: dict[str, int] = {}
    for k, time in enumerate(world.times):
        ego = world.ego_log
        pose = make_transform(yaw_matrix(float(ego.yaws[k])), [*ego.positions[k], 0.0])
        near = [a for a in moving if np.linalg.norm(a.positions[k] - ego.positions[k]) < 50.0]
        seen = [a for a in near if rng.uniform() > 0.05]  # 5% misses
        world_boxes = Boxes3D(
            np.array([[*(a.positions[k] + rng.normal(0, 0.15, 2)), 0.8, *a.size, a.yaws[k], *a.velocities[k]]
                      for a in seen]).reshape(-1, 9),
            [0 if a.category.startswith("vehicle") else 1 for a in seen], scores=np.ones(len(seen)))
        lidar = world_boxes.transform(invert_transform(pose))
        confirmed = tracker.update(lidar, pose, classes, float(time))
        gt_xy = np.array([a.positions[k] for a in near]).reshape(-1, 2)
        hyp_xy = np.array([t.state[:2] for t in confirmed]).reshape(-1, 2)
        distances = motmetrics.distances.norm2squared_matrix(gt_xy, hyp_xy, max_d2=4.0)
        # integer ids: motmetrics' pandas frames reject hex strings
        accumulator.update([gt_ids.setdefault(a.track_id, len(gt_ids)) for a in near],
                           [int(t.track_id.split("-")[-1]) for t in confirmed], distances)
    summary = motmetrics.metrics.create().compute(accumulator, metrics=["mota", "num_switches", "num_matches"],
                                                  name="synthetic")
    mota, switches, matches = (float(summary[m].iloc[0]) for m in ("mota", "num_switches", "num_matches"))
    assert matches > 500  # enough traffic to mean something
    assert mota > 0.85, summary
    assert switches <= 0.005 * matches, summary
