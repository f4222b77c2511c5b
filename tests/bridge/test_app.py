"""The command line: a missing checkpoint stops with a clear message; a bounded run of the
synthetic source serves Foxglove, records MCAP and shuts down cleanly; the real stack runs."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from bridge_fakes import FakeStack

from perception.bridge.app import build_stack, main, run
from perception.bridge.cli import build_parser, default_checkpoint, host_port
from perception.bridge.errors import BridgeConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_missing_checkpoint_says_run_make_demo(tmp_path, caplog) -> None:
    with caplog.at_level(logging.ERROR):
        code = main(["--checkpoint", str(tmp_path / "none.pth"), "--max-frames", "1"], repo_root=tmp_path)
    assert code == 2
    assert "make demo" in caplog.text and "--allow-random-weights" in caplog.text


def test_options() -> None:
    assert host_port("ws://robot.local:9091") == ("robot.local", 9091)
    assert host_port("10.0.0.2") == ("10.0.0.2", 9090)
    with pytest.raises(BridgeConfigError, match="bad port"):
        host_port("host:notaport")
    args = build_parser(REPO_ROOT).parse_args([])
    assert args.bind == "127.0.0.1" and args.source == "synthetic" and args.queue_size == 1
    assert default_checkpoint(Path("/nonexistent")).name == "epoch_*.pth"


def test_default_checkpoint_prefers_the_full_tiny_run(tmp_path) -> None:
    demo = tmp_path / "work_dirs/demo/centerpoint_tiny"
    full = tmp_path / "work_dirs/centerpoint_tiny_synthetic"
    demo.mkdir(parents=True)
    (demo / "epoch_18.pth").write_bytes(b"x")
    assert default_checkpoint(tmp_path) == demo / "epoch_18.pth"
    full.mkdir(parents=True)
    for epoch in (20, 80, 100):
        (full / f"epoch_{epoch}.pth").write_bytes(b"x")
    assert default_checkpoint(tmp_path) == full / "epoch_100.pth"  # numeric, not lexical order
    (full / "last_checkpoint").write_text(str(full / "epoch_80.pth"))
    assert default_checkpoint(tmp_path) == full / "epoch_80.pth"


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_bounded_synthetic_run_serves_and_records(tmp_path, synthetic_root) -> None:
    mcap = tmp_path / "run.mcap"
    args = build_parser(REPO_ROOT).parse_args([
        "--source", "synthetic", "--data-root", str(synthetic_root), "--sweeps", "1", "--max-frames", "3",
        "--speed", "0", "--foxglove", "--foxglove-port", "0", "--mcap", str(mcap)])
    stack = FakeStack(delay=0.01)
    assert run(args, REPO_ROOT, stack=stack) == 0
    assert len(stack.calls) >= 1 and mcap.stat().st_size > 1000

    from mcap.reader import make_reader

    with open(mcap, "rb") as handle:
        topics = [channel.topic for _, channel, _ in make_reader(handle).iter_messages()]
    assert topics.count("/perception/boxes") == len(stack.calls)
    assert "/lidar/points" in topics and "/perception/map" in topics


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_detector_stack_on_a_synthetic_frame(synthetic_root) -> None:
    """The real tiny CenterPoint (trained weights when `make demo` ran, else random) behind the
    stack interface: boxes, tracks, map lines from the frame, per-stage latencies."""
    from perception.bridge.sources import synthetic_source

    args = build_parser(REPO_ROOT).parse_args(["--allow-random-weights", "--score-threshold", "0.0"])
    stack = build_stack(args, REPO_ROOT)
    item = next(iter(synthetic_source(synthetic_root, sweeps=1, max_frames=1)))
    item.frame.points = item.frame.points[:, [0, 1, 2, 3]]  # a live cloud without time_lag / ring
    item.frame.point_features = ("x", "y", "z", "intensity")
    output = stack(item.frame)
    assert list(output.latencies_ms)[:2] == ["adapt", "detector"]
    assert output.latencies_ms["detector"] > 0 and len(output.boxes) > 0
    assert all(track for track in output.boxes.track_ids)
    assert output.class_names[0] == "car"
    assert all(np.isfinite(line.points).all() for line in output.map_polylines)


@pytest.mark.timeout(30)
def test_ctrl_c_on_a_live_rosbridge_run_shuts_down_cleanly() -> None:
    """SIGINT during a live run: the frame in flight is published, topics are unsubscribed and
    unadvertised, the connection closes and run() returns 0."""
    import os
    import signal
    import threading
    import time

    from perception.bridge.pointcloud2 import encode_pointcloud2
    from perception.bridge.ros_messages import header
    from perception.bridge.testing import RosbridgeTestServer

    handler_before = signal.getsignal(signal.SIGINT)  # SIG_IGN when run in the background (CI)
    server = RosbridgeTestServer().start()
    try:
        args = build_parser(REPO_ROOT).parse_args([
            "--source", "rosbridge", "--rosbridge", f"127.0.0.1:{server.port}", "--stats-interval", "0.5"])

        def drive() -> None:
            assert server.wait_subscribed("/points", 10)
            server.publish("/points", encode_pointcloud2(np.ones((10, 3), np.float32), ("x", "y", "z"),
                                                         header(1.0, "lidar")))
            server.wait_for(lambda: server.published.get("/diagnostics"), 5)
            time.sleep(0.2)
            os.kill(os.getpid(), signal.SIGINT)

        driver = threading.Thread(target=drive, daemon=True)
        driver.start()
        assert run(args, REPO_ROOT, stack=FakeStack()) == 0
        driver.join(5)
        assert len(server.published["/perception/markers"]) == 1 and server.errors == []
        assert server.wait_for(lambda: {"unsubscribe", "unadvertise"} <= set(server.ops), 5)
        assert server.wait_for(lambda: server.client_count == 0, 5)  # the client closed its socket
        assert signal.getsignal(signal.SIGINT) == handler_before  # the bridge restored it
    finally:
        server.stop()
