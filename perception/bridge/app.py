"""Assemble and run the bridge from command-line options (``demo/ros_bridge.py``).

source (synthetic / nuscenes / av2 / bag replay at sensor rate, or live rosbridge)
  -> BridgeNode (drop-oldest queue, stack on a worker thread:
     detector -> tracker (track ids) -> map -> planner (--planner none|cv|str))
  -> sinks (rosbridge MarkerArray / Path / diagnostics; Foxglove server; MCAP file).
Ctrl-C (SIGINT) or SIGTERM stops between frames and closes every connection cleanly.
"""
from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from .cli import build_parser, default_checkpoint, host_port
from .errors import BridgeConfigError
from .node import BridgeNode, Sink
from .planner_stage import build_planner
from .results import BridgeFrame
from .stack import DetectorStack, Stack
from .tracking_stage import BridgeTracker

LOGGER = logging.getLogger("perception.bridge")


def build_stack(args: argparse.Namespace, repo_root: Path) -> Stack:
    """Detector -> tracker -> planner.  The planner is built first (a missing STR checkpoint fails
    before the detector loads); a missing detector checkpoint is an error unless
    ``--allow-random-weights``."""
    planner = build_planner(args.planner, num_future=args.plan_steps, str_config=args.str_config,
                            str_checkpoint=args.str_checkpoint, device=args.device)
    checkpoint = args.checkpoint or default_checkpoint(repo_root)
    if not Path(checkpoint).is_file():
        if not args.allow_random_weights:
            raise BridgeConfigError(
                f"no trained checkpoint at {checkpoint}. Run `make demo` first (it trains the tiny "
                "detector), pass --checkpoint PATH, or add --allow-random-weights to run the plumbing "
                "with untrained (random) weights.")
        LOGGER.warning("checkpoint %s not found: running with RANDOM weights (--allow-random-weights); "
                       "boxes will be meaningless", checkpoint)
        checkpoint = None
    LOGGER.info("model: %s, checkpoint: %s, planner: %s", args.config, checkpoint or "none (random weights)",
                args.planner)
    return DetectorStack.from_files(args.config, checkpoint, device=args.device,
                                    score_threshold=args.score_threshold, planner=planner,
                                    tracker=BridgeTracker(history_steps=args.history_steps))


def build_source(args: argparse.Namespace) -> Iterable[BridgeFrame]:
    """The replay source named by ``--source`` (not ``rosbridge``)."""
    from .sources import BagSource, av2_source, nuscenes_source, synthetic_source

    serving = bool(args.foxglove or args.rosbridge)
    loop = args.loop if args.loop is not None else serving and args.max_frames is None and args.duration is None
    common = dict(loop=loop, max_frames=args.max_frames)
    if args.source == "synthetic":
        return synthetic_source(args.data_root, split=args.split, sweeps=args.sweeps, **common)
    if args.info is None and args.source in ("nuscenes", "av2"):
        raise BridgeConfigError(f"--source {args.source} needs --info (an info pickle) and --data-root")
    if args.source == "nuscenes":
        return nuscenes_source(args.info, args.data_root, sweeps=args.sweeps, **common)
    if args.source == "av2":
        return av2_source(args.info, args.data_root, **common)
    if args.source == "bag":
        if args.bag is None:
            raise BridgeConfigError("--source bag needs --bag PATH")
        return BagSource(args.bag, args.pointcloud_topic, args.fixed_frame, max_frames=args.max_frames)
    raise BridgeConfigError(f"unknown source {args.source!r}")


def rosbridge_options(args: argparse.Namespace):
    from .rosbridge_client import RosbridgeOptions

    host, port = host_port(args.rosbridge or "127.0.0.1:9090")
    return RosbridgeOptions(host=host, port=port, pointcloud_topic=args.pointcloud_topic,
                            image_topics=tuple(args.image_topics), tf_topics=tuple(args.tf_topics),
                            fixed_frame=args.fixed_frame, markers_topic=args.markers_topic,
                            path_topic=args.path_topic, diagnostics_topic=args.diagnostics_topic,
                            publish_points=args.publish_points and args.source != "rosbridge")


class StopFlag:
    """Set by SIGINT / SIGTERM; the previous handlers come back on ``restore``."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._previous: dict[int, Any] = {}

    def install(self) -> "StopFlag":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        LOGGER.info("signal %d: shutting down", signum)
        self.event.set()

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Screenshot:
    """A Foxglove client thread that collects the served scene and renders its last frame."""

    def __init__(self, url: str, out: Path, frames: int, title: str = "") -> None:
        self.url, self.out, self.frames, self.title = url, Path(out), frames, title
        self._thread = threading.Thread(target=self._run, name="screenshot", daemon=True)

    def start(self) -> "Screenshot":
        self._thread.start()
        return self

    def _run(self) -> None:
        from .foxglove_sink import TOPICS
        from .render import render_foxglove_scene
        from .testing.foxglove_client import collect_foxglove

        required = tuple(TOPICS[key] for key in ("points", "boxes", "map", "tf"))
        scene = collect_foxglove(self.url, tuple(TOPICS.values()), min_messages=self.frames, timeout=600,
                                 required=required)
        if not scene.messages.get(TOPICS["points"]):
            LOGGER.warning("screenshot: no scene received from %s", self.url)
            return
        render_foxglove_scene(scene.messages, self.out, title=self.title)
        LOGGER.info("screenshot of the served scene written to %s", self.out)

    def finish(self, timeout: float) -> None:
        self._thread.join(timeout)


def status_line(node: BridgeNode) -> str:
    stats = node.stats
    stages = ", ".join(f"{k} {v:.0f}" for k, v in stats.latencies_ms.items())
    return (f"received {stats.received}, processed {stats.processed}, dropped {stats.dropped}, "
            f"malformed {stats.malformed}, failed {stats.failed}; last frame ms: {stages or '-'}")


def run(args: argparse.Namespace, repo_root: Path, stack: Stack | None = None) -> int:
    """Run until the source ends, ``--duration`` passes or a signal arrives; returns an exit code."""
    stack = stack or build_stack(args, repo_root)
    sinks: list[Sink] = []
    connection = None
    stop = StopFlag().install()
    node: BridgeNode | None = None
    screenshot: Screenshot | None = None
    try:
        frames = None if args.source == "rosbridge" else build_source(args)  # bad paths fail before serving
        if args.rosbridge or args.source == "rosbridge":
            from .rosbridge_client import RosbridgeConnection, RosbridgePublisher

            connection = RosbridgeConnection(rosbridge_options(args)).start(wait=False)
            if not connection.connected.wait(connection.options.connect_timeout):
                LOGGER.warning("rosbridge at ws://%s:%d not reachable yet; retrying with back-off",
                               connection.options.host, connection.options.port)
            sinks.append(RosbridgePublisher(connection))
        if args.foxglove or args.mcap:
            from .foxglove_sink import FoxgloveSink

            fox = FoxgloveSink(host=args.bind, port=args.foxglove_port, mcap_path=args.mcap,
                               serve=args.foxglove, max_points=args.max_points)
            sinks.append(fox)
            if fox.port is not None:
                LOGGER.info("Foxglove server on ws://%s:%d (Foxglove Studio: Open connection -> "
                            "Foxglove WebSocket)", args.bind, fox.port)
            if args.mcap:
                LOGGER.info("recording to %s", args.mcap)
            if args.screenshot and fox.port is not None:
                screenshot = Screenshot(f"ws://{args.bind}:{fox.port}", args.screenshot,
                                        frames=args.max_frames or 3, title=args.screenshot_title).start()
        node = BridgeNode(stack, sinks, args.queue_size).start()
        deadline = None if args.duration is None else time.monotonic() + args.duration
        if args.source == "rosbridge":
            from .rosbridge_client import RosbridgeSource

            source = RosbridgeSource(connection, node.submit, node.count_malformed).start()
            _wait(stop.event, deadline, node, args.stats_interval)
            source.close()
        else:
            _replay(frames, node, stop.event, deadline, args)
        return 0
    finally:
        if screenshot is not None:
            screenshot.finish(timeout=5.0)  # usually done: it has the frames it waited for
        if node is not None:
            node.stop()
            LOGGER.info(status_line(node))
        else:
            for sink in sinks:
                sink.close()
        if connection is not None:
            connection.close()
        if screenshot is not None:
            screenshot.finish(timeout=30.0)  # the server is closed now; it renders what it got
        stop.restore()


def _replay(frames: Iterable[BridgeFrame], node: BridgeNode, stop: threading.Event, deadline: float | None,
            args: argparse.Namespace) -> None:
    from .sources import paced

    last_status = time.monotonic()
    for item in paced(frames, args.speed, stop):
        node.submit(item)
        if time.monotonic() - last_status > args.stats_interval:
            LOGGER.info(status_line(node))
            last_status = time.monotonic()
        if deadline is not None and time.monotonic() > deadline:
            break
    # let the last frames through unless told to stop
    while not stop.is_set() and node.pending() and (deadline is None or time.monotonic() < deadline):
        node.wait_idle(0.2)


def _wait(stop: threading.Event, deadline: float | None, node: BridgeNode, interval: float) -> None:
    while not stop.is_set():
        timeout = interval if deadline is None else min(interval, deadline - time.monotonic())
        if timeout <= 0 or stop.wait(timeout):
            return
        LOGGER.info(status_line(node))


def main(argv: list[str] | None = None, repo_root: Path | None = None, description: str = "") -> int:
    repo_root = repo_root or Path.cwd()
    args = build_parser(repo_root, description or __doc__).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return run(args, repo_root)
    except BridgeConfigError as error:
        LOGGER.error("%s", error)
        return 2
    except KeyboardInterrupt:  # Ctrl-C before the node's own handler was installed (model loading)
        LOGGER.info("interrupted")
        return 130
