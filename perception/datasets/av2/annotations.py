"""AV2 cuboid annotations -> boxes in the stack's convention, with finite-difference velocities.

AV2 annotations carry no velocity.  As the nuScenes devkit does (``box_velocity``), each
box's velocity is the difference of its track's **city-frame** centres between the
neighbouring annotated timestamps (central where both neighbours exist, one-sided at track
ends, NaN for a track seen once or neighbours more than ``max_time_diff`` away), rotated
back into the ego (= AV2 LiDAR) frame of the box's own timestamp.  av2 itself only offers
forward differences on forecasting-challenge dicts, hence this small implementation.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from av2.structures.cuboid import CuboidList
from av2.utils.io import read_feather

from perception.structures import BOX_DIM, FrameError, wrap_angle

from .log_io import pose_at

NS_PER_S = 1e9


def read_cuboids(path: Path) -> dict[str, np.ndarray]:
    """Columns of ``annotations.feather`` as arrays: ``timestamp_ns``, ``centers`` (N, 3),
    ``rotations`` (N, 3, 3), ``dims`` (N, 3) as l, w, h, ``categories``, ``track_ids``,
    ``num_interior_pts``; all in the ego frame of each row's timestamp."""
    try:
        cuboids = CuboidList.from_feather(path)
        extra = read_feather(path, columns=("track_uuid", "num_interior_pts"))
    except (pa.ArrowException, OSError, KeyError, ValueError) as error:
        raise FrameError(f"cannot read AV2 annotations {path}: {error}") from error
    count = len(cuboids)
    rotations = (
        np.stack([c.dst_SE3_object.rotation for c in cuboids.cuboids]) if count else np.zeros((0, 3, 3))
    )
    return {
        "timestamp_ns": np.array([c.timestamp_ns for c in cuboids.cuboids], dtype=np.int64),
        "centers": cuboids.xyz_center_m.reshape(-1, 3) if count else np.zeros((0, 3)),
        "rotations": rotations,
        "dims": cuboids.dims_lwh_m.reshape(-1, 3) if count else np.zeros((0, 3)),
        "categories": np.array(cuboids.categories, dtype=object),
        "track_ids": extra["track_uuid"].to_numpy().astype(str),
        "num_interior_pts": extra["num_interior_pts"].to_numpy().astype(np.int64),
    }


def track_velocities(
    track_ids: np.ndarray, times: np.ndarray, centers: np.ndarray, max_time_diff: float = 1.5
) -> np.ndarray:
    """``(N, 3)`` velocities (m/s) by finite differences of each track's centres over time.

    ``times`` in seconds, ``centers`` in a fixed (city) frame.  Neighbours further than
    ``max_time_diff`` seconds are not used; a box with no usable neighbour gets NaN.
    """
    count = len(track_ids)
    order = np.lexsort((times, track_ids))
    same_prev = np.zeros(count, dtype=bool)
    same_prev[1:] = track_ids[order][1:] == track_ids[order][:-1]
    sorted_times = times[order]
    if np.any(same_prev[1:] & (np.diff(sorted_times) <= 0)):
        raise FrameError("AV2 annotations: a track has two cuboids at the same timestamp")
    prev = np.arange(count)
    nxt = np.arange(count)
    has_prev = same_prev.copy()
    has_prev[1:] &= sorted_times[1:] - sorted_times[:-1] <= max_time_diff
    prev[has_prev] -= 1
    has_next = np.zeros(count, dtype=bool)
    has_next[:-1] = has_prev[1:]
    nxt[has_next] += 1
    sorted_centers = centers[order]
    span = sorted_times[nxt] - sorted_times[prev]
    with np.errstate(invalid="ignore", divide="ignore"):
        velocity = (sorted_centers[nxt] - sorted_centers[prev]) / span[:, None]
    velocity[span <= 0] = np.nan
    result = np.empty_like(velocity)
    result[order] = velocity
    return result


def load_log_annotations(
    log_dir: Path, poses: dict[int, np.ndarray], max_time_diff: float = 1.5
) -> dict[int, dict[str, Any]] | None:
    """Per annotated timestamp (ns), the boxes of that sweep in its ego frame.

    Each value holds ``boxes`` (N, 9: x, y, z, l, w, h, yaw, vx, vy), ``names`` (AV2
    categories), ``track_ids`` and ``num_lidar_pts`` (av2's ``num_interior_pts``).  Returns
    ``None`` when the log has no ``annotations.feather`` (unlabelled test logs) and ``{}``
    when the table is empty.
    """
    path = log_dir / "annotations.feather"
    if not path.is_file():
        return None
    table = read_cuboids(path)
    stamps = table["timestamp_ns"]
    if len(stamps) == 0:
        return {}
    unique_stamps, inverse = np.unique(stamps, return_inverse=True)
    pose_list = np.stack([pose_at(poses, int(ts), log_dir) for ts in unique_stamps])[inverse]
    rot = pose_list[:, :3, :3]
    city_centers = np.einsum("nij,nj->ni", rot, table["centers"]) + pose_list[:, :3, 3]
    velocity_city = track_velocities(table["track_ids"], stamps / NS_PER_S, city_centers, max_time_diff)
    velocity_ego = np.einsum("nji,nj->ni", rot, velocity_city)  # R^T v
    rotations = table["rotations"]
    yaws = wrap_angle(np.arctan2(rotations[:, 1, 0], rotations[:, 0, 0]))
    boxes = np.concatenate(
        [table["centers"], table["dims"], yaws[:, None], velocity_ego[:, :2]], axis=1
    ).reshape(-1, BOX_DIM)
    result: dict[int, dict[str, Any]] = {}
    for index, ts in enumerate(unique_stamps):
        rows = np.flatnonzero(inverse == index)
        result[int(ts)] = {
            "boxes": boxes[rows],
            "names": [str(n) for n in table["categories"][rows]],
            "track_ids": [str(t) for t in table["track_ids"][rows]],
            "num_lidar_pts": table["num_interior_pts"][rows],
        }
    return result
