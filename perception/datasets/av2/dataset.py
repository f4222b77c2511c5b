"""``AV2SensorDataset``: Argoverse 2 sensor-dataset frames from ``av2_infos_<split>.pkl``.

Points are ``x, y, z, intensity`` in the ego frame (AV2's LiDAR frame, ``lidar2ego`` = I),
plus ``time_lag`` when ``load_sweeps > 0``: older sweeps are moved into the keyframe's ego
frame through the city poses (``inv(ego2global_key) @ ego2global_sweep``).  Boxes come from
the info file; ``class_mapping`` picks AV2's own 26 classes (``"av2"``, default) or the ten
nuScenes classes (``"nuscenes"``).  Map elements (``with_map=True``) are in the city frame.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from av2.map.map_api import ArgoverseStaticMap

from perception.registry import DATASETS
from perception.structures import Boxes3D, CameraView, Frame, FrameError, invert_transform

from ..base import FrameDataset
from .categories import class_mapping, labels_for
from .log_io import SWEEP_COLUMNS, load_sweep
from .map_elements import load_static_map, map_elements_near


@DATASETS.register_module()
class AV2SensorDataset(FrameDataset):
    """Frames of the AV2 sensor dataset.

    Args:
        ann_file: info pickle written by ``create_data.py av2``.
        data_root: the ``--root`` the infos were made from; info paths are relative to it.
        load_sweeps: number of previous sweeps to merge (0: keyframe only, no ``time_lag``).
        with_map: attach vector map elements within ``map_radius`` metres of the ego.
        load_images: decode the ring-camera JPEGs (raises :class:`FrameError` if missing).
        class_mapping: ``"av2"`` (AV2 competition categories) or ``"nuscenes"``.
        filter_empty_gt: drop boxes whose ``num_interior_pts`` is 0.
    """

    def __init__(
        self,
        ann_file: str = "",
        data_root: str = "",
        load_sweeps: int = 0,
        with_map: bool = False,
        map_radius: float = 50.0,
        load_images: bool = False,
        class_mapping: str = "av2",
        filter_empty_gt: bool = False,
        pipeline: list | None = None,
        test_mode: bool = False,
        **kwargs: Any,
    ) -> None:
        if load_sweeps < 0:
            raise ValueError(f"AV2SensorDataset: load_sweeps must be >= 0, got {load_sweeps}")
        self.load_sweeps = load_sweeps
        self.with_map = with_map
        self.map_radius = map_radius
        self.load_images = load_images
        self.class_names, _ = _checked_mapping(class_mapping)
        self.class_mapping = class_mapping
        self.filter_empty_gt = filter_empty_gt
        self._maps: dict[str, ArgoverseStaticMap] = {}
        super().__init__(
            ann_file=ann_file, data_root=data_root, pipeline=pipeline or [], test_mode=test_mode, **kwargs
        )

    def load_data_list(self) -> list[dict]:
        """Read the info pickle, with a clear error when it is missing."""
        if not Path(self.ann_file).is_file():
            raise FileNotFoundError(
                f"AV2 info file not found: {self.ann_file} (run tools/create_data.py av2 first)"
            )
        return super().load_data_list()

    def parse_data_info(self, raw_data_info: dict) -> dict:
        """Make the root-relative paths of one record absolute."""
        info = dict(raw_data_info)
        info["lidar_path"] = self._absolute(info["lidar_path"])
        info["map_dir"] = self._absolute(info["map_dir"])
        info["sweeps"] = [{**s, "lidar_path": self._absolute(s["lidar_path"])} for s in info["sweeps"]]
        info["cameras"] = {
            name: {**cam, "image_path": self._absolute(cam["image_path"])}
            for name, cam in info["cameras"].items()
        }
        return info

    def frame_from_info(self, info: dict[str, Any]) -> Frame:
        """Read the sweeps (and map, images) of one record into a :class:`Frame`."""
        points, features = self._load_points(info)
        frame = Frame(
            token=info["token"],
            timestamp=float(info["timestamp"]),
            dataset="av2",
            points=points,
            point_features=features,
            lidar2ego=np.asarray(info["lidar2ego"]),
            ego2global=np.asarray(info["ego2global"]),
            class_names=self.class_names,
            boxes=self._boxes(info),
            cameras=self._cameras(info),
            scene=info["log_id"],
            location=info.get("location", ""),
            lidar_path=info["lidar_path"],
        )
        if self.with_map:
            avm = self._static_map(info["log_id"], info["map_dir"])
            frame.map_elements = map_elements_near(avm, frame.ego2global[:2, 3], self.map_radius)
        return frame

    def _absolute(self, path: str) -> str:
        return path if os.path.isabs(path) or not self.data_root else os.path.join(self.data_root, path)

    def _load_points(self, info: dict[str, Any]) -> tuple[np.ndarray, tuple[str, ...]]:
        """Keyframe points, plus ``load_sweeps`` older sweeps moved into the keyframe's ego frame."""
        points = load_sweep(info["lidar_path"])
        if self.load_sweeps == 0:
            return points, SWEEP_COLUMNS
        global2key = invert_transform(np.asarray(info["ego2global"]))
        merged = [np.concatenate([points, np.zeros((len(points), 1), np.float32)], axis=1)]
        for sweep in info["sweeps"][: self.load_sweeps]:
            older = load_sweep(sweep["lidar_path"]).astype(np.float64)
            sweep2key = global2key @ np.asarray(sweep["ego2global"])
            older[:, :3] = older[:, :3] @ sweep2key[:3, :3].T + sweep2key[:3, 3]
            lag = np.full((len(older), 1), float(info["timestamp"]) - float(sweep["timestamp"]))
            merged.append(np.concatenate([older, lag], axis=1).astype(np.float32))
        return np.concatenate(merged, axis=0), SWEEP_COLUMNS + ("time_lag",)

    def _boxes(self, info: dict[str, Any]) -> Boxes3D:
        """Ground truth under the chosen vocabulary (boxes of unmapped categories dropped)."""
        annos = info.get("annos")
        if annos is None or len(annos["names"]) == 0:
            return Boxes3D.empty()
        try:
            keep, labels = labels_for(annos["names"], self.class_mapping)
        except ValueError as error:
            raise FrameError(f"frame {info['token']}: {error}") from error
        data = np.asarray(annos["boxes"], dtype=np.float64)
        if data.shape != (len(annos["names"]), 9) or not np.isfinite(data[:, :7]).all():
            raise FrameError(f"frame {info['token']}: malformed or non-finite boxes {data.shape}")
        boxes = Boxes3D(data[keep], labels, [annos["track_ids"][i] for i in keep],
                        np.asarray(annos["num_lidar_pts"])[keep])
        if self.filter_empty_gt:
            boxes = boxes[boxes.num_lidar_pts > 0]
        return boxes

    def _cameras(self, info: dict[str, Any]) -> dict[str, CameraView]:
        """Ring-camera views; images are decoded only with ``load_images=True``."""
        views = {}
        for name, cam in info["cameras"].items():
            views[name] = CameraView(
                name=name, image_path=cam["image_path"], cam2img=np.asarray(cam["cam2img"]),
                cam2ego=np.asarray(cam["cam2ego"]), timestamp=float(cam["timestamp"]),
                ego2global=cam.get("ego2global"), image_size=tuple(cam["image_size"]),
            )
            if self.load_images:
                views[name].load_image()
        return views

    def _static_map(self, log_id: str, map_dir: str) -> ArgoverseStaticMap:
        """The log's vector map, loaded once per dataset instance."""
        if log_id not in self._maps:
            self._maps[log_id] = load_static_map(map_dir)
        return self._maps[log_id]


def _checked_mapping(name: str) -> tuple[tuple[str, ...], Any]:
    """``class_mapping`` with the config key named in the error."""
    try:
        return class_mapping(name)
    except ValueError as error:
        raise ValueError(f"AV2SensorDataset.class_mapping: {error}") from error
