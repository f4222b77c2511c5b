"""Ground-truth database for copy-paste augmentation (``ObjectSample``), mmdet3d-style.

    python tools/create_data.py gt-database --infos data/nuscenes/nuscenes_infos_train.pkl \\
        --data-root data/nuscenes --load-sweeps 9

For every box of a training frame, the points inside it are written to
``<out>/<prefix>_gt_database/<token>_<class>_<index>.bin`` (float32, the frame's point
columns, **x y z relative to the box's gravity centre, LiDAR axes** i.e. translated, not
rotated, as mmdet3d does) and an entry to ``<out>/<prefix>_dbinfos_<split>.pkl``::

    {"metainfo": {"version", "dataset", "classes", "point_features", "load_sweeps",
                  "source", "split", "box_origin": "gravity_centre",
                  "points": "xyz relative to the box centre, LiDAR axes"},
     "dbinfos": {class_name: [{"name", "path" (relative to <out>), "token", "gt_idx",
                               "box3d_lidar" (9,) x y z l w h yaw vx vy, "num_points_in_gt",
                               "difficulty": 0, "group_id", "track_id"}, ...]}}

Boxes with no point inside are skipped (pasting them teaches nothing).  The folder is built
beside its final place and renamed in when complete, and the pickle is written atomically,
so an interrupted run leaves the previous database intact.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..registry import DATASETS
from ..structures import Boxes3D, Frame, FrameError
from ..utils.atomic import replace_folder, write_pickle_atomic
from .base import FrameDataset
from .mmdet3d_info import load_info_file

DB_VERSION = 1
DATASET_TYPES: dict[str, str] = {"nuscenes": "NuScenesDataset", "av2": "AV2SensorDataset"}
"""``metainfo['dataset']`` of an info file -> registered dataset class that reads it."""
SYNTHETIC_INFO = "nuscenes_infos_train.pkl"
"""The synthetic world's training infos, from which ``create_data.py synthetic`` builds a database."""


def dataset_from_infos(info_path: str | Path, data_root: str | Path, load_sweeps: int = 0,
                       class_mapping: str | None = None) -> FrameDataset:
    """The registered dataset that reads ``info_path`` (chosen by its ``metainfo['dataset']``;
    mmdet3d infos without it are nuScenes), without cameras."""
    info_path = Path(info_path).absolute()
    metainfo, _ = load_info_file(info_path)
    name = str(metainfo.get("dataset", "nuscenes"))
    if name not in DATASET_TYPES:
        raise ValueError(f"{info_path}: metainfo dataset {name!r} has no gt-database reader; "
                         f"known: {sorted(DATASET_TYPES)}")
    cfg: dict[str, Any] = dict(type=DATASET_TYPES[name], ann_file=str(info_path), data_root=str(data_root),
                               load_sweeps=int(load_sweeps))
    if name == "nuscenes":
        cfg["with_cameras"] = False
    if class_mapping is not None:
        if name != "av2":
            raise ValueError(f"{info_path}: class_mapping only applies to AV2 infos, not {name}")
        cfg["class_mapping"] = class_mapping
    return DATASETS.build(cfg)


def points_in_each_box(boxes: Boxes3D, points: np.ndarray) -> list[np.ndarray]:
    """Indices of the points inside each box; each box first crops the cloud to its BEV
    circumcircle so memory stays ``O(N)`` for 10-sweep clouds."""
    xy = points[:, :2].astype(np.float64)
    radii = np.linalg.norm(boxes.sizes[:, :2], axis=1) / 2
    inside = []
    for index in range(len(boxes)):
        near = np.flatnonzero(((xy - boxes.centers[index, :2]) ** 2).sum(axis=1) <= radii[index] ** 2 + 1e-9)
        mask = boxes[[index]].points_in_boxes(points[near])[:, 0]
        inside.append(near[mask])
    return inside


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def _frame_entries(frame: Frame, classes: Sequence[str] | None, folder: Path, relative: str,
                   first_group: int) -> list[dict[str, Any]]:
    """Write the object files of one frame into ``folder``; return their database entries."""
    names = [frame.class_names[label] for label in frame.boxes.labels]
    selected = [i for i, name in enumerate(names) if classes is None or name in classes]
    if not selected:
        return []
    boxes = frame.boxes[selected]
    entries = []
    for row, (index, inside) in enumerate(zip(selected, points_in_each_box(boxes, frame.points))):
        if len(inside) == 0:
            continue
        points = frame.points[inside].copy()
        points[:, :3] = (points[:, :3].astype(np.float64) - boxes.centers[row]).astype(np.float32)
        file_name = f"{_safe(frame.token)}_{_safe(names[index])}_{index}.bin"
        points.astype(np.float32).tofile(folder / file_name)
        entries.append({
            "name": names[index], "path": f"{relative}/{file_name}", "token": frame.token, "gt_idx": index,
            "box3d_lidar": boxes.data[row].copy(), "num_points_in_gt": int(len(inside)), "difficulty": 0,
            "group_id": first_group + len(entries), "track_id": boxes.track_ids[row],
        })
    return entries


def create_gt_database(
    dataset: FrameDataset | tuple[str | Path, str | Path, int],
    out_dir: str | Path,
    classes: Sequence[str] | None = None,
    prefix: str | None = None,
    split: str = "train",
) -> Path:
    """Write the object point files and the dbinfos pickle of every frame; return the pickle.

    ``dataset`` is a :class:`FrameDataset` or ``(info_path, data_root, load_sweeps)``;
    ``classes`` limits the classes stored (default: all); ``prefix`` names the outputs
    (default: the frames' ``dataset``, e.g. ``nuscenes``).
    """
    if isinstance(dataset, tuple):
        dataset = dataset_from_infos(*dataset)
    if len(dataset) == 0:
        raise ValueError(f"gt database: dataset {getattr(dataset, 'ann_file', '')} has no frames")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = prefix or dataset.get_frame(0).dataset or "dataset"
    relative = f"{prefix}_gt_database"
    staging = out_dir / f".{relative}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    dbinfos: dict[str, list[dict[str, Any]]] = {}
    features: tuple[str, ...] | None = None
    group = 0
    try:
        staging.mkdir()
        for index in tqdm(range(len(dataset)), desc=f"gt database {prefix}", file=sys.stderr):
            frame = dataset.get_frame(index)
            if features is None:
                features = frame.point_features
            elif frame.point_features != features:
                raise FrameError(f"gt database: frame {frame.token} has point features {frame.point_features}, "
                                 f"earlier frames {features}")
            for entry in _frame_entries(frame, classes, staging, relative, group):
                dbinfos.setdefault(entry["name"], []).append(entry)
                group += 1
        replace_folder(staging, out_dir / relative)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    metainfo = {
        "version": DB_VERSION, "dataset": prefix, "split": split,
        "classes": tuple(classes) if classes is not None else tuple(sorted(dbinfos)),
        "point_features": features, "load_sweeps": int(getattr(dataset, "load_sweeps", 0)),
        "source": str(getattr(dataset, "ann_file", "")), "box_origin": "gravity_centre",
        "points": "xyz relative to the box centre, LiDAR axes",
    }
    return write_pickle_atomic({"metainfo": metainfo, "dbinfos": dbinfos},
                               out_dir / f"{prefix}_dbinfos_{split}.pkl")


def _sweeps(text: str) -> int:
    """argparse type: a sweep count >= 0 (checked before any work)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _class_list(text: str | None) -> list[str] | None:
    return [name.strip() for name in text.split(",") if name.strip()] if text else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``create_data.py gt-database``."""
    parser.add_argument("--infos", required=True, type=Path, help="training info pickle (nuScenes or AV2)")
    parser.add_argument("--data-root", required=True, type=Path, help="dataset root the infos refer to")
    parser.add_argument("--load-sweeps", type=_sweeps, default=0,
                        help="previous sweeps merged into each frame (match the training config)")
    parser.add_argument("--out-dir", type=Path, default=None, help="output folder (default: --data-root)")
    parser.add_argument("--classes", default=None, help="comma-separated classes to store (default: all)")
    parser.add_argument("--class-mapping", default=None, help="AV2 only: 'av2' or 'nuscenes' class names")
    parser.add_argument("--split", default="train", help="split name used in the pickle's file name")


def run(args: argparse.Namespace) -> Path:
    """Entry point of ``tools/create_data.py gt-database``."""
    dataset = dataset_from_infos(args.infos, args.data_root, args.load_sweeps, args.class_mapping)
    path = create_gt_database(dataset, args.out_dir or args.data_root, _class_list(args.classes), split=args.split)
    print(f"gt-database: wrote {path}")
    return path


def add_follow_up_arguments(parser: argparse.ArgumentParser) -> None:
    """Options added to ``create_data.py synthetic``: the database is built by default."""
    parser.add_argument("--no-gt-database", action="store_true",
                        help=f"do not build the ground-truth database from {SYNTHETIC_INFO}")
    parser.add_argument("--gt-database-sweeps", type=_sweeps, default=9,
                        help="sweeps merged per frame for the database (the configs' load_sweeps)")


def run_follow_up(args: argparse.Namespace) -> Path | None:
    """After ``create_data.py synthetic``: the database of its nuScenes training infos."""
    info = Path(args.out) / SYNTHETIC_INFO
    if args.no_gt_database or not info.is_file():
        return None
    path = create_gt_database((info, Path(args.out), args.gt_database_sweeps), Path(args.out))
    print(f"gt-database: wrote {path}")
    return path
