"""The Foxglove server, seen through a websocket client that decodes the advertised schemas,
and the MCAP recording of the same channels."""
from __future__ import annotations

import base64

import numpy as np
import pytest
from bridge_fakes import FakeStack, make_frame

from perception.bridge.foxglove_sink import TOPICS, FoxgloveSink
from perception.bridge.node import NodeStats
from perception.bridge.render import cloud_points, render_foxglove_scene
from perception.bridge.results import BridgeFrame
from perception.bridge.testing import collect_foxglove
from perception.bridge.testing.foxglove_client import protobuf_decoder

pytestmark = pytest.mark.timeout(30)


def _publish_until_collected(sink: FoxgloveSink, item: BridgeFrame, topics: tuple[str, ...]):
    """Publish the frame repeatedly while a client connects and subscribes, then collect."""
    import threading

    output = FakeStack()(item.frame)
    stop = threading.Event()

    def keep_publishing() -> None:
        while not stop.wait(0.05):
            sink.publish(item, output, NodeStats(received=3, processed=2, dropped=1))

    thread = threading.Thread(target=keep_publishing, daemon=True)
    thread.start()
    try:
        return collect_foxglove(f"ws://127.0.0.1:{sink.port}", topics, min_messages=1, timeout=10), output
    finally:
        stop.set()
        thread.join(2)


def test_served_scene_decodes(tmp_path) -> None:
    pose = np.eye(4)
    pose[:3, 3] = [50.0, -20.0, 1.0]
    frame = make_frame("tok", points=300)
    frame.ego2global = pose
    sink = FoxgloveSink(port=0, mcap_path=tmp_path / "run.mcap")
    try:
        assert sink.port and sink.port != 8765
        scene, output = _publish_until_collected(sink, BridgeFrame(frame, "lidar_top"), tuple(TOPICS.values()))
    finally:
        sink.close()
    assert {c["schemaName"] for c in scene.channels.values()} >= {
        "foxglove.PointCloud", "foxglove.SceneUpdate", "foxglove.FrameTransforms"}
    cols = cloud_points(scene.latest(TOPICS["points"]))
    np.testing.assert_array_equal(np.stack([cols[k] for k in ("x", "y", "z", "intensity")], 1),
                                  frame.points.astype(np.float64))
    assert scene.latest(TOPICS["points"])["frame_id"] == "lidar_top"
    boxes = scene.latest(TOPICS["boxes"])
    assert boxes["deletions"][0]["type"] == "ALL" and len(boxes["entities"]) == 2
    cube = boxes["entities"][0]["cubes"][0]
    assert cube["size"] == {"x": 4.5, "y": 1.9, "z": 1.6}
    assert cube["pose"]["position"]["x"] == pytest.approx(5.0)
    assert boxes["entities"][0]["texts"][0]["text"] == "car #11 0.90"
    lines = scene.latest(TOPICS["map"])["entities"][0]["lines"]
    assert len(lines) == 2 and len(lines[1]["points"]) == 4  # the closed crossing repeats its first vertex
    path = scene.latest(TOPICS["path"])["entities"][0]["lines"][0]["points"]
    assert [p["x"] for p in path] == [0.0, 2.0, 4.0]
    tf = scene.latest(TOPICS["tf"])["transforms"][0]
    assert tf["child_frame_id"] == "lidar_top" and tf["translation"]["x"] == pytest.approx(50.0)
    diag = scene.latest(TOPICS["diagnostics"])
    assert diag["counters"]["frames_dropped"] == 1 and "detector" in diag["latencies_ms"]
    assert scene.log_times[TOPICS["points"]][0] == int(frame.timestamp * 1e9)
    png = render_foxglove_scene(scene.messages, tmp_path / "scene.png")
    assert png.stat().st_size > 10_000

    from mcap.reader import make_reader

    with open(tmp_path / "run.mcap", "rb") as handle:
        recorded = {}
        for schema, channel, message in make_reader(handle).iter_messages():
            recorded.setdefault(channel.topic, []).append((schema, message))
    assert set(recorded) == set(TOPICS.values())
    schema, message = recorded[TOPICS["boxes"]][0]
    decoded = protobuf_decoder(schema.name, base64.b64encode(schema.data).decode())(message.data)
    assert len(decoded["entities"]) == 2


def _listen_addresses(port: int) -> list[str]:
    """Local addresses (hex, as /proc/net/tcp writes them) listening on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if int(hex_port, 16) == port and state == "0A":
                found.append(address)
    return found


def test_binds_loopback_by_default() -> None:
    import os

    if not os.path.exists("/proc/net/tcp"):
        pytest.skip("needs Linux /proc/net/tcp to read the bound address")
    sink = FoxgloveSink(port=0)
    try:
        assert _listen_addresses(sink.port) == ["0100007F"]  # 127.0.0.1, nothing else
    finally:
        sink.close()
