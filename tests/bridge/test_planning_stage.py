"""Tracking and planning in the bridge stack: the planning layer's tracker keeps ids on the
published boxes, the constant-velocity planner's path reaches rosbridge as a valid
nav_msgs/msg/Path straight ahead of the ego, and ``--planner str`` without weights stops clearly."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest
from bridge_fakes import CLASSES, make_frame

from perception.bridge.app import main
from perception.bridge.errors import BridgeConfigError
from perception.bridge.node import BridgeNode
from perception.bridge.planner_stage import build_planner, path_in_lidar_frame
from perception.bridge.pointcloud2 import encode_pointcloud2
from perception.bridge.ros_messages import header
from perception.bridge.rosbridge_client import (RosbridgeConnection, RosbridgeOptions, RosbridgePublisher,
                                                RosbridgeSource)
from perception.bridge.stack import DetectorStack
from perception.bridge.testing import RosbridgeTestServer
from perception.bridge.tracking_stage import BridgeTracker
from perception.structures import Boxes3D, Frame, invert_transform

REPO_ROOT = Path(__file__).resolve().parents[2]
STR_CONFIG = REPO_ROOT / "configs" / "str" / "str_small_synthetic.py"


def pose(x: float, y: float, yaw: float) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:2, :2] = [[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]]
    matrix[:2, 3] = [x, y]
    return matrix


class WorldDetector:
    """Fake detector: fixed world-frame objects moving at constant velocity, seen from each frame's
    LiDAR pose, listed in a shuffled order (ids must follow objects, not list positions)."""

    def __init__(self) -> None:
        # x, y, z, l, w, h, yaw, vx, vy at t = 0 (world); two cars and a pedestrian
        self.objects = np.array([[20.0, 3.0, 0.0, 4.5, 1.9, 1.6, 0.0, 8.0, 0.0],
                                 [5.0, -4.0, 0.0, 4.5, 1.9, 1.6, np.pi, -6.0, 0.0],
                                 [12.0, 8.0, 0.0, 0.7, 0.7, 1.8, -np.pi / 2, 0.0, -1.2]])
        self.labels = np.array([0, 0, 1])
        self.rng = np.random.default_rng(0)

    def __call__(self, frame: Frame) -> Boxes3D:
        data = self.objects.copy()
        data[:, :2] += frame.timestamp * data[:, 7:9]
        order = self.rng.permutation(len(data))
        world = Boxes3D(data[order], self.labels[order], scores=np.full(len(data), 0.9))
        return world.transform(invert_transform(frame.lidar2global))


def moving_frame(index: int, dt: float = 0.1, speed: float = 5.0, yaw: float = 0.5, scene: str = "s") -> Frame:
    frame = make_frame(f"f{index}", timestamp=index * dt)
    frame.ego2global = pose(speed * index * dt * np.cos(yaw), speed * index * dt * np.sin(yaw), yaw)
    frame.scene = scene
    return frame


def test_track_ids_stay_with_objects_through_the_stack() -> None:
    detector = WorldDetector()
    stack = DetectorStack(detector, class_names=CLASSES, score_threshold=0.5)
    ids_by_object: dict[int, set[str]] = {0: set(), 1: set(), 2: set()}
    for index in range(6):
        frame = moving_frame(index)
        output = stack(frame)
        assert list(output.latencies_ms) == ["adapt", "detector", "tracker", "map"]
        world = output.boxes.transform(frame.lidar2global)
        expected = detector.objects[:, :2] + frame.timestamp * detector.objects[:, 7:9]
        for row, track_id in enumerate(output.boxes.track_ids):
            assert track_id, "every published box carries a track id"
            obj = int(np.argmin(np.linalg.norm(expected - world.data[row, :2], axis=1)))
            ids_by_object[obj].add(track_id)
    assert all(len(ids) == 1 for ids in ids_by_object.values()), ids_by_object
    assert len(set.union(*ids_by_object.values())) == 3
    assert len(stack.tracker.tracker.confirmed()) == 3
    # a replay that loops (time goes back) starts a fresh tracker with new ids
    again = stack(moving_frame(0))
    assert stack.tracker.resets == 1
    assert not set(again.boxes.track_ids) & set.union(*ids_by_object.values())


def test_tracker_state_stays_bounded() -> None:
    stack = DetectorStack(WorldDetector(), class_names=CLASSES, tracker=BridgeTracker(history_steps=3))
    for index in range(12):
        stack(moving_frame(index))
    tracker = stack.tracker.tracker
    assert len(tracker.times) == 4 and len(stack.tracker.poses) == 4
    assert all(len(track.records) <= 4 for track in tracker.tracks)
    scene = stack.tracker.scene(moving_frame(11))
    assert len(scene.timestamps) == 4 and len(scene.agents) == 3


def test_path_in_lidar_frame_undoes_the_sensor_pose() -> None:
    lidar2global = pose(100.0, -20.0, 1.2) @ pose(1.0, 0.0, np.pi / 2)  # ego pose @ a rotated lidar mount
    local = np.array([[0.0, 2.0, np.pi / 2], [0.0, 4.0, np.pi / 2]])
    world_xy = (lidar2global[:2, :2] @ local[:, :2].T).T + lidar2global[:2, 3]
    world = np.concatenate([world_xy, (local[:, 2:] + 1.2 + np.pi / 2)], axis=1)
    np.testing.assert_allclose(path_in_lidar_frame(world, lidar2global), local, atol=1e-9)
    with pytest.raises(ValueError, match=r"\(T, 3\)"):
        path_in_lidar_frame(np.zeros((4, 2)), lidar2global)


def _tf(seconds: float, matrix: np.ndarray) -> dict:
    yaw = float(np.arctan2(matrix[1, 0], matrix[0, 0]))
    return {"transforms": [{
        "header": {"stamp": {"sec": int(seconds), "nanosec": int(round((seconds % 1) * 1e9))}, "frame_id": "map"},
        "child_frame_id": "lidar_top",
        "transform": {"translation": {"x": float(matrix[0, 3]), "y": float(matrix[1, 3]), "z": 0.0},
                      "rotation": {"x": 0.0, "y": 0.0, "z": np.sin(yaw / 2), "w": np.cos(yaw / 2)}}}]}


@pytest.mark.timeout(30)
def test_cv_path_reaches_rosbridge_straight_ahead_of_the_ego() -> None:
    """Clouds and TF over rosbridge, ego driving straight at 5 m/s with heading 0.5 rad: the
    published Path (validated against nav_msgs/msg/Path) runs straight ahead of the sensor."""
    server = RosbridgeTestServer().start()
    options = RosbridgeOptions(port=server.port, pointcloud_topic="/points", class_names=CLASSES, connect_timeout=10)
    connection = RosbridgeConnection(options).start()
    stack = DetectorStack(WorldDetector(), class_names=CLASSES, planner=build_planner("cv", num_future=30))
    node = BridgeNode(stack, [RosbridgePublisher(connection)], queue_size=16).start()
    source = RosbridgeSource(connection, node.submit, node.count_malformed).start()
    try:
        assert server.wait_subscribed("/points", 5)
        dt, speed, yaw = 0.1, 5.0, 0.5
        for index in range(5):
            seconds = 10.0 + index * dt
            server.publish("/tf", _tf(seconds, pose(speed * index * dt * np.cos(yaw),
                                                    speed * index * dt * np.sin(yaw), yaw)))
            time.sleep(0.05)
            cloud = np.random.default_rng(index).uniform(-20, 20, (100, 3)).astype(np.float32)
            server.publish("/points", encode_pointcloud2(cloud, ("x", "y", "z"), header(seconds, "lidar_top")))
            time.sleep(0.05)
        assert server.wait_for(lambda: len(server.published.get("/perception/path", [])) == 5, 10)
        assert node.wait_idle(5) and node.stats.processed == 5
        assert server.errors == []  # every Path / MarkerArray / DiagnosticArray matched its ROS 2 definition
        path = server.published["/perception/path"][-1]
        assert path["header"]["frame_id"] == "lidar_top"  # the frame boxes and map are published in
        assert path["header"]["stamp"] == {"sec": 10, "nanosec": 400_000_000}
        xyz = np.array([[p["pose"]["position"][k] for k in "xyz"] for p in path["poses"]])
        assert len(xyz) == 30
        np.testing.assert_allclose(xyz[:, 1], 0.0, atol=1e-6)  # straight along the sensor's heading
        np.testing.assert_allclose(xyz[:, 0], speed * dt * np.arange(1, 31), rtol=1e-6)  # ahead, at 5 m/s
        np.testing.assert_allclose([p["pose"]["orientation"]["z"] for p in path["poses"]], 0.0, atol=1e-6)
        markers = server.published["/perception/markers"][-1]["markers"]
        labels = [m["text"] for m in markers if m["ns"] == "labels"]
        assert len(labels) == 3 and all("#t-" in text for text in labels)
        keys = {v["key"] for v in server.published["/diagnostics"][-1]["status"][0]["values"]}
        assert {"latency_ms/tracker", "latency_ms/planner"} <= keys
    finally:
        node.stop()
        source.close()
        connection.close()
        server.stop()


def test_planner_choices() -> None:
    assert build_planner("none") is None
    assert build_planner("cv", num_future=7).num_future == 7
    with pytest.raises(BridgeConfigError, match="unknown planner 'magic'"):
        build_planner("magic")
    with pytest.raises(BridgeConfigError, match="needs a trained STR checkpoint, but none was given"):
        build_planner("str", str_config=STR_CONFIG)


def test_str_planner_without_checkpoint_stops_clearly(tmp_path, caplog) -> None:
    missing = tmp_path / "str.pth"
    with caplog.at_level(logging.ERROR):
        code = main(["--planner", "str", "--str-config", str(STR_CONFIG), "--str-checkpoint", str(missing),
                     "--max-frames", "1"], repo_root=tmp_path)
    assert code == 2
    assert f"{missing} does not exist" in caplog.text and "--planner cv" in caplog.text
