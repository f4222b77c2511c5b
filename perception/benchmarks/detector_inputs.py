"""Frames for the detector benchmark and smoke tests: the real nuScenes keyframe, the real
Argoverse 2 log's last sweep, or random points.

The real sources go through the stack's own loaders (``NuScenesDataset`` /
``AV2SensorDataset``), so the detector sees exactly the :class:`Frame` a data set gives it.
The shared nuScenes sample has no sweeps: its info lists none, so the frame is the keyframe
alone with ``time_lag = 0`` (the issue: "10 sweeps accumulated, or the keyframe alone if sweeps
are absent").  The AV2 log's infos are written to a temporary folder (the shared data stays
read-only).
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..structures import Frame
from .sparse_inputs import REPO_ROOT, SHARED_KEYFRAME

SHARED_AV2_LOG = (REPO_ROOT.parent / "shared" / "data" / "av2" / "sensor" / "val" /
                  "7fab2350-7eaf-3b7e-a39d-6937a4c1bede")
NUSCENES_SWEEPS = 9  # keyframe + 9 sweeps: the full config's 10-sweep input
AV2_SWEEPS = 1  # keyframe + 1 sweep: the AV2 config's input
RANDOM_FEATURES = ("x", "y", "z", "intensity", "time_lag")


@dataclass(frozen=True)
class BenchFrame:
    """One input frame and a sentence on where it came from."""

    name: str
    frame: Frame
    note: str

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "token": self.frame.token, "points": int(len(self.frame.points)),
                "features": list(self.frame.point_features), "note": self.note}


def nuscenes_keyframe(root: Path = SHARED_KEYFRAME, sweeps: int = NUSCENES_SWEEPS) -> BenchFrame:
    """The real nuScenes keyframe of ``root`` (its info pickle and files side by side), with
    up to ``sweeps`` sweeps when the info lists any."""
    from ..datasets import NuScenesDataset
    from ..structures import CAMERA_NAMES_NUSCENES

    pickles = sorted(root.glob("*.pkl")) if root.is_dir() else []
    if not pickles:
        raise FileNotFoundError(f"no nuScenes keyframe info pickle in {root} (see "
                                f"../shared/data/README.md)")
    flat = {key: "" for key in ("pts", "sweeps", *CAMERA_NAMES_NUSCENES)}  # files side by side
    dataset = NuScenesDataset(ann_file=str(pickles[0].resolve()), data_root=str(root.resolve()),
                              data_prefix=flat, load_sweeps=sweeps, with_cameras=False)
    found = len(dataset.get_data_info(0).get("lidar_sweeps") or [])
    frame = dataset.get_frame(0)
    note = (f"real nuScenes keyframe + {found} sweeps" if found else
            "real nuScenes keyframe alone (its info lists no sweeps; time_lag = 0)")
    return BenchFrame("nuscenes-keyframe", frame, note)


def av2_sweep(log_dir: Path = SHARED_AV2_LOG, sweeps: int = AV2_SWEEPS) -> BenchFrame:
    """The last annotated sweep of the real AV2 log ``log_dir`` (+ ``sweeps`` earlier ones)."""
    from ..datasets.av2 import AV2SensorDataset
    from ..datasets.av2.create_infos import create_infos

    if not (log_dir / "sensors" / "lidar").is_dir():
        raise FileNotFoundError(f"no AV2 sensor log (sensors/lidar) at {log_dir} (see "
                                f"../shared/data/README.md)")
    root, split = log_dir.parents[1], log_dir.parent.name
    with tempfile.TemporaryDirectory(prefix="av2_infos_") as tmp:
        infos = create_infos(root, split, tmp, max_sweeps=max(sweeps, 1), logs=[log_dir.name])
        dataset = AV2SensorDataset(ann_file=str(infos), data_root=str(root), load_sweeps=sweeps)
        frame = dataset.get_frame(len(dataset) - 1)
    return BenchFrame("av2-sweep", frame, f"real AV2 sweep {frame.token} of log {log_dir.name} "
                                          f"(up to {sweeps} earlier sweep(s) accumulated)")


def random_frame(num_points: int, point_cloud_range: Sequence[float], seed: int = 0) -> BenchFrame:
    """``num_points`` points uniform in the inner 90 % of ``point_cloud_range`` (x, y) and
    ``z`` in [-2, 1] m: a smoke-test input, not one to report figures on."""
    if num_points < 1:
        raise ValueError(f"--points must be >= 1, got {num_points}")
    if len(point_cloud_range) != 6:
        raise ValueError(f"point_cloud_range must have 6 values, got {list(point_cloud_range)}")
    rng = np.random.default_rng(seed)
    lo, hi = np.asarray(point_cloud_range[:2]) * 0.9, np.asarray(point_cloud_range[3:5]) * 0.9
    points = np.zeros((num_points, len(RANDOM_FEATURES)), np.float32)
    points[:, :2] = rng.uniform(lo, hi, (num_points, 2))
    points[:, 2] = rng.uniform(-2.0, 1.0, num_points)
    points[:, 3] = rng.uniform(0.0, 255.0, num_points)
    frame = Frame(token=f"random-{num_points}-{seed}", timestamp=0.0, dataset="random",
                  points=points, point_features=RANDOM_FEATURES, lidar2ego=np.eye(4),
                  ego2global=np.eye(4), class_names=())
    return BenchFrame("random", frame, "uniform random points (smoke test)")


INPUTS: dict[str, Callable[[], BenchFrame]] = {"nuscenes-keyframe": nuscenes_keyframe,
                                               "av2-sweep": av2_sweep}
"""Real-data inputs by ``--input`` name (``random`` is built from the config's range)."""


def load_frame(name: str, num_points: int, point_cloud_range: Sequence[float] | None) -> BenchFrame:
    """The frame of ``--input name``; FileNotFoundError naming the path when data is absent."""
    if name == "random":
        if point_cloud_range is None:
            raise ValueError("--input random needs the config's point_cloud_range")
        return random_frame(num_points, point_cloud_range)
    if name not in INPUTS:
        raise ValueError(f"unknown --input {name!r}; known: random, {', '.join(INPUTS)}")
    return INPUTS[name]()
