"""PackDetInputs and the map targets: location into metainfo, stale map ground truth rejected."""
from __future__ import annotations

import numpy as np
import pytest

from perception.structures import Frame, MapElement, make_transform, yaw_matrix
from perception.transforms import GlobalRotScaleTrans, PackDetInputs, RandomFlip3D
from perception.transforms.bev_seg_raster import BEVSegAugmentationError
from perception.transforms.map_gt import LoadVectorMapGT, MapGTStaleError

POSE = make_transform(yaw_matrix(0.3), np.array([100.0, 50.0, 0.0]))


def make_frame(location: str = "synth-town") -> Frame:
    world = np.array([[100.0, 40.0, 0.0], [100.0, 60.0, 0.0]])
    points = np.c_[np.random.default_rng(0).uniform(-10, 10, (20, 3)), np.ones(20)].astype(np.float32)
    return Frame(token="t0", timestamp=1.0, dataset="test", points=points,
                 point_features=("x", "y", "z", "intensity"), lidar2ego=np.eye(4), ego2global=POSE,
                 class_names=("car",), map_elements=[MapElement("divider", world)], location=location)


def test_location_packed_without_a_transform() -> None:
    sample = PackDetInputs()({"frame": make_frame("boston-seaport")})["data_samples"]
    assert sample.metainfo["location"] == "boston-seaport"
    # an explicit pipeline value (e.g. the old HRMapLocation transform) wins over the frame's
    sample = PackDetInputs(meta_keys=("location",))({"frame": make_frame("a"), "location": "b"})["data_samples"]
    assert sample.metainfo["location"] == "b"
    assert "location" not in PackDetInputs()({"frame": make_frame("")})["data_samples"].metainfo


def test_old_hrmap_location_transform_still_works() -> None:
    from perception.models.map.hrmap_transforms import HRMapLocation
    results = HRMapLocation()({"frame": make_frame("singapore-onenorth")})
    sample = PackDetInputs(meta_keys=("sample_idx", "aug", "location"))(results)["data_samples"]
    assert sample.metainfo["location"] == "singapore-onenorth"


def test_map_gt_after_augmentation_packs() -> None:
    np.random.seed(0)
    results = RandomFlip3D(1.0, 0.0)(GlobalRotScaleTrans((0.4, 0.4), (1.0, 1.0))({"frame": make_frame()}))
    results = LoadVectorMapGT(pc_range=(-15.0, -30.0, 15.0, 30.0))(results)
    sample = PackDetInputs()(results)["data_samples"]
    assert sample.gt_map is results["gt_map"] and len(sample.gt_map) == 1


def test_stale_map_gt_rejected_at_packing() -> None:
    np.random.seed(0)
    results = LoadVectorMapGT(pc_range=(-15.0, -30.0, 15.0, 30.0))({"frame": make_frame()})
    stale = GlobalRotScaleTrans((0.4, 0.4), (1.0, 1.0))(results)  # augmented after the GT was built
    with pytest.raises(MapGTStaleError, match="LoadVectorMapGT after"):
        PackDetInputs()(stale)


def test_stale_bev_seg_rejected_at_packing() -> None:
    results = {"frame": make_frame(), "gt_bev_seg": np.zeros((6, 4, 4), bool), "bev_seg_aug_matrix": np.eye(4)}
    PackDetInputs()(dict(results))  # current: packs
    np.random.seed(0)
    stale = RandomFlip3D(1.0, 0.0)(results)
    with pytest.raises(BEVSegAugmentationError, match="after LoadBEVSegmentation"):
        PackDetInputs()(stale)
