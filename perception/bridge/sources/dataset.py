"""Replay of a dataset (synthetic world, nuScenes, Argoverse 2) through the existing loaders."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ...datasets.base import FrameDataset
from ..errors import BridgeConfigError
from ..results import BridgeFrame

SYNTHETIC_INFO = "nuscenes_infos_{split}.pkl"


class DatasetSource:
    """Frames of a :class:`FrameDataset` in order (optionally looping, up to ``max_frames``)."""

    def __init__(self, dataset: FrameDataset, name: str, frame_id: str = "lidar", loop: bool = False,
                 max_frames: int | None = None) -> None:
        if len(dataset) == 0:
            raise BridgeConfigError(f"source {name}: the dataset has no frames")
        self.dataset, self.name, self.frame_id = dataset, name, frame_id
        self.loop, self.max_frames = loop, max_frames

    def __iter__(self) -> Iterator[BridgeFrame]:
        count = 0
        while True:
            for index in range(len(self.dataset)):
                if self.max_frames is not None and count >= self.max_frames:
                    return
                yield BridgeFrame(self.dataset.get_frame(index), self.frame_id, source=self.name)
                count += 1
            if not self.loop:
                return


def _info(path: Path, what: str) -> Path:
    if not path.is_file():
        raise BridgeConfigError(f"{what}: info file not found: {path}")
    return path.resolve()


def synthetic_source(data_root: str | Path = "data/synthetic", split: str = "val", sweeps: int = 9,
                     with_map: bool = True, **kwargs) -> DatasetSource:
    """The synthetic world in its nuScenes format (``data/synthetic``, written by ``make demo``)."""
    from ...datasets import NuScenesDataset

    root = Path(data_root)
    info = _info(root / SYNTHETIC_INFO.format(split=split),
                 "synthetic source (run `make demo` or tools/create_data.py synthetic first)")
    dataset = NuScenesDataset(ann_file=str(info), data_root=str(root.resolve()), load_sweeps=sweeps,
                              with_cameras=False, with_map=with_map)
    return DatasetSource(dataset, "synthetic", **kwargs)


def nuscenes_source(info_file: str | Path, data_root: str | Path, sweeps: int = 9, with_map: bool = False,
                    data_prefix: dict[str, str] | None = None, **kwargs) -> DatasetSource:
    """A nuScenes sequence from an info pickle (ours or mmdetection3d's)."""
    from ...datasets import NuScenesDataset

    dataset = NuScenesDataset(ann_file=str(_info(Path(info_file), "nuscenes source")),
                              data_root=str(Path(data_root).resolve()), data_prefix=data_prefix,
                              load_sweeps=sweeps, skip_missing_sweeps=True, with_cameras=False,
                              with_map=with_map)
    return DatasetSource(dataset, "nuscenes", **kwargs)


def av2_source(info_file: str | Path, data_root: str | Path, sweeps: int = 0, with_map: bool = False,
               **kwargs) -> DatasetSource:
    """An Argoverse 2 sensor log sequence from an info pickle (tools/create_data.py av2)."""
    from ...datasets import AV2SensorDataset

    dataset = AV2SensorDataset(ann_file=str(_info(Path(info_file), "av2 source")),
                               data_root=str(Path(data_root).resolve()), load_sweeps=sweeps, with_map=with_map)
    return DatasetSource(dataset, "av2", **kwargs)
