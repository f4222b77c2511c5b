"""Reading one Argoverse 2 sensor log with the av2 API, with errors that name the file.

AV2 stores each LiDAR sweep (the two stacked Velodynes, ``up_lidar`` and ``down_lidar``)
already merged, ego-motion compensated to the sweep timestamp and expressed in the
**egovehicle** frame (see :meth:`av2.structures.sweep.Sweep.from_feather`), so the stack's
"lidar" frame of an AV2 frame is the ego frame and ``lidar2ego`` is the identity.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
from av2.utils.io import read_city_SE3_ego, read_feather

from perception.structures import FrameError

SWEEP_COLUMNS: tuple[str, ...] = ("x", "y", "z", "intensity")
"""Columns of a sweep feather that become the frame's point features."""


def lidar_timestamps(log_dir: Path) -> list[int]:
    """Sorted nanosecond timestamps of the sweeps in ``log_dir/sensors/lidar``."""
    lidar_dir = log_dir / "sensors" / "lidar"
    if not lidar_dir.is_dir():
        raise FileNotFoundError(f"AV2 log has no LiDAR folder: {lidar_dir}")
    stamps = []
    for path in lidar_dir.glob("*.feather"):
        if not path.stem.isdigit():
            raise FrameError(f"AV2 sweep file name is not a nanosecond timestamp: {path}")
        stamps.append(int(path.stem))
    return sorted(stamps)


def read_poses(log_dir: Path) -> dict[int, np.ndarray]:
    """``timestamp_ns -> ego2global`` (4x4) from ``city_SE3_egovehicle.feather``."""
    path = log_dir / "city_SE3_egovehicle.feather"
    if not path.is_file():
        raise FileNotFoundError(f"AV2 log has no pose file: {path}")
    try:
        poses = read_city_SE3_ego(log_dir)
    except (pa.ArrowException, KeyError, OSError) as error:
        raise FrameError(f"cannot read AV2 poses {path}: {error}") from error
    return {int(ts): pose.transform_matrix for ts, pose in poses.items()}


def pose_at(poses: dict[int, np.ndarray], timestamp_ns: int, log_dir: Path) -> np.ndarray:
    """The ego pose at exactly ``timestamp_ns`` (AV2 logs a pose at every sensor timestamp)."""
    pose = poses.get(int(timestamp_ns))
    if pose is None:
        raise FrameError(
            f"AV2 log {log_dir.name}: no ego pose at timestamp {timestamp_ns} ns in "
            f"{log_dir / 'city_SE3_egovehicle.feather'}"
        )
    if not np.isfinite(pose).all():
        raise FrameError(f"AV2 log {log_dir.name}: non-finite ego pose at timestamp {timestamp_ns} ns")
    return pose


def load_sweep(path: str | Path) -> np.ndarray:
    """``(N, 4)`` float32 ``x, y, z, intensity`` of one sweep feather, in the ego frame.

    Reads only the needed columns with av2's feather reader (``Sweep.from_feather`` would
    re-read the calibration for every sweep).  Raises :class:`FrameError` naming the file
    when it is missing, unreadable, lacks a column or holds non-finite coordinates.
    """
    path = Path(path)
    if not path.is_file():
        raise FrameError(f"AV2 sweep file not found: {path}")
    try:
        table = read_feather(path, columns=SWEEP_COLUMNS)
    except (pa.ArrowException, OSError, KeyError, ValueError) as error:
        raise FrameError(f"cannot read AV2 sweep {path}: {error}") from error
    points = table.to_numpy(dtype=np.float32)  # xyz are float16 on disk, intensity uint8
    if points.ndim != 2 or points.shape[1] != len(SWEEP_COLUMNS):
        raise FrameError(f"AV2 sweep {path}: expected columns {SWEEP_COLUMNS}, got {points.shape}")
    bad = ~np.isfinite(points).all(axis=1)
    if bad.any():
        raise FrameError(f"AV2 sweep {path}: {int(bad.sum())} of {len(points)} points are NaN/Inf")
    return points
