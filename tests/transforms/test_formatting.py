"""PackDetInputs and DetSample: the tensors and metadata the detector contract promises."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from det_frames import FEATURES, make_frame
from mmengine.dataset import pseudo_collate

from perception.registry import TRANSFORMS
from perception.structures import Boxes3D, DetSample
from perception.transforms.formatting import PackDetInputs


def test_pack_frame_into_points_and_sample() -> None:
    frame = make_frame()
    aug = {"rotation": 0.1, "flow": ["R"]}
    packed = PackDetInputs()({"frame": frame, "sample_idx": 4, "aug": aug, "other": 1})
    points, sample = packed["inputs"]["points"], packed["data_samples"]
    assert set(packed) == {"inputs", "data_samples"} and set(packed["inputs"]) == {"points"}
    assert points.dtype == torch.float32 and points.shape == frame.points.shape
    np.testing.assert_array_equal(points.numpy(), frame.points)
    assert points.data_ptr() != frame.points.ctypes.data  # a copy: the model may write into it
    assert sample.gt_boxes.dtype == torch.float32 and sample.gt_boxes.shape == (4, 9)
    np.testing.assert_allclose(sample.gt_boxes.numpy(), frame.boxes.data.astype(np.float32))
    assert torch.isnan(sample.gt_boxes[2, 7:]).all()
    assert sample.gt_labels.dtype == torch.int64 and sample.gt_labels.tolist() == [0, 3, 7, 8]
    np.testing.assert_allclose(sample.lidar2global, frame.ego2global @ frame.lidar2ego)
    assert (sample.token, sample.dataset, sample.timestamp, sample.scene) == ("tok", "nuscenes", 1.5, "scene-x")
    assert sample.class_names == frame.class_names and sample.pred is None
    assert sample.metainfo["sample_idx"] == 4 and sample.metainfo["aug"] == aug and "other" not in sample.metainfo
    assert sample.metainfo["point_features"] == FEATURES and sample.metainfo["lidar_path"] == "/nowhere/tok.bin"
    assert TRANSFORMS.get("PackDetInputs") is PackDetInputs


def test_frame_without_boxes_and_missing_frame() -> None:
    frame = dataclasses.replace(make_frame(), boxes=Boxes3D.empty())
    sample = PackDetInputs()({"frame": frame})["data_samples"]
    assert sample.gt_boxes.shape == (0, 9) and sample.gt_labels.shape == (0,) and sample.metainfo.get("aug") is None
    with pytest.raises(KeyError, match=r"needs a 'frame'.*'points'"):
        PackDetInputs()({"points": np.zeros((3, 4))})
    with pytest.raises(KeyError, match="of type dict"):
        PackDetInputs()({"frame": {}})


def test_det_sample_to_device_and_checks() -> None:
    sample = PackDetInputs()({"frame": make_frame()})["data_samples"]
    moved = sample.to("meta")
    assert moved.gt_boxes.device.type == "meta" and moved.gt_labels.device.type == "meta"
    assert sample.gt_boxes.device.type == "cpu" and moved is not sample and moved.token == sample.token
    np.testing.assert_allclose(sample.gt_as_boxes().data, sample.gt_boxes.double().numpy())
    with pytest.raises(ValueError, match=r"gt_boxes must be \(M, 9\)"):
        DetSample("t", ("car",), np.eye(4), torch.zeros(2, 7), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="2 gt_boxes but gt_labels"):
        DetSample("t", ("car",), np.eye(4), torch.zeros(2, 9), torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="lidar2global must be 4x4"):
        DetSample("t", ("car",), np.eye(3), torch.zeros(0, 9), torch.zeros(0, dtype=torch.int64))


def test_pseudo_collate_gives_lists() -> None:
    items = [PackDetInputs()({"frame": make_frame(seed=seed)}) for seed in range(2)]
    batch = pseudo_collate(items)
    assert isinstance(batch["inputs"]["points"], list) and len(batch["inputs"]["points"]) == 2
    assert all(isinstance(s, DetSample) for s in batch["data_samples"])
    assert batch["inputs"]["points"][1].shape == items[1]["inputs"]["points"].shape
