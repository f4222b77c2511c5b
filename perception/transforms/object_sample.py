"""Ground-truth copy-paste augmentation (mmdet3d's ``ObjectSample`` / ``DataBaseSampler``).

Objects are drawn from the database written by
:func:`perception.datasets.gt_database.create_gt_database` and pasted at the place they were
recorded (their LiDAR-frame box, velocity included): per class up to
``sample_groups[class] - existing`` (times ``rate``), dropping any candidate whose rotated
BEV footprint intersects an existing box or another kept candidate (shapely polygons).  Scene
points inside the pasted boxes are removed and the object points (stored relative to the box
centre with LiDAR axes) are put in front of the scene points.

Run it before the global augmentations; pasted boxes come from the same sensor, so they are
within range, but a range filter after it (as in mmdet3d configs) makes that certain.
"""
from __future__ import annotations

import dataclasses
import logging
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from mmengine.logging import print_log

from ..registry import TRANSFORMS
from ..structures import Boxes3D, Frame, FrameError

PREPARE_KEYS = ("filter_by_difficulty", "filter_by_min_points")
LOADER_KEYS = ("type", "coord_type", "load_dim", "use_dim", "backend_args")


def bev_collisions(boxes: np.ndarray) -> np.ndarray:
    """``(N, N)`` bool: whether the rotated BEV rectangles of ``(N, >=7)`` boxes intersect
    (touching counts; the diagonal is False)."""
    data = np.zeros((len(boxes), 9))
    data[:, :7] = np.asarray(boxes, dtype=np.float64)[:, :7]
    corners = Boxes3D(data, np.zeros(len(data))).corners()[:, :4, :2]
    polygons = shapely.polygons(corners)
    hits = shapely.intersects(polygons[:, None], polygons[None, :])
    np.fill_diagonal(hits, False)
    return hits


class DataBaseSampler:
    """Draws non-colliding objects from a ground-truth database.

    Args:
        info_path: ``*_dbinfos_<split>.pkl``; tried under ``data_root`` when not found as given.
        data_root: folder the entries' ``path`` are relative to (default: the pickle's folder).
        rate: multiplies the number of objects to draw per class.
        prepare: ``filter_by_difficulty`` (difficulties to drop) and ``filter_by_min_points``
            (``{class: minimum points}``).
        classes: the classes that may be sampled.
        sample_groups: ``{class: target count}`` of objects per frame after pasting.
        points_loader: optional mmdet3d-style ``dict(load_dim, use_dim)`` overriding the
            stored column count / choosing columns (default: the database's ``point_features``).
    """

    def __init__(self, info_path: str, data_root: str = "", rate: float = 1.0,
                 prepare: Mapping[str, Any] | None = None, classes: Sequence[str] = (),
                 sample_groups: Mapping[str, int] | None = None,
                 points_loader: Mapping[str, Any] | None = None) -> None:
        path = Path(info_path)
        if not path.is_file() and data_root and (Path(data_root) / path).is_file():
            path = Path(data_root) / path
        if not path.is_file():
            raise FileNotFoundError(f"ObjectSample: gt database info not found: {info_path} "
                                    "(build it with tools/create_data.py gt-database)")
        self.info_path = path
        self.data_root = Path(data_root) if data_root else path.parent
        if rate < 0:
            raise ValueError(f"ObjectSample: db_sampler.rate must be >= 0, got {rate}")
        self.rate = float(rate)
        self.classes = tuple(classes)
        self.sample_groups = {str(k): int(v) for k, v in dict(sample_groups or {}).items()}
        unknown = sorted(set(self.sample_groups) - set(self.classes))
        if unknown:
            raise ValueError(f"ObjectSample: db_sampler.sample_groups names {unknown}, not in classes {self.classes}")
        metainfo, dbinfos = self._load(path)
        self.dbinfos = self._prepare(dbinfos, dict(prepare or {}))
        self.load_dim, self.use_dim, self.feature_names = self._columns(metainfo, dict(points_loader or {}))
        for name in self.sample_groups:
            if not self.dbinfos.get(name):
                print_log(f"ObjectSample: {path} has no {name!r} objects left after filtering; none are pasted",
                          logger="current", level=logging.WARNING)

    @staticmethod
    def _load(path: Path) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
        with path.open("rb") as handle:
            try:
                content = pickle.load(handle)
            except (pickle.UnpicklingError, EOFError) as error:
                raise FrameError(f"gt database info {path} is not a readable pickle: {error}") from error
        if not isinstance(content, dict) or not isinstance(content.get("dbinfos"), dict):
            raise FrameError(f"gt database info {path} has no 'dbinfos' mapping: it was not written by "
                             "create_gt_database (mmdet3d dbinfos, with bottom-centre boxes, are not read)")
        return dict(content.get("metainfo") or {}), content["dbinfos"]

    def _prepare(self, dbinfos: dict[str, list[dict[str, Any]]],
                 prepare: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
        """mmdet3d's ``filter_by_difficulty`` / ``filter_by_min_points`` on the sampled classes."""
        unknown = sorted(set(prepare) - set(PREPARE_KEYS))
        if unknown:
            raise ValueError(f"ObjectSample: unknown db_sampler.prepare keys {unknown}; accepted {PREPARE_KEYS}")
        removed = set(prepare.get("filter_by_difficulty", ()))
        min_points = {str(k): int(v) for k, v in dict(prepare.get("filter_by_min_points", {})).items()}
        kept = {}
        for name in self.sample_groups:
            kept[name] = [entry for entry in dbinfos.get(name, [])
                          if entry.get("difficulty", 0) not in removed
                          and int(entry["num_points_in_gt"]) >= min_points.get(name, 0)]
        return kept

    def _columns(self, metainfo: dict[str, Any],
                 loader: dict[str, Any]) -> tuple[int, list[int], tuple[str, ...]]:
        """Columns per stored point, the columns used and their feature names."""
        unknown = sorted(set(loader) - set(LOADER_KEYS))
        if unknown:
            raise ValueError(f"ObjectSample: unknown db_sampler.points_loader keys {unknown}; accepted {LOADER_KEYS}")
        stored = tuple(metainfo.get("point_features") or ())
        load_dim = int(loader.get("load_dim", len(stored)))
        if load_dim < 3:
            raise FrameError(f"gt database info {self.info_path}: no point_features in metainfo; "
                             "give db_sampler.points_loader=dict(load_dim=...)")
        use_dim = loader.get("use_dim", load_dim)
        use = list(range(use_dim)) if isinstance(use_dim, int) else [int(i) for i in use_dim]
        if max(use) >= load_dim:
            raise ValueError(f"ObjectSample: points_loader.use_dim {use_dim} exceeds load_dim {load_dim}")
        names = stored if len(stored) == load_dim else ("x", "y", "z") + tuple(f"f{i}" for i in range(3, load_dim))
        return load_dim, use, tuple(names[i] for i in use)

    def sample(self, existing: np.ndarray, existing_names: Sequence[str]) -> list[dict[str, Any]]:
        """Database entries to paste next to the ``(M, >=7)`` ``existing`` boxes."""
        avoid = np.asarray(existing, dtype=np.float64).reshape(-1, np.shape(existing)[-1])[:, :7]
        chosen: list[dict[str, Any]] = []
        for name, target in self.sample_groups.items():
            count = int(np.round(self.rate * (target - sum(n == name for n in existing_names))))
            pool = self.dbinfos.get(name, [])
            if count <= 0 or not pool:
                continue
            picks = [pool[i] for i in np.random.choice(len(pool), min(count, len(pool)), replace=False)]
            candidates = np.stack([np.asarray(entry["box3d_lidar"], dtype=np.float64)[:7] for entry in picks])
            collide = bev_collisions(np.concatenate([avoid, candidates]))
            kept = []
            for index in range(len(avoid), len(avoid) + len(picks)):  # mmdet3d's greedy order
                if collide[index].any():
                    collide[index] = False
                    collide[:, index] = False
                else:
                    kept.append(index - len(avoid))
            chosen += [picks[i] for i in kept]
            avoid = np.concatenate([avoid, candidates[kept]])
        return chosen

    def load_points(self, entry: Mapping[str, Any]) -> np.ndarray:
        """The object's points (used columns) moved back to its box in the LiDAR frame."""
        path = self.data_root / entry["path"]
        if not path.is_file():
            raise FileNotFoundError(f"ObjectSample: object point file not found: {path} (from {self.info_path})")
        raw = np.fromfile(path, dtype=np.float32)
        if raw.size % self.load_dim:
            raise FrameError(f"object point file {path} has {raw.size} floats, not a multiple of {self.load_dim}")
        points = raw.reshape(-1, self.load_dim)[:, self.use_dim].copy()
        points[:, :3] += np.asarray(entry["box3d_lidar"][:3], dtype=np.float32)
        return points


def _column_map(frame: Frame, available: tuple[str, ...], source: Path) -> list[int]:
    missing = [name for name in frame.point_features if name not in available]
    if missing:
        raise FrameError(f"ObjectSample: frame {frame.token} has point features {frame.point_features} but the "
                         f"gt database {source} has {available} (missing {missing}); build the database with the "
                         "same load_sweeps as the dataset")
    return [available.index(name) for name in frame.point_features]


@TRANSFORMS.register_module()
class ObjectSample:
    """Paste database objects into the frame (see the module docstring).

    ``db_sampler`` holds :class:`DataBaseSampler`'s arguments (an mmdet3d ``type`` key is
    accepted and ignored).  The counts pasted per class go to ``results["aug"]["object_sample"]``.
    """

    def __init__(self, db_sampler: Mapping[str, Any]) -> None:
        options = dict(db_sampler)
        options.pop("type", None)
        try:
            self.sampler = DataBaseSampler(**options)
        except TypeError as error:
            raise ValueError(f"ObjectSample: bad db_sampler arguments {sorted(options)}: {error}") from error

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        frame: Frame = results["frame"]
        names = [frame.class_names[label] for label in frame.boxes.labels]
        entries = self.sampler.sample(frame.boxes.data, names)
        aug = dict(results.get("aug") or {})
        aug["object_sample"] = {name: sum(e["name"] == name for e in entries) for name in self.sampler.sample_groups}
        results["aug"] = aug
        if not entries:
            return results
        unknown = sorted({e["name"] for e in entries} - set(frame.class_names))
        if unknown:
            raise FrameError(f"ObjectSample: sampled classes {unknown} are not in frame {frame.token}'s "
                             f"class_names {frame.class_names}")
        columns = _column_map(frame, self.sampler.feature_names, self.sampler.info_path)
        pasted = Boxes3D(
            np.stack([np.asarray(e["box3d_lidar"], dtype=np.float64)[:9] for e in entries]),
            [frame.class_names.index(e["name"]) for e in entries],
            track_ids=[str(e.get("track_id", "")) for e in entries],
            num_lidar_pts=[int(e["num_points_in_gt"]) for e in entries],
        )
        object_points = np.concatenate([self.sampler.load_points(e)[:, columns] for e in entries])
        scene = frame.points[~pasted.points_in_any_box(frame.points)]
        boxes = frame.boxes
        merged = Boxes3D(np.concatenate([boxes.data, pasted.data]), np.concatenate([boxes.labels, pasted.labels]),
                         list(boxes.track_ids) + list(pasted.track_ids),
                         np.concatenate([boxes.num_lidar_pts, pasted.num_lidar_pts]))
        results["frame"] = dataclasses.replace(frame, points=np.concatenate([object_points, scene]), boxes=merged)
        return results
