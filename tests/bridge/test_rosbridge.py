"""The real roslibpy client against the in-repository validating rosbridge server on loopback.

Every request our client sends is checked against the ROS 2 definitions in rosbags' typestore
(``server.errors`` must stay empty); frames flow server -> client -> stack -> client -> server.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from bridge_fakes import FakeStack

from perception.bridge.node import BridgeNode
from perception.bridge.pointcloud2 import encode_pointcloud2
from perception.bridge.ros_messages import header
from perception.bridge.rosbridge_client import (RosbridgeConnection, RosbridgeOptions, RosbridgePublisher,
                                                RosbridgeSource)
from perception.bridge.testing import RosbridgeTestServer

pytestmark = pytest.mark.timeout(30)
TOPIC = "/sensors/lidar"


class Rig:
    """Server + roslibpy connection + node wired like the app does."""

    def __init__(self, stack: FakeStack, queue_size: int = 2) -> None:
        self.server = RosbridgeTestServer().start()
        options = RosbridgeOptions(port=self.server.port, pointcloud_topic=TOPIC, image_topics=("/cam/compressed",),
                                   initial_delay=0.2, max_delay=1.0, connect_timeout=10)
        self.connection = RosbridgeConnection(options).start()
        self.publisher = RosbridgePublisher(self.connection)
        self.node = BridgeNode(stack, [self.publisher], queue_size).start()
        self.source = RosbridgeSource(self.connection, self.node.submit, self.node.count_malformed).start()
        assert self.server.wait_subscribed(TOPIC, 5)

    def cloud(self, seconds: float, points: np.ndarray | None = None) -> dict:
        points = np.random.default_rng(int(seconds)).uniform(-30, 30, (200, 4)).astype(np.float32) \
            if points is None else points
        names = ("x", "y", "z", "intensity", "ring")[: points.shape[1]]
        return encode_pointcloud2(points, names, header(seconds, "lidar_top"))

    def close(self) -> None:
        self.node.stop()
        self.source.close()
        self.connection.close()
        self.server.stop()


@pytest.fixture
def rig():
    made = []

    def make(stack: FakeStack | None = None, queue_size: int = 2) -> Rig:
        made.append(Rig(stack or FakeStack(), queue_size))
        return made[-1]
    yield make
    for item in made:
        item.close()


def test_subscribe_advertise_publish_round_trip(rig) -> None:
    seen = []

    class Capture(FakeStack):
        def __call__(self, frame):
            seen.append(frame)
            return super().__call__(frame)

    r = rig(Capture())
    assert r.server.subscriptions[TOPIC] == "sensor_msgs/msg/PointCloud2"
    assert r.server.subscriptions["/tf"] == "tf2_msgs/msg/TFMessage"
    assert r.server.advertised["/perception/markers"] == "visualization_msgs/msg/MarkerArray"
    assert r.server.publish("/tf", {"transforms": [{
        "header": {"stamp": {"sec": 5, "nanosec": 0}, "frame_id": "map"}, "child_frame_id": "lidar_top",
        "transform": {"translation": {"x": 100.0, "y": 5.0, "z": 2.0},
                      "rotation": {"x": 0.0, "y": 0.0, "z": 0.0, "w": 1.0}}}]}) == 1
    time.sleep(0.2)
    assert r.server.publish(TOPIC, r.cloud(5.5)) == 1
    assert r.server.wait_for(lambda: r.server.published.get("/diagnostics"), 5)
    assert r.server.errors == []
    markers = r.server.published["/perception/markers"][0]["markers"]
    assert {m["ns"] for m in markers} >= {"boxes", "labels", "map/divider"}
    assert markers[1]["header"] == {"stamp": {"sec": 5, "nanosec": 500_000_000}, "frame_id": "lidar_top"}
    assert len(r.server.published["/perception/path"][0]["poses"]) == 3
    keys = {v["key"] for v in r.server.published["/diagnostics"][0]["status"][0]["values"]}
    assert {"latency_ms/detector", "latency_ms/queue_wait", "frames_dropped"} <= keys
    # the TF pose (map -> lidar_top) reached the frame
    np.testing.assert_allclose(seen[0].lidar2global[:3, 3], [100.0, 5.0, 2.0])
    assert seen[0].timestamp == pytest.approx(5.5)


@pytest.mark.real_data
def test_real_nuscenes_cloud_through_rosbridge(rig, nuscenes_keyframe_dir: Path) -> None:
    seen = []

    class Capture(FakeStack):
        def __call__(self, frame):
            seen.append(frame)
            return super().__call__(frame)

    r = rig(Capture())
    points = np.fromfile(next(nuscenes_keyframe_dir.glob("*LIDAR_TOP*.pcd.bin")), np.float32).reshape(-1, 5)
    r.server.publish(TOPIC, r.cloud(1532402927.647951, points))
    assert r.server.wait_for(lambda: seen, 10)
    np.testing.assert_array_equal(seen[0].points, points)
    assert seen[0].point_features == ("x", "y", "z", "intensity", "ring")


def test_malformed_messages_are_counted_and_skipped(rig) -> None:
    r = rig()
    bad_size = r.cloud(1.0)
    bad_size["row_step"] += 16
    no_xyz = r.cloud(2.0)
    no_xyz["fields"] = no_xyz["fields"][3:]
    r.server.send_raw_to(TOPIC, "this is not json")
    r.server.send_raw_to(TOPIC, '{"op": "made_up_op"}')
    r.server.publish(TOPIC, bad_size)
    r.server.publish(TOPIC, no_xyz)
    r.server.publish(TOPIC, {**r.cloud(3.0), "data": "%%%not base64"})
    r.server.publish(TOPIC, ["a", "list"])
    r.server.publish("/tf", {"transforms": [{"nonsense": 1}]})
    r.server.publish("/cam/compressed", {"format": "jpeg", "data": "aGVsbG8="})
    r.server.publish(TOPIC, r.cloud(4.0))
    assert r.server.wait_for(lambda: r.node.stats.processed == 1, 5)
    assert r.server.wait_for(lambda: r.node.stats.malformed == 6, 2), r.node.stats
    assert r.connection.connected.is_set() and r.server.errors == []


def test_server_that_disconnects_mid_stream(rig) -> None:
    r = rig()
    for index in range(3):
        r.server.publish(TOPIC, r.cloud(10.0 + index))
        time.sleep(0.05)
    assert r.server.wait_for(lambda: r.node.stats.processed >= 1, 5)
    r.server.go_away()
    assert r.server.wait_for(lambda: not r.connection.connected.is_set(), 5)
    time.sleep(0.5)  # the server stays away for a while; the client backs off and retries
    r.server.come_back()
    assert r.connection.connected.wait(10), "no reconnect after the server came back"
    assert r.connection.connections == 2
    assert r.server.wait_subscribed(TOPIC, 5), "topic not re-subscribed after reconnect"
    before = len(r.server.published["/perception/markers"])
    r.server.publish(TOPIC, r.cloud(20.0))
    assert r.server.wait_for(lambda: len(r.server.published["/perception/markers"]) > before, 5)
    assert r.server.errors == []


def test_burst_faster_than_inference(rig) -> None:
    r = rig(FakeStack(delay=0.05), queue_size=2)
    start = time.monotonic()
    for index in range(30):
        r.server.publish(TOPIC, r.cloud(100.0 + index * 0.01))
    assert r.server.wait_for(lambda: r.node.stats.received == 30, 5)
    assert r.node.wait_idle(5)
    stats = r.node.stats
    assert stats.dropped > 0 and stats.processed + stats.dropped == 30
    assert stats.max_end_to_end_ms < 3 * 50 + 400
    assert time.monotonic() - start < 5
    diag = r.server.published["/diagnostics"][-1]["status"][0]["values"]
    assert int({v["key"]: v["value"] for v in diag}["frames_dropped"]) == stats.dropped
