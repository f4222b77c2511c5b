"""Flip test-time augmentation for CenterPoint maps: the mirror fix-ups decode the original
boxes, merging averages probabilities, grids must be symmetric, and the TTA detector is
exactly equivariant to mirrors of its input (which the plain detector is not)."""
from __future__ import annotations

import math

import pytest
import torch

from perception.config import load_config
from perception.models.dense_heads.center_flip_tta import (FLIPS, check_symmetric_grid,
                                                           check_symmetric_range, flip_points, merge_center_maps,
                                                           unflip_center_maps)
from perception.registry import MODELS

from test_centerpoint_detector import GEOMETRY, RANGE, REPO, VOXEL, raw_batch, tiny_config

CODER = dict(type="CenterPointBBoxCoder", pc_range=RANGE[:2], out_size_factor=2,
             voxel_size=VOXEL[:2], max_num=3, code_size=9)
BOXES = torch.tensor([[3.3, -1.7, 0.4, 4.0, 2.0, 1.5, 0.5, 1.0, -2.0],
                      [-6.9, 4.2, -1.0, 0.5, 0.6, 1.7, -2.5, 0.0, 0.3]])


def mirror_boxes(boxes: torch.Tensor, flip_x: bool, flip_y: bool) -> torch.Tensor:
    out = boxes.clone()
    if flip_x:
        out[:, 0], out[:, 6], out[:, 7] = -out[:, 0], math.pi - out[:, 6], -out[:, 7]
    if flip_y:
        out[:, 1], out[:, 6], out[:, 8] = -out[:, 1], -out[:, 6], -out[:, 8]
    return out


def maps_of(coder, boxes: torch.Tensor) -> dict[str, torch.Tensor]:
    """Head maps (logit heat 0.9 / 0.6 at each box's cell) that decode exactly to ``boxes``."""
    cells, targets = coder.encode(boxes)
    heat = torch.full((1, 1, 12, 16), -8.0)
    maps = torch.zeros(1, 10, 12, 16)
    for k, logit in enumerate((2.0, 0.5)):
        heat[0, 0, cells[k, 0], cells[k, 1]] = logit
        maps[0, :, cells[k, 0], cells[k, 1]] = targets[k]
    return dict(heatmap=heat, reg=maps[:, 0:2], height=maps[:, 2:3], dim=maps[:, 3:6],
                rot=maps[:, 6:8], vel=maps[:, 8:10])


def decode(coder, maps: dict[str, torch.Tensor]) -> torch.Tensor:
    out = coder.decode(maps["heatmap"].sigmoid(), maps["rot"][:, :1], maps["rot"][:, 1:],
                       maps["height"], maps["dim"], maps["vel"], maps["reg"])
    return out[0]["bboxes"][:2]


@pytest.mark.parametrize("flip_x,flip_y", FLIPS)
def test_unflipped_maps_of_mirrored_boxes_decode_the_original_boxes(flip_x, flip_y) -> None:
    coder = MODELS.build(CODER)
    mirrored = maps_of(coder, mirror_boxes(BOXES, flip_x, flip_y))
    boxes = decode(coder, unflip_center_maps(mirrored, flip_x, flip_y))
    assert torch.allclose(boxes[:, :6], BOXES[:, :6], atol=1e-5)
    assert torch.allclose(boxes[:, 7:], BOXES[:, 7:], atol=1e-5)
    yaw_error = torch.remainder(boxes[:, 6] - BOXES[:, 6] + math.pi, 2 * math.pi) - math.pi
    assert yaw_error.abs().max() < 1e-5
    if flip_x or flip_y:  # without the fix-ups the same maps decode other boxes
        wrong = decode(coder, mirrored)
        assert not torch.allclose(wrong[:, :2], BOXES[:, :2], atol=1e-2)


def test_merge_averages_probabilities_and_checks_heads() -> None:
    a = dict(heatmap=torch.tensor([[[[0.0, 2.0]]]]), reg=torch.tensor([[[[0.2, 0.4]]]]))
    b = dict(heatmap=torch.tensor([[[[-2.0, 2.0]]]]), reg=torch.tensor([[[[0.4, 0.4]]]]))
    merged = merge_center_maps([a, b])
    expected = (torch.sigmoid(torch.tensor([0.0, 2.0])) + torch.sigmoid(torch.tensor([-2.0, 2.0]))) / 2
    assert torch.allclose(merged["heatmap"].sigmoid().flatten(), expected, atol=1e-6)
    assert torch.allclose(merged["reg"].flatten(), torch.tensor([0.3, 0.4]))
    with pytest.raises(ValueError, match="different heads"):
        merge_center_maps([a, dict(heatmap=a["heatmap"])])
    with pytest.raises(ValueError, match="at least one run"):
        merge_center_maps([])


def test_grid_must_be_symmetric_and_points_flip_only_xy() -> None:
    check_symmetric_grid([-8.0, -6.0], [1.0, 1.0], 12, 16)
    with pytest.raises(ValueError, match="symmetric about the sensor; along y"):
        check_symmetric_grid([-8.0, -4.0], [1.0, 1.0], 12, 16)
    points = torch.tensor([[1.0, 2.0, 3.0, 0.5]])
    assert flip_points(points, True, True).tolist() == [[-1.0, -2.0, 3.0, 0.5]]
    assert points.tolist() == [[1.0, 2.0, 3.0, 0.5]]  # a copy


def real_head_detector(flip_tta: bool):
    """The tiny test detector with the base config's real CenterHead (one task, symmetric grid)."""
    cfg = load_config(REPO / "configs" / "_base_" / "models" / "centerpoint.py").model
    limit = [-10, -8, -5, 10, 8, 5]
    head = dict(cfg.pts_bbox_head, in_channels=16, share_conv_channel=8,
                tasks=[dict(num_class=2, class_names=["car", "pedestrian"])])
    head["bbox_coder"] = dict(head["bbox_coder"], pc_range=RANGE[:2], voxel_size=VOXEL[:2],
                              out_size_factor=2, post_center_range=limit)
    model_cfg = dict(tiny_config(), pts_bbox_head=head)
    model_cfg["train_cfg"] = dict(pts=dict(cfg.train_cfg.pts, **GEOMETRY, grid_size=[32, 24, 8]))
    model_cfg["test_cfg"] = dict(pts=dict(cfg.test_cfg.pts, out_size_factor=2, voxel_size=VOXEL[:2],
                                          pc_range=RANGE[:2], post_center_limit_range=limit,
                                          min_radius=[1.0], flip_tta=flip_tta))
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    with torch.no_grad():  # the head's last layers start at zero: give every map some signal
        for parameter in model.parameters():
            parameter.add_(0.2 * torch.randn_like(parameter))
    return model.eval()


@pytest.mark.parametrize("flip_x,flip_y", [(True, False), (True, True)])
def test_flip_tta_detector_is_equivariant_to_mirrors(flip_x, flip_y) -> None:
    model = real_head_detector(flip_tta=True)
    torch.set_num_threads(1)
    batch = model.data_preprocessor(raw_batch(), False)
    mirrored_points = [flip_points(p, flip_x, flip_y) for p in batch["inputs"]["points"]]
    mirrored = model.data_preprocessor(
        dict(inputs=dict(points=mirrored_points), data_samples=batch["data_samples"]), False)
    with torch.no_grad():
        maps = model._flip_tta_maps(batch["inputs"])
        maps_mirrored = model._flip_tta_maps(mirrored["inputs"])
        plain = model.pts_bbox_head(model.extract_feat(batch["inputs"]))
        plain_mirrored = model.pts_bbox_head(model.extract_feat(mirrored["inputs"]))
    for task, task_mirrored in zip(maps, maps_mirrored):
        expected = unflip_center_maps(task, flip_x, flip_y)  # a mirror is its own inverse
        for key, value in task_mirrored.items():
            assert torch.allclose(value, expected[key], atol=1e-4), key
    # The network alone is not mirror-equivariant, so the check above has teeth.
    expected = unflip_center_maps(plain[0], flip_x, flip_y)
    assert not torch.allclose(plain_mirrored[0]["heatmap"], expected["heatmap"], atol=1e-3)
    with torch.no_grad():
        out = model.test_step(raw_batch())
    assert all(sample.pred is not None and len(sample.pred) > 0 for sample in out)


def test_flip_tta_needs_a_symmetric_grid() -> None:
    model = real_head_detector(flip_tta=True)
    model.pts_bbox_head.bbox_coder.pc_range = [-8.0, -5.0]
    with torch.no_grad(), pytest.raises(ValueError, match="symmetric about the sensor"):
        model.test_step(raw_batch())


def test_flip_tta_rejects_an_asymmetric_range_before_running_the_network() -> None:
    check_symmetric_range([-10.0, -8.0, -5.0, 10.0, 8.0, 3.0])
    model = real_head_detector(flip_tta=True)
    model.data_preprocessor.voxel_layer.point_cloud_range = [-10.0, -8.0, -5.0, 10.0, 9.6, 3.0]
    calls = []
    model.pts_middle_encoder.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad(), pytest.raises(ValueError, match="point_cloud_range symmetric about the sensor; along y"):
        model.test_step(raw_batch())
    assert not calls  # failed before the first of the four runs
