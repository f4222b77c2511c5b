"""Open nuScenes map expansions, including locations the devkit does not list.

``NuScenesMap`` asserts that ``map_name`` is one of the four real nuScenes locations; the
synthetic world (and any custom data in nuScenes format) has its own.  The devkit's list is
extended only for the duration of the constructor call and restored afterwards.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def _known_location(location: str) -> Iterator[None]:
    """Let the devkit's location check accept ``location`` while a map is being opened."""
    from nuscenes.map_expansion import map_api

    added = location not in map_api.locations
    if added:
        map_api.locations.append(location)
    try:
        yield
    finally:
        if added:
            map_api.locations.remove(location)


def load_nuscenes_map(root: str | Path, location: str) -> Any:
    """``NuScenesMap`` of ``<root>/maps/expansion/<location>.json``; a clear error if missing."""
    from nuscenes.map_expansion.map_api import NuScenesMap

    path = Path(root) / "maps" / "expansion" / f"{location}.json"
    if not path.is_file():
        raise FileNotFoundError(f"nuScenes map expansion not found: {path}")
    with _known_location(location):
        return NuScenesMap(dataroot=str(root), map_name=location)
