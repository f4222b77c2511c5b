"""Voxelized inputs of the sparse benchmark: the real nuScenes keyframe, a synthetic frame,
or random voxels (smoke tests).

Every source is voxelized the same way, as the encoder config says (default
``configs/sparse_encoder/sparse_encoder_nuscenes.py``, CenterPoint's nuScenes 0.075 m
setting): range ``[-54, -54, -5, 54, 54, 3]``, voxel ``0.075 x 0.075 x 0.2`` m (a
1440 x 1440 x 40 grid), features the mean of all the voxel's points' ``point_features``
(``x, y, z, intensity, time_lag``: mmdet3d's ``use_dim=[0, 1, 2, 3, 4]`` after multi-sweep
loading; dynamic voxelization, so no 10-point cap), sparse shape ``(41, 1440, 1440)`` (z, y,
x): the grid plus one z layer, as mmdet3d's SECOND/CenterPoint ``sparse_shape``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import Tensor

from perception_ops.voxelize import dynamic_voxelize, voxel_pooling

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_KEYFRAME = REPO_ROOT.parent / "shared" / "data" / "nuscenes-keyframe"
SYNTHETIC_ROOT = REPO_ROOT / "data" / "synthetic"
SWEEPS = 10


@dataclass(frozen=True)
class VoxelSetup:
    """Voxel grid, point columns and sparse shape of the encoder config."""

    voxel_size: tuple[float, float, float]
    point_cloud_range: tuple[float, ...]
    sparse_shape: tuple[int, int, int]
    features: tuple[str, ...]

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], where: str) -> "VoxelSetup":
        """From a config's ``voxel_size``, ``point_cloud_range``, ``point_features`` and
        ``model.sparse_shape``; a missing entry raises naming the config."""
        try:
            return cls(tuple(cfg["voxel_size"]), tuple(cfg["point_cloud_range"]),
                       tuple(int(v) for v in cfg["model"]["sparse_shape"]),
                       tuple(cfg["point_features"]))
        except KeyError as error:
            raise ValueError(f"{where}: the sparse benchmark needs {error} in the config "
                             f"(voxel_size, point_cloud_range, point_features, "
                             f"model.sparse_shape)") from error


@dataclass(frozen=True)
class SparseInput:
    """One voxelized frame: (N, 5) float32 features, (N, 4) int32 (batch, z, y, x) coords."""

    name: str
    features: Tensor
    coords: Tensor
    spatial_shape: tuple[int, int, int]
    num_points: int
    note: str

    @property
    def num_voxels(self) -> int:
        return int(self.coords.shape[0])

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "points": self.num_points, "voxels": self.num_voxels,
                "spatial_shape": list(self.spatial_shape), "note": self.note}


def voxelize_points(name: str, points: np.ndarray, columns: tuple[str, ...], note: str,
                    setup: VoxelSetup) -> SparseInput:
    """Mean-pool ``points`` (columns named by ``columns``) into the setup's grid."""
    missing = [c for c in setup.features if c not in columns]
    if missing:
        raise ValueError(f"input {name!r}: point columns {columns} lack {missing}")
    pts = torch.from_numpy(np.ascontiguousarray(
        points[:, [columns.index(c) for c in setup.features]], dtype=np.float32))
    cells = dynamic_voxelize(pts, setup.voxel_size, setup.point_cloud_range)
    feats, coords, _ = voxel_pooling(pts, cells, "mean")
    if coords.shape[0] == 0:
        raise ValueError(f"input {name!r}: no point inside {setup.point_cloud_range}")
    coords = torch.cat([torch.zeros_like(coords[:, :1]), coords], dim=1).contiguous()
    return SparseInput(name, feats.contiguous(), coords, setup.sparse_shape,
                       int(points.shape[0]), note)


def load_keyframe(setup: VoxelSetup, root: Path = SHARED_KEYFRAME) -> SparseInput:
    """The real nuScenes keyframe (with its sweeps when the info lists any)."""
    from perception.datasets import NuScenesDataset
    from perception.structures import CAMERA_NAMES_NUSCENES

    pickles = sorted(root.glob("*.pkl")) if root.is_dir() else []
    if not pickles:
        raise FileNotFoundError(f"no nuScenes keyframe info pickle in {root} (see "
                                f"../shared/data/README.md)")
    flat = {key: "" for key in ("pts", "sweeps", *CAMERA_NAMES_NUSCENES)}  # files side by side
    dataset = NuScenesDataset(ann_file=str(pickles[0].resolve()), data_root=str(root),
                              data_prefix=flat, load_sweeps=SWEEPS - 1, with_cameras=False)
    sweeps = len(dataset.get_data_info(0).get("lidar_sweeps") or [])
    frame = dataset.get_frame(0)
    note = (f"real nuScenes keyframe with {sweeps} sweeps" if sweeps else
            "real nuScenes keyframe alone: its info lists no sweeps (issue: '10 sweeps "
            "accumulated, or the keyframe alone if sweeps are absent'), time_lag = 0")
    return voxelize_points("nuscenes-keyframe", frame.points, frame.point_features, note, setup)


def load_synthetic(setup: VoxelSetup, root: Path = SYNTHETIC_ROOT) -> SparseInput:
    """The middle validation keyframe of the generated synthetic nuScenes set, 10 sweeps."""
    from perception.datasets import NuScenesDataset

    info = root / "nuscenes_infos_val.pkl"
    if not info.is_file():
        raise FileNotFoundError(f"synthetic infos not found at {info} (make it with "
                                f"tools/create_data.py synthetic --out {root})")
    dataset = NuScenesDataset(ann_file=str(info.resolve()), data_root=str(root),
                              load_sweeps=SWEEPS - 1, with_cameras=False)
    frame = dataset.get_frame(len(dataset) // 2)
    return voxelize_points("synthetic", frame.points, frame.point_features,
                           f"synthetic nuScenes keyframe {frame.token}, {SWEEPS} sweeps", setup)


def random_input(setup: VoxelSetup, num_voxels: int, seed: int = 0) -> SparseInput:
    """``num_voxels`` distinct voxels filling half of a 2-layer slab (LiDAR-like neighbour
    counts), random features; for smoke tests, not for reported figures."""
    if num_voxels < 1:
        raise ValueError(f"--voxels must be >= 1, got {num_voxels}")
    depth, height, width = setup.sparse_shape
    side = max(2, int(np.ceil(np.sqrt(num_voxels))))  # side * side * 2 cells, half filled
    if side > min(height, width) or depth < 2:
        raise ValueError(f"--voxels {num_voxels} does not fit a 2-layer slab of the grid")
    g = torch.Generator().manual_seed(seed)
    cells = torch.randperm(side * side * 2, generator=g)[:num_voxels]
    z, yx = cells // (side * side) + depth // 4, cells % (side * side)
    y0, x0 = (height - side) // 2, (width - side) // 2
    coords = torch.stack([torch.zeros_like(z), z, yx // side + y0, yx % side + x0], 1)
    feats = torch.randn(num_voxels, len(setup.features), generator=g)
    return SparseInput("random", feats, coords.to(torch.int32).contiguous(), setup.sparse_shape, 0,
                       f"{num_voxels} random voxels in a half-filled 2-layer slab (smoke test)")


LOADERS: dict[str, Callable[[VoxelSetup], SparseInput]] = {"nuscenes-keyframe": load_keyframe,
                                                 "synthetic": load_synthetic}
"""Real-data sources of ``--input all``, in report order."""


def load_inputs(choice: str, num_voxels: int,
                setup: VoxelSetup) -> tuple[list[SparseInput], list[str]]:
    """Inputs for ``--input choice`` (a source name, ``all`` or ``random``) and notes on the
    sources skipped because their files are absent."""
    if choice == "random":
        return [random_input(setup, num_voxels)], []
    names = list(LOADERS) if choice == "all" else [choice]
    unknown = [n for n in names if n not in LOADERS]
    if unknown:
        raise ValueError(f"unknown --input {choice!r}; known: all, random, {', '.join(LOADERS)}")
    inputs, notes = [], []
    for name in names:
        try:
            inputs.append(LOADERS[name](setup))
        except FileNotFoundError as error:
            notes.append(f"input {name} skipped: {error}")
    if not inputs:
        raise FileNotFoundError("; ".join(notes))
    return inputs, notes
