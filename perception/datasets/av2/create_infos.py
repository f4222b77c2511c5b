"""Argoverse 2 sensor dataset: write av2_infos_<split>.pkl for AV2SensorDataset.

    python tools/create_data.py av2 --root data/av2/sensor --split val [--out-dir D] [--max-sweeps 5]

Logs are read from ``root/split/<log_id>``.  One record per LiDAR sweep that has
annotations (every sweep for unlabelled logs).  Paths in the records are relative to
``root`` so the same info file works wherever the dataset is mounted (``data_root``).
"""
from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from av2.datasets.sensor.constants import RingCameras
from av2.geometry.camera.pinhole_camera import PinholeCamera
from av2.utils.synchronization_database import SynchronizationDB
from tqdm import tqdm

from perception.structures import FrameError
from perception.utils.atomic import write_pickle_atomic

from .annotations import NS_PER_S, load_log_annotations
from .categories import AV2_CLASSES
from .log_io import lidar_timestamps, pose_at, read_poses

INFO_VERSION = 1
RING_CAMERAS: tuple[str, ...] = tuple(c.value for c in RingCameras)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``create_data.py av2``."""
    parser.add_argument("--root", required=True, help="AV2 sensor root holding <split>/<log_id>/")
    parser.add_argument("--split", default="val", help="split folder under root (train/val/test)")
    parser.add_argument("--out-dir", default=None, help="where to write the pickle (default: root)")
    parser.add_argument("--max-sweeps", type=int, default=5, help="previous sweeps recorded per frame")
    parser.add_argument("--logs", nargs="*", default=None, help="only these log ids")


def run(args: argparse.Namespace) -> Path:
    """Convert one split and write the pickle atomically; returns its path."""
    return create_infos(Path(args.root), args.split, args.out_dir, args.max_sweeps, args.logs)


def create_infos(
    root: Path, split: str, out_dir: str | Path | None = None, max_sweeps: int = 5,
    logs: list[str] | None = None,
) -> Path:
    """Build the records of every log of ``root/split`` and write ``av2_infos_<split>.pkl``."""
    split_dir = Path(root) / split
    if not split_dir.is_dir():
        raise FileNotFoundError(f"AV2 split folder not found: {split_dir}")
    log_dirs = sorted(p for p in split_dir.iterdir() if p.is_dir() and (logs is None or p.name in logs))
    if not log_dirs:
        raise FileNotFoundError(f"no AV2 logs under {split_dir}" + (f" matching {logs}" if logs else ""))
    records: list[dict[str, Any]] = []
    for log_dir in tqdm(log_dirs, desc=f"av2 {split} logs", unit="log"):
        records.extend(log_records(log_dir, Path(root), max_sweeps))
    metainfo = {"dataset": "av2", "split": split, "version": INFO_VERSION, "classes": AV2_CLASSES}
    out_path = Path(out_dir or root) / f"av2_infos_{split}.pkl"
    write_pickle_atomic({"metainfo": metainfo, "data_list": records}, out_path)
    return out_path


def log_records(log_dir: Path, root: Path, max_sweeps: int) -> list[dict[str, Any]]:
    """Records of one log: annotated sweeps (all sweeps when the log is unlabelled)."""
    poses = read_poses(log_dir)
    annotations = load_log_annotations(log_dir, poses)
    stamps = lidar_timestamps(log_dir)
    labelled = annotations is not None and len(annotations) > 0
    keyframes = [ts for ts in stamps if ts in annotations] if labelled else stamps
    cameras = read_cameras(log_dir)
    sync = SynchronizationDB(str(log_dir.parent), collect_single_log_id=log_dir.name)
    relative = log_dir.relative_to(root)
    location = city_name(log_dir)
    records = []
    for ts in tqdm(keyframes, desc=log_dir.name[:8], unit="sweep", leave=False):
        index = stamps.index(ts)
        previous = stamps[max(0, index - max_sweeps) : index][::-1]
        records.append({
            "token": f"{log_dir.name}_{ts}",
            "log_id": log_dir.name,
            "timestamp_ns": ts,
            "timestamp": ts / NS_PER_S,
            "location": location,
            "lidar_path": str(relative / "sensors" / "lidar" / f"{ts}.feather"),
            "lidar2ego": np.eye(4),  # AV2 sweeps are stored in the ego frame
            "ego2global": pose_at(poses, ts, log_dir),
            "sweeps": [
                {"lidar_path": str(relative / "sensors" / "lidar" / f"{s}.feather"),
                 "timestamp": s / NS_PER_S, "ego2global": pose_at(poses, s, log_dir)}
                for s in previous
            ],
            "cameras": camera_records(cameras, sync, log_dir, relative, ts, poses),
            "map_dir": str(relative / "map"),
            "annos": annotations.get(ts, empty_annos()) if labelled else empty_annos(),
            "annotated": labelled,
        })
    return records


def empty_annos() -> dict[str, Any]:
    """The annotation block of a sweep with no boxes."""
    return {"boxes": np.zeros((0, 9)), "names": [], "track_ids": [], "num_lidar_pts": np.zeros(0, np.int64)}


def city_name(log_dir: Path) -> str:
    """City code (e.g. ``PIT``) from the vector map file name ``log_map_archive_<log>____<CITY>_city_<id>.json``."""
    names = sorted((log_dir / "map").glob("log_map_archive_*.json"))
    if not names or "____" not in names[0].stem:
        return ""
    return names[0].stem.split("____")[-1].split("_")[0]


def read_cameras(log_dir: Path) -> dict[str, PinholeCamera]:
    """Calibration of the ring cameras the log has (intrinsics + ``egovehicle_SE3_sensor``).

    Real AV2 logs have all seven; logs written in the AV2 layout by other tools (the
    synthetic world has six cameras) may have fewer, and that is not an error.
    """
    calibration = log_dir / "calibration"
    for name in ("intrinsics.feather", "egovehicle_SE3_sensor.feather"):
        if not (calibration / name).is_file():
            raise FileNotFoundError(f"AV2 log has no calibration file: {calibration / name}")
    try:
        present = set(pd.read_feather(calibration / "intrinsics.feather")["sensor_name"])
        return {name: PinholeCamera.from_feather(log_dir, name) for name in RING_CAMERAS if name in present}
    except KeyError as error:
        raise FrameError(f"AV2 calibration in {calibration} lacks camera {error}") from error


@contextlib.contextmanager
def _quiet_sync_misses() -> Iterator[None]:
    """Silence av2's per-query "No corresponding ring image" warning: a sweep without a
    nearby image is expected (unlabelled cameras, 2 Hz synthetic images) and is recorded as
    ``image_found=False`` instead."""
    sync_logger = logging.getLogger(SynchronizationDB.__module__)
    level = sync_logger.level
    sync_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        sync_logger.setLevel(level)


def camera_records(
    cameras: dict[str, PinholeCamera], sync: SynchronizationDB, log_dir: Path, relative: Path,
    lidar_ts: int, poses: dict[int, np.ndarray],
) -> dict[str, dict[str, Any]]:
    """Per ring camera: the image nearest in time (av2's synchronisation), or, when the log has
    no images, the expected path at the LiDAR timestamp with ``image_found=False``."""
    result = {}
    for name, camera in cameras.items():
        with _quiet_sync_misses():
            cam_ts = sync.get_closest_cam_channel_timestamp(lidar_ts, name, log_dir.name)
        found = cam_ts is not None
        cam_ts = int(cam_ts) if found else lidar_ts
        result[name] = {
            "image_path": str(relative / "sensors" / "cameras" / name / f"{cam_ts}.jpg"),
            "image_found": found,
            "timestamp": cam_ts / NS_PER_S,
            "cam2img": np.asarray(camera.intrinsics.K, dtype=np.float64),
            "cam2ego": camera.ego_SE3_cam.transform_matrix,
            "image_size": (int(camera.width_px), int(camera.height_px)),
            "ego2global": poses.get(cam_ts) if found else None,
        }
    return result
