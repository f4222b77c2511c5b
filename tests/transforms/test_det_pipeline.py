"""The detector's train pipeline on the tiny synthetic world, through DATASETS and a dataloader."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from perception.datasets.gt_database import create_gt_database
from perception.registry import DATASETS
from perception.structures import NUSCENES_CLASSES, DetSample
from perception.transforms import ObjectRangeFilter

SWEEPS = 2
RANGE = [-54.0, -54.0, -5.0, 54.0, 54.0, 3.0]


@pytest.fixture(scope="module")
def db_info(tiny_synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gtdb")
    return create_gt_database((tiny_synthetic_root / "nuscenes_infos_train.pkl", tiny_synthetic_root, SWEEPS), out)


def _dataset_cfg(root: Path, db_info: Path) -> dict:
    classes = list(NUSCENES_CLASSES)
    pipeline = [
        dict(type="PointsRangeFilter", point_cloud_range=RANGE),
        dict(type="ObjectRangeFilter", point_cloud_range=RANGE),
        dict(type="ObjectNameFilter", classes=classes),
        dict(type="ObjectSample", db_sampler=dict(
            info_path=str(db_info), data_root=str(db_info.parent), rate=1.0,
            prepare=dict(filter_by_difficulty=[-1], filter_by_min_points=dict(car=5, pedestrian=5)),
            classes=classes, sample_groups=dict(car=20, pedestrian=30, bus=4))),
        dict(type="GlobalRotScaleTrans", rot_range=[-0.785, 0.785], scale_ratio_range=[0.95, 1.05],
             translation_std=[0, 0, 0]),
        dict(type="RandomFlip3D", flip_ratio_bev_horizontal=0.5, flip_ratio_bev_vertical=0.5),
        dict(type="PointShuffle"),
        dict(type="PackDetInputs"),
    ]
    return dict(type="NuScenesDataset", ann_file="nuscenes_infos_train.pkl", data_root=str(root),
                load_sweeps=SWEEPS, with_cameras=False, pipeline=pipeline)


def test_train_item(tiny_synthetic_root: Path, db_info: Path) -> None:
    with DefaultScope.overwrite_default_scope("perception"):
        dataset = DATASETS.build(_dataset_cfg(tiny_synthetic_root, db_info))
    frame = dataset.get_frame(0)
    np.random.seed(0)
    item = dataset[0]
    points, sample = item["inputs"]["points"], item["data_samples"]
    assert isinstance(sample, DetSample) and points.dtype == torch.float32 and points.shape[1] == 6
    pasted = sample.metainfo["aug"]["object_sample"]
    assert sum(pasted.values()) > 0
    in_range = ObjectRangeFilter(RANGE)({"frame": frame})["frame"].boxes
    assert len(in_range) < len(frame.boxes)  # the filters ran
    assert len(sample.gt_boxes) == len(in_range) + sum(pasted.values())
    assert (sample.gt_boxes[:, 3:6] > 0).all() and sample.gt_labels.max() < len(NUSCENES_CLASSES)
    # the boxes still hold points after augmentation, in the augmented frame
    boxes = sample.gt_as_boxes()
    assert (boxes.count_points(points.numpy()) > 0).mean() > 0.95
    aug = sample.metainfo["aug"]
    assert aug["flow"][:3] == ["R", "S", "T"] and abs(aug["rotation"]) <= 0.785
    np.testing.assert_allclose(sample.lidar2global, frame.lidar2global)  # the original pose
    assert pickle.loads(pickle.dumps(dataset)) is not None  # picklable for dataloader workers


def test_dataloader_pseudo_collate_gives_lists(tiny_synthetic_root: Path, db_info: Path) -> None:
    with DefaultScope.overwrite_default_scope("perception"):
        loader = Runner.build_dataloader(dict(batch_size=2, num_workers=0,
                                              sampler=dict(type="DefaultSampler", shuffle=False),
                                              dataset=_dataset_cfg(tiny_synthetic_root, db_info)), seed=0)
        batch = next(iter(loader))
    assert isinstance(batch["inputs"]["points"], list) and len(batch["inputs"]["points"]) == 2
    assert all(isinstance(p, torch.Tensor) and p.shape[1] == 6 for p in batch["inputs"]["points"])
    samples = batch["data_samples"]
    assert isinstance(samples, list) and [type(s) for s in samples] == [DetSample, DetSample]
    assert samples[0].token != samples[1].token
