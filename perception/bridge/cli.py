"""Command-line options of the bridge (``demo/ros_bridge.py``) and how they map to parts."""
from __future__ import annotations

import argparse
from pathlib import Path
from urllib.parse import urlparse

from .errors import BridgeConfigError
from .planner_stage import PLANNER_NAMES

SOURCES = ("synthetic", "rosbridge", "bag", "nuscenes", "av2")
DEMO_CONFIG = Path("configs/centerpoint/centerpoint_tiny_synthetic_demo.py")
DEMO_WORK_DIR = Path("work_dirs/demo/centerpoint_tiny")
# Checked in this order: the full tiny run (80 epochs, `python tools/train.py
# configs/centerpoint/centerpoint_tiny_synthetic.py`) is far stronger than `make demo`'s short
# run; both train the same model, so either loads with the demo config.
CHECKPOINT_WORK_DIRS = (Path("work_dirs/centerpoint_tiny_synthetic"), DEMO_WORK_DIR)
STR_CONFIG = Path("configs/str/str_small_synthetic.py")


def host_port(text: str, default_port: int = 9090) -> tuple[str, int]:
    """``host:port``, ``ws://host:port`` or ``host`` -> (host, port)."""
    parsed = urlparse(text if "//" in text else f"ws://{text}")
    if not parsed.hostname:
        raise BridgeConfigError(f"cannot read a host from {text!r} (expected host:port or ws://host:port)")
    try:
        port = parsed.port or default_port
    except ValueError as error:
        raise BridgeConfigError(f"bad port in {text!r}: {error}") from error
    return parsed.hostname, port


def _work_dir_checkpoint(work_dir: Path) -> Path | None:
    """``last_checkpoint``'s target in ``work_dir``, else its newest ``epoch_*.pth``, else None."""
    pointer = work_dir / "last_checkpoint"
    if pointer.is_file():
        target = Path(pointer.read_text().strip())
        if target.is_file():
            return target
    epochs = sorted(work_dir.glob("epoch_*.pth"), key=lambda p: int(p.stem.split("_")[-1]))
    return epochs[-1] if epochs else None


def default_checkpoint(repo_root: Path) -> Path:
    """The first trained tiny CenterPoint found in :data:`CHECKPOINT_WORK_DIRS` (the full tiny
    run, then ``make demo``'s); a ``.../epoch_*.pth`` pattern (for the error message) if none."""
    for work_dir in CHECKPOINT_WORK_DIRS:
        found = _work_dir_checkpoint(repo_root / work_dir)
        if found is not None:
            return found
    return repo_root / DEMO_WORK_DIR / "epoch_*.pth"


def build_parser(repo_root: Path, description: str = "") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_argument_group("source")
    source.add_argument("--source", choices=SOURCES, default="synthetic")
    source.add_argument("--data-root", type=Path, default=repo_root / "data" / "synthetic",
                        help="synthetic/nuscenes/av2 data root")
    source.add_argument("--info", type=Path, help="info pickle for --source nuscenes/av2")
    source.add_argument("--split", default="val", help="synthetic split to replay")
    source.add_argument("--sweeps", type=int, default=9, help="LiDAR sweeps merged per frame (dataset sources)")
    source.add_argument("--bag", type=Path, help="ROS 1 .bag file or ROS 2 bag folder for --source bag")
    source.add_argument("--speed", type=float, default=1.0,
                        help="replay speed (x sensor rate; 0 = as fast as possible)")
    source.add_argument("--loop", action=argparse.BooleanOptionalAction, default=None,
                        help="replay the dataset forever (default: loop while serving Foxglove / rosbridge "
                             "unless --max-frames is given)")
    source.add_argument("--max-frames", type=int, default=None)
    source.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    model = parser.add_argument_group("model stack")
    model.add_argument("--config", type=Path, default=repo_root / DEMO_CONFIG)
    model.add_argument("--checkpoint", type=Path, default=None,
                       help="default: the newest checkpoint under " + " or ".join(map(str, CHECKPOINT_WORK_DIRS)))
    model.add_argument("--allow-random-weights", action="store_true",
                       help="run with random weights when the checkpoint is missing (for plumbing tests)")
    model.add_argument("--score-threshold", type=float, default=0.2)
    model.add_argument("--device", default="cpu")
    model.add_argument("--queue-size", type=int, default=1, help="frames waiting for the stack (oldest dropped)")
    plan = parser.add_argument_group("tracking and planning")
    plan.add_argument("--planner", choices=PLANNER_NAMES, default="cv",
                      help="ego planner fed by the tracker's histories and the ego poses: none, cv (constant "
                           "velocity) or str (STR model; needs --str-checkpoint). The path is published on "
                           "--path-topic (nav_msgs/Path) and the Foxglove /perception/path channel")
    plan.add_argument("--str-config", type=Path, default=repo_root / STR_CONFIG, help="STR config for --planner str")
    plan.add_argument("--str-checkpoint", type=Path, default=None, help="trained STR weights for --planner str")
    plan.add_argument("--plan-steps", type=int, default=30,
                      help="poses of the constant-velocity plan, spaced by the input frame interval")
    plan.add_argument("--history-steps", type=int, default=20,
                      help="past frames of track / ego history the planner sees (and the tracker keeps)")
    ros = parser.add_argument_group("rosbridge")
    ros.add_argument("--rosbridge", default=None, metavar="HOST:PORT",
                     help="rosbridge server to publish results to (and read from with --source rosbridge)")
    ros.add_argument("--pointcloud-topic", default="/points")
    ros.add_argument("--image-topics", nargs="*", default=[], help="sensor_msgs/msg/CompressedImage topics")
    ros.add_argument("--tf-topics", nargs="*", default=["/tf", "/tf_static"])
    ros.add_argument("--fixed-frame", default="map", help="TF frame the sensor pose is looked up in")
    ros.add_argument("--markers-topic", default="/perception/markers")
    ros.add_argument("--path-topic", default="/perception/path")
    ros.add_argument("--diagnostics-topic", default="/diagnostics")
    ros.add_argument("--publish-points", action="store_true",
                     help="also publish the input cloud (replay sources) on /perception/points")
    fox = parser.add_argument_group("foxglove")
    fox.add_argument("--foxglove", action="store_true", help="serve the scene to Foxglove Studio")
    fox.add_argument("--foxglove-port", type=int, default=8765)
    fox.add_argument("--max-points", type=int, default=None, help="subsample the served cloud")
    fox.add_argument("--mcap", type=Path, default=None, help="record the served channels to this MCAP file")
    parser.add_argument("--bind", default="127.0.0.1",
                        help="address the Foxglove server binds to (0.0.0.0 exposes it to the network)")
    parser.add_argument("--screenshot", type=Path, default=None,
                        help="connect a Foxglove client to the served scene and render it (BEV PNG) at the end")
    parser.add_argument("--screenshot-title", default="")
    parser.add_argument("--stats-interval", type=float, default=5.0, help="seconds between status lines")
    return parser
