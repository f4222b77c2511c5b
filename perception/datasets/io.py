"""Readers of raw LiDAR files shared by the datasets: nuScenes-style float32 ``.bin`` /
``.pcd.bin`` point files and multi-sweep accumulation into the keyframe LiDAR frame.

Every failure names the file: a missing, empty or truncated file, or non-finite values,
raises :class:`~perception.structures.FrameError` unless the caller opted into a logged skip.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from mmengine.logging import print_log

from ..structures import FrameError, apply_transform, make_transform

_FLOAT_BYTES = 4


def load_points_bin(path: str | Path, num_features: int = 5, allow_invalid: bool = False) -> np.ndarray:
    """Read an ``(N, num_features)`` float32 point file.

    With ``allow_invalid=True`` rows holding NaN/Inf are dropped and the count is logged;
    otherwise they raise, because a silently poisoned cloud corrupts voxel statistics.
    """
    path = Path(path)
    if num_features < 3:
        raise ValueError(f"num_features must be >= 3 (x, y, z), got {num_features} for {path}")
    if not path.is_file():
        raise FrameError(f"point file not found: {path}")
    size = path.stat().st_size
    if size == 0:
        raise FrameError(f"point file is empty: {path}")
    row_bytes = _FLOAT_BYTES * num_features
    if size % row_bytes:
        raise FrameError(
            f"point file {path} has {size} bytes, not a multiple of {row_bytes} "
            f"({num_features} float32 features per point): truncated or wrong num_features"
        )
    points = np.fromfile(path, dtype=np.float32).reshape(-1, num_features)
    finite = np.isfinite(points).all(axis=1)
    bad = int((~finite).sum())
    if bad:
        if not allow_invalid:
            raise FrameError(f"point file {path} has {bad} points with NaN/Inf values")
        print_log(f"dropped {bad} points with NaN/Inf values from {path}", logger="current",
                  level=logging.WARNING)
        points = points[finite]
    return points


@dataclass(frozen=True)
class SweepRecord:
    """One earlier LiDAR sweep: its file, the transform from its LiDAR frame to the keyframe
    LiDAR frame (``sweep2key``, 4x4) and its timestamp in seconds."""

    path: str
    sweep2key: np.ndarray
    timestamp: float

    @classmethod
    def from_sensor2lidar(cls, path: str, rotation: np.ndarray, translation: np.ndarray,
                          timestamp: float) -> "SweepRecord":
        """Build from mmdet3d 0.x's ``sensor2lidar_rotation`` / ``sensor2lidar_translation``."""
        return cls(str(path), make_transform(rotation, translation), float(timestamp))


def load_multi_sweep(
    key_points: np.ndarray,
    key_timestamp: float,
    sweeps: Sequence[SweepRecord],
    num_features: int = 5,
    skip_missing: bool = False,
    allow_invalid: bool = False,
    remove_close: float = 0.0,
) -> np.ndarray:
    """Keyframe points plus earlier sweeps in the keyframe LiDAR frame, with a ``time_lag``
    column appended (keyframe time minus sweep time, seconds; 0 for the keyframe).

    A missing sweep file raises unless ``skip_missing`` (then it is logged and skipped:
    nuScenes has gaps at scene starts).  ``remove_close`` drops sweep points within that
    radius (m) of the sweep sensor, i.e. returns from the ego vehicle's own roof.
    """
    key_points = np.asarray(key_points, dtype=np.float32)
    if key_points.ndim != 2 or key_points.shape[1] != num_features:
        raise ValueError(f"keyframe points have shape {key_points.shape}, expected (N, {num_features})")
    parts = [np.concatenate([key_points, np.zeros((len(key_points), 1), np.float32)], axis=1)]
    for sweep in sweeps:
        if not Path(sweep.path).is_file() and skip_missing:
            print_log(f"sweep file missing, skipped: {sweep.path}", logger="current", level=logging.WARNING)
            continue
        points = load_points_bin(sweep.path, num_features, allow_invalid)
        if remove_close > 0:
            points = points[np.linalg.norm(points[:, :2], axis=1) >= remove_close]
        points = apply_transform(np.asarray(sweep.sweep2key, dtype=np.float64), points)
        lag = np.full((len(points), 1), key_timestamp - sweep.timestamp, dtype=np.float32)
        parts.append(np.concatenate([points.astype(np.float32), lag], axis=1))
    return np.concatenate(parts, axis=0)
