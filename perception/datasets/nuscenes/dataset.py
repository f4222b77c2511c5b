"""The nuScenes dataset: info pickles (ours or mmdetection3d 1.x's, same reader) -> Frames."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from ...registry import DATASETS
from ...structures import NUSCENES_CLASSES, Frame, FrameError
from ..base import FrameDataset
from ..mmdet3d_info import (NUSCENES_DATA_PREFIX, InfoPaths, class_names_of, frame_from_mmdet3d_info,
                            load_info_file)
from .map_elements import NuScenesMapCache


@DATASETS.register_module()
class NuScenesDataset(FrameDataset):
    """nuScenes keyframes as :class:`Frame` objects.

    Args:
        ann_file: info pickle written by ``tools/create_data.py nuscenes`` or by mmdetection3d.
        data_root: nuScenes root; ``data_prefix`` entries (``pts``, ``sweeps``, ``CAM_*``,
            defaults: the standard ``samples/``/``sweeps/`` folders) are relative to it.
        load_sweeps: number of previous LiDAR sweeps merged into the points (adds ``time_lag``).
        skip_missing_sweeps: log and skip missing sweep files instead of raising.
        with_cameras: attach the six cameras (images are decoded lazily; files must exist).
        with_map: attach map elements within ``map_radius`` metres of the ego (needs
            ``maps/expansion/<location>.json`` and infos with ``location``, i.e. ours).
    """

    METAINFO: dict[str, Any] = {"classes": NUSCENES_CLASSES, "dataset": "nuscenes"}

    def __init__(
        self,
        ann_file: str,
        data_root: str = "",
        data_prefix: Mapping[str, str] | None = None,
        load_sweeps: int = 0,
        skip_missing_sweeps: bool = False,
        with_cameras: bool = True,
        with_map: bool = False,
        map_radius: float = 50.0,
        pipeline: Sequence[Any] = (),
        test_mode: bool = False,
        **kwargs: Any,
    ) -> None:
        if load_sweeps < 0:
            raise ValueError(f"load_sweeps must be >= 0, got {load_sweeps}")
        self.load_sweeps = int(load_sweeps)
        self.skip_missing_sweeps = skip_missing_sweeps
        self.with_cameras = with_cameras
        self.with_map = with_map
        self.map_radius = float(map_radius)
        self.class_names: tuple[str, ...] = NUSCENES_CLASSES
        self._maps = NuScenesMapCache(data_root)
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            data_prefix={**NUSCENES_DATA_PREFIX, **dict(data_prefix or {})},
            pipeline=list(pipeline),
            test_mode=test_mode,
            **kwargs,
        )

    def load_data_list(self) -> list[dict[str, Any]]:
        """Read the info pickle (validated) and take the class names from its metainfo."""
        metainfo, data_list = load_info_file(self.ann_file)
        self.class_names = class_names_of(metainfo)
        self._metainfo["classes"] = self.class_names
        return data_list

    def frame_from_info(self, info: dict[str, Any]) -> Frame:
        """Read points (and sweeps), cameras and, if asked, the map around the ego."""
        frame = frame_from_mmdet3d_info(
            info,
            InfoPaths(data_root="", data_prefix=self.data_prefix),  # prefixes already joined to data_root
            class_names=self.class_names,
            load_sweeps=self.load_sweeps,
            with_cameras=self.with_cameras,
            skip_missing_sweeps=self.skip_missing_sweeps,
        )
        if self.with_map:
            if not frame.location:
                raise FrameError(
                    f"{self.ann_file}: record {frame.token} has no 'location' (mmdet3d infos lack it); "
                    "regenerate the infos with tools/create_data.py nuscenes or set with_map=False"
                )
            frame.map_elements = self._maps.elements_around(frame.location, frame.ego2global[:2, 3],
                                                            self.map_radius)
        return frame
