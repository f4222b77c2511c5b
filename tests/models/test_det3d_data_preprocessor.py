"""Det3DDataPreprocessor: batch index in coors, hard / dynamic voxels, training max_voxels,
casting and moving samples, corrupt clouds named by token, config errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from perception.models.data_preprocessors import Det3DDataPreprocessor
from perception.registry import MODELS
from perception.structures.det_sample import DetSample

RANGE = [-8.0, -6.0, -2.0, 8.0, 6.0, 2.0]
VOXEL = [0.5, 0.5, 0.5]


def sample(token: str, boxes: int = 1) -> DetSample:
    return DetSample(token=token, class_names=("car", "pedestrian"), lidar2global=np.eye(4),
                     gt_boxes=torch.ones(boxes, 9), gt_labels=torch.zeros(boxes, dtype=torch.int64))


def hard(max_voxels=(100, 100), **kw) -> Det3DDataPreprocessor:
    return MODELS.build(dict(type="Det3DDataPreprocessor", voxel_layer=dict(
        type="HardVoxelizer", voxel_size=VOXEL, point_cloud_range=RANGE, max_num_points=3,
        max_voxels=list(max_voxels)), **kw))


def batch(*clouds: list[list[float]], dtype=torch.float32) -> dict:
    return {"inputs": {"points": [torch.tensor(c, dtype=dtype) for c in clouds]},
            "data_samples": [sample(f"tok{i}") for i in range(len(clouds))]}


CLOUD_A = [[1.1, 2.2, 0.1, 5.0], [1.2, 2.3, 0.2, 7.0], [-7.9, 5.9, -1.9, 1.0], [20.0, 0.0, 0.0, 1.0]]
CLOUD_B = [[-3.3, -4.4, 1.3, 2.0]]


def cell(x: float, y: float, z: float) -> list[int]:
    return [int(np.floor((v - lo) / s)) for v, lo, s in zip((z, y, x), RANGE[2::-1], VOXEL[::-1])]


def test_hard_batch_of_two_has_batch_index_in_coors():
    out = hard()(batch(CLOUD_A, CLOUD_B, dtype=torch.float64), training=True)
    vox = out["inputs"]["voxels"]
    coors = vox["coors"].tolist()
    # cloud 0: two points share a voxel, one in the corner cell, one out of range (dropped)
    assert coors == [[0, *cell(1.1, 2.2, 0.1)], [0, 0, 23, 0], [1, *cell(-3.3, -4.4, 1.3)]]
    assert coors[0] == [0, 4, 16, 18]
    assert vox["num_points"].tolist() == [2, 1, 1]
    assert vox["voxels"].shape == (3, 3, 4) and vox["voxels"].dtype == torch.float32
    assert torch.allclose(vox["voxels"][0, :2, 3], torch.tensor([5.0, 7.0]))
    assert vox["voxels"][2, 0].tolist() == pytest.approx(CLOUD_B[0])
    assert [p.dtype for p in out["inputs"]["points"]] == [torch.float32] * 2
    assert [s.token for s in out["data_samples"]] == ["tok0", "tok1"]


def test_max_voxels_follows_training_flag():
    cloud = [[x, 0.1, 0.1, 1.0] for x in (-6.9, -3.9, 0.1, 3.1, 6.1)]  # 5 distinct voxels
    pre = hard(max_voxels=(2, 4))
    assert len(pre(batch(cloud), training=True)["inputs"]["voxels"]["coors"]) == 2
    assert len(pre(batch(cloud), training=False)["inputs"]["voxels"]["coors"]) == 4


def test_dynamic_voxels_keep_every_point_with_minus_one_for_dropped():
    pre = MODELS.build(dict(type="Det3DDataPreprocessor", voxel_type="dynamic", voxel_layer=dict(
        voxel_size=VOXEL, point_cloud_range=RANGE, max_num_points=-1, max_voxels=(-1, -1))))
    vox = pre(batch(CLOUD_A, CLOUD_B))["inputs"]["voxels"]
    assert set(vox) == {"points", "coors"} and vox["points"].shape == (5, 4)
    assert vox["coors"].tolist() == [[0, 4, 16, 18], [0, 4, 16, 18], [0, 0, 23, 0], [-1] * 4,
                                     [1, *cell(-3.3, -4.4, 1.3)]]


def test_samples_are_moved_copies_and_voxel_false_skips_voxels():
    data = batch(CLOUD_B)
    out = Det3DDataPreprocessor(voxel=False)(data)
    assert "voxels" not in out["inputs"]
    moved = out["data_samples"][0]
    assert moved is not data["data_samples"][0] and moved.gt_boxes.device.type == "cpu"
    assert torch.equal(moved.gt_boxes, data["data_samples"][0].gt_boxes)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_moves_points_voxels_and_samples_to_the_device():
    pre = hard().to("cuda:0")
    out = pre(batch(CLOUD_A, CLOUD_B), training=False)
    assert out["inputs"]["points"][0].is_cuda and out["inputs"]["voxels"]["coors"].is_cuda
    assert out["data_samples"][1].gt_boxes.is_cuda
    cpu = hard()(batch(CLOUD_A, CLOUD_B), training=False)["inputs"]["voxels"]["coors"]
    assert torch.equal(out["inputs"]["voxels"]["coors"].cpu(), cpu)


def test_corrupt_clouds_are_named_by_token():
    with pytest.raises(ValueError, match=r"point cloud 1 \(sample tok1\) is empty"):
        hard()(batch(CLOUD_A, []))
    nan_cloud = [list(p) for p in CLOUD_A]
    nan_cloud[2][3] = float("nan")  # intensity column: still corrupt
    with pytest.raises(ValueError, match=r"sample tok0\).*1 point\(s\) with NaN/Inf.*row 2"):
        hard()(batch(nan_cloud, CLOUD_B))
    with pytest.raises(ValueError, match="2 point clouds but 1 data samples"):
        hard()({"inputs": {"points": [torch.ones(2, 4)] * 2}, "data_samples": [sample("x")]})
    with pytest.raises(ValueError, match=r"must be an \(N, C >= 3\) tensor"):
        hard()({"inputs": {"points": [torch.ones(4, 2)]}, "data_samples": [sample("y")]})


def test_bad_configs_are_rejected():
    with pytest.raises(ValueError, match="voxel_type must be one of"):
        Det3DDataPreprocessor(dict(voxel_size=VOXEL, point_cloud_range=RANGE), voxel_type="pillar")
    with pytest.raises(ValueError, match="needs voxel_layer type 'DynamicVoxelizer'"):
        Det3DDataPreprocessor(dict(type="HardVoxelizer", voxel_size=VOXEL, point_cloud_range=RANGE),
                              voxel_type="dynamic")
    with pytest.raises(ValueError, match="max_num_points must be -1 or absent"):
        Det3DDataPreprocessor(dict(voxel_size=VOXEL, point_cloud_range=RANGE, max_num_points=10),
                              voxel_type="dynamic")
    with pytest.raises(ValueError, match="needs a voxel_layer"):
        Det3DDataPreprocessor()
