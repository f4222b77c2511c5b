"""Which split each nuScenes scene belongs to.

Official scenes use the devkit's hard-coded splits (``create_splits_scenes``): train/val for
``v1.0-trainval``, mini_train/mini_val for ``v1.0-mini``, test for ``v1.0-test``.  Scenes the
devkit does not know, and every scene of a version it does not know (``v1.0-synthetic``, or
custom data in nuScenes format), are looked up in ``splits.json`` in the dataset root: ``{"train": [scene names], "val": [...]}``.
A scene in neither is an error rather than a silent drop.
"""
from __future__ import annotations

import json
from pathlib import Path

from nuscenes.utils.splits import create_splits_scenes

OFFICIAL_SPLITS: dict[str, dict[str, str]] = {
    "v1.0-trainval": {"train": "train", "val": "val"},
    "v1.0-mini": {"train": "mini_train", "val": "mini_val"},
    "v1.0-test": {"test": "test"},
}
"""Version -> our split name -> the devkit's split name."""

SPLITS_FILE = "splits.json"


def _custom_splits(root: Path) -> dict[str, list[str]]:
    path = root / SPLITS_FILE
    if not path.is_file():
        return {}
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(content, dict) or not all(isinstance(v, list) for v in content.values()):
        raise ValueError(f"{path} must map split names to lists of scene names")
    return content


def scene_splits(version: str, root: str | Path, scene_names: list[str]) -> dict[str, list[str]]:
    """``{split: [scene names]}`` covering every scene of ``scene_names``."""
    official_names = OFFICIAL_SPLITS.get(version, {})
    official = create_splits_scenes() if official_names else {}
    scene_to_split: dict[str, str] = {}
    for ours, devkit_name in official_names.items():
        for name in official[devkit_name]:
            scene_to_split[name] = ours
    custom = _custom_splits(Path(root))
    if not official_names and not custom:
        raise ValueError(
            f"nuScenes version {version!r} has no official split and {Path(root) / SPLITS_FILE} is missing; "
            f"official versions: {sorted(OFFICIAL_SPLITS)}"
        )
    for split, names in custom.items():
        for name in names:
            scene_to_split.setdefault(name, split)
    result: dict[str, list[str]] = {split: [] for split in (official_names or custom)}
    for name in scene_names:
        if name not in scene_to_split:
            raise ValueError(
                f"scene {name!r} is in no official {version} split and not in "
                f"{Path(root) / SPLITS_FILE}; add it there as {{\"train\": [...], \"val\": [...]}}"
            )
        result.setdefault(scene_to_split[name], []).append(name)
    return result
