"""``LoadBEVSegmentation``: the BEV map-segmentation target of a frame, from the nuScenes map.

The map expansion of the frame's location (``<data_root>/maps/expansion/<location>.json``, the
synthetic world writes one too) is opened with the devkit's ``NuScenesMap`` once per location
and indexed per class; each frame then rasterizes the classes into the LiDAR-frame BEV grid
(columns along +x, rows along +y; default BEVFusion's 200 x 200 cells of 0.5 m).

Place it *after* the 3-D augmentations (``GlobalRotScaleTrans``, ``RandomFlip3D``): it reads
their record ``results["aug"]["lidar_aug_matrix"]`` and draws the map in the augmented frame,
so the target turns, scales and mirrors with the points.  It records the matrix it used in
``results["bev_seg_aug_matrix"]``; a later geometric augmentation would make the target stale,
which :func:`check_bev_seg_consistent` detects.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..datasets.nuscenes.map_api import load_nuscenes_map
from ..registry import TRANSFORMS
from ..structures import Frame
from ..structures.geometry import BEVGrid
from .bev_seg_raster import (BEV_SEG_CLASSES, BEVSegAugmentationError, ClassIndex, build_class_indices,
                             class_layers, rasterize_classes, world_to_pixel)


def check_bev_seg_consistent(results: Mapping[str, Any]) -> None:
    """Raise :class:`BEVSegAugmentationError` if an augmentation ran after the target was drawn."""
    if "bev_seg_aug_matrix" not in results:
        return
    current = np.asarray((results.get("aug") or {}).get("lidar_aug_matrix", np.eye(4)))
    if not np.allclose(current, results["bev_seg_aug_matrix"]):
        raise BEVSegAugmentationError(
            "a 3-D augmentation ran after LoadBEVSegmentation; move LoadBEVSegmentation after "
            f"{(results.get('aug') or {}).get('flow')} in the pipeline")


@TRANSFORMS.register_module()
class LoadBEVSegmentation:
    """Put ``results["gt_bev_seg"]`` (``(C, H, W)`` bool) for the frame's map location.

    Args:
        data_root: folder holding ``maps/expansion/<location>.json``; ``None``: the dataset's
            ``data_root`` (``results["data_root"]``), so a config that points the val set at
            another world needs to change only the dataset.
        classes: channel order (default BEVFusion's six classes).
        x_range, y_range: grid extent in metres in the LiDAR frame.
        resolution: metres per cell.
        line_width: width in metres with which divider lines are drawn.
        layers: optional ``{class: [map layer, ...]}`` overriding the default class layers.
    """

    def __init__(self, data_root: str | None = None, classes: Sequence[str] = BEV_SEG_CLASSES,
                 x_range: Sequence[float] = (-50.0, 50.0), y_range: Sequence[float] = (-50.0, 50.0),
                 resolution: float = 0.5, line_width: float = 1.0,
                 layers: Mapping[str, Sequence[str]] | None = None) -> None:
        if not classes:
            raise ValueError("LoadBEVSegmentation: classes must not be empty")
        if line_width <= 0:
            raise ValueError(f"LoadBEVSegmentation: line_width must be positive, got {line_width}")
        self.data_root = None if data_root is None else str(data_root)
        self.classes = tuple(classes)
        (x_min, x_max), (y_min, y_max) = [(float(a), float(b)) for a, b in (x_range, y_range)]
        self.grid = BEVGrid((x_min, x_max), (y_min, y_max), float(resolution))
        self.line_width = float(line_width)
        self.layers = class_layers(self.classes, layers)
        self._indices: dict[tuple[str, str], dict[str, ClassIndex]] = {}

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the loaded maps (dataloader workers rebuild what they use)."""
        return {**self.__dict__, "_indices": {}}

    def indices(self, location: str, data_root: str | None = None) -> dict[str, ClassIndex]:
        """Per-class indices of ``location`` under ``data_root`` (default: the configured one),
        built on first use."""
        root = data_root if self.data_root is None else self.data_root
        if root is None:
            raise ValueError("LoadBEVSegmentation: data_root=None needs the dataset's root in "
                             "results['data_root'] (FrameDataset puts it there)")
        key = (str(root), location)
        if key not in self._indices:
            nusc_map = load_nuscenes_map(Path(root), location)
            self._indices[key] = build_class_indices(nusc_map, self.layers, self.line_width)
        return self._indices[key]

    def rasterize_frame(self, frame: Frame, lidar_aug_matrix: np.ndarray | None = None,
                        data_root: str | None = None) -> np.ndarray:
        """``(C, H, W)`` bool target of ``frame`` in its (augmented) LiDAR frame."""
        if not frame.location:
            raise ValueError(f"LoadBEVSegmentation: frame {frame.token} has no map location "
                             "(infos without 'location'; regenerate them with tools/create_data.py)")
        world2pixel = world_to_pixel(frame.lidar2global, self.grid, lidar_aug_matrix)
        return rasterize_classes(self.indices(frame.location, data_root), self.classes, world2pixel, self.grid)

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        frame = results.get("frame")
        if not isinstance(frame, Frame):
            raise KeyError(f"LoadBEVSegmentation: the pipeline dict needs a 'frame' (a Frame), got keys "
                           f"{sorted(results)}")
        aug_matrix = np.asarray((results.get("aug") or {}).get("lidar_aug_matrix", np.eye(4)), dtype=np.float64)
        results["gt_bev_seg"] = self.rasterize_frame(frame, aug_matrix, results.get("data_root"))
        results["bev_seg_aug_matrix"] = aug_matrix
        return results

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(classes={self.classes}, grid={self.grid}, "
                f"line_width={self.line_width})")
