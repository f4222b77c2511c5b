"""Write nuScenes info pickles (mmdet3d 1.x layout plus track ids, categories, scene, map location).

    python tools/create_data.py nuscenes --root data/nuscenes --version v1.0-mini [--out-dir D] [--max-sweeps 10]

Writes ``nuscenes_infos_train.pkl`` and ``nuscenes_infos_val.pkl`` (``nuscenes_infos_test.pkl``
for ``v1.0-test``) atomically.  Splits come from the devkit, or from ``<root>/splits.json``
for scenes the devkit does not know (see :mod:`.splits`).  The record layout is documented
in :mod:`.info_builder`.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ...structures import NUSCENES_CLASSES
from ...utils.atomic import write_pickle_atomic
from .splits import OFFICIAL_SPLITS, scene_splits

INFO_VERSION = "1.1"
"""mmdet3d's ``metainfo['info_version']`` for its 1.x layout (ours is a superset)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the ``nuscenes`` subcommand."""
    parser.add_argument("--root", required=True, help="nuScenes root (holds samples/, sweeps/, v1.0-*/)")
    parser.add_argument("--version", default="v1.0-trainval",
                        help=f"table folder under --root: {', '.join(sorted(OFFICIAL_SPLITS))}, or a custom "
                             "version (v1.0-synthetic) whose splits come from <root>/splits.json")
    parser.add_argument("--out-dir", default=None, help="where to write the pickles (default: --root)")
    parser.add_argument("--max-sweeps", type=int, default=10, help="previous LiDAR sweeps listed per sample")


def build_infos(nusc: Any, root: str | Path, version: str, max_sweeps: int = 10) -> dict[str, dict[str, Any]]:
    """``{split: {'metainfo', 'data_list'}}`` for every split of ``version``."""
    from .info_builder import sample_info

    scene_names = {scene["token"]: scene["name"] for scene in nusc.scene}
    splits = scene_splits(version, root, list(scene_names.values()))
    split_of_scene = {name: split for split, names in splits.items() for name in names}
    data_lists: dict[str, list[dict[str, Any]]] = {split: [] for split in splits}
    for sample in tqdm(nusc.sample, desc=f"nuScenes {version} infos"):
        split = split_of_scene[scene_names[sample["scene_token"]]]
        records = data_lists[split]
        records.append(sample_info(nusc, sample, len(records), max_sweeps))
    metainfo = {
        "categories": {name: index for index, name in enumerate(NUSCENES_CLASSES)},
        "dataset": "nuscenes",
        "version": version,
        "info_version": INFO_VERSION,
        "extensions": "perception: instance_token, category_name, velocity_isvalid, scene_token, "
                      "location, per-camera ego2global",
    }
    return {split: {"metainfo": dict(metainfo), "data_list": records} for split, records in data_lists.items()}


def run(args: argparse.Namespace) -> dict[str, Path]:
    """Load the tables with the devkit and write one pickle per split; returns their paths."""
    root = Path(args.root)
    if not (root / args.version).is_dir():
        raise FileNotFoundError(f"nuScenes tables not found: {root / args.version}")
    from nuscenes.nuscenes import NuScenes

    nusc = NuScenes(version=args.version, dataroot=str(root), verbose=False)
    out_dir = Path(args.out_dir) if args.out_dir else root
    written: dict[str, Path] = {}
    for split, content in build_infos(nusc, root, args.version, args.max_sweeps).items():
        path = out_dir / f"nuscenes_infos_{split}.pkl"
        write_pickle_atomic(content, path)
        print(f"wrote {len(content['data_list'])} samples to {path}")
        written[split] = path
    return written
