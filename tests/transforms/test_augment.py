"""Global augmentations keep every box's points inside it and headings/velocities coherent."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from det_frames import ids_in_boxes, make_frame

from perception.registry import TRANSFORMS
from perception.structures import apply_transform, wrap_angle
from perception.transforms.augment import GlobalRotScaleTrans, PointShuffle, RandomFlip3D


def _chain(results: dict, *transforms) -> dict:
    for transform in transforms:
        results = transform(results)
    return results


def _heading(yaws: np.ndarray) -> np.ndarray:
    return np.stack([np.cos(yaws), np.sin(yaws)], axis=1)


@pytest.mark.parametrize("seed", range(6))
def test_points_stay_in_their_boxes_and_velocity_follows_heading(seed: int) -> None:
    np.random.seed(seed)
    frame = make_frame()
    before = ids_in_boxes(frame)
    assert [len(s) for s in before] == [200, 200, 200, 200]
    original_points, original_boxes = frame.points.copy(), frame.boxes.data.copy()
    results = _chain({"frame": frame},
                     GlobalRotScaleTrans(rot_range=[-3.1, 3.1], scale_ratio_range=[0.8, 1.2],
                                         translation_std=[0.5, 0.5, 0.2]),
                     RandomFlip3D(0.5, 0.5), PointShuffle())
    out = results["frame"]
    assert ids_in_boxes(out) == before
    # the cached frame is untouched
    np.testing.assert_array_equal(frame.points, original_points)
    np.testing.assert_array_equal(frame.boxes.data, original_boxes)
    # box 0 moves along its heading at 6 m/s (times the scale); box 1 moves sideways
    scale = results["aug"]["scale"]
    heading = _heading(out.boxes.yaws)
    assert heading[0] @ out.boxes.velocities[0] == pytest.approx(6.0 * scale, rel=1e-9)
    assert heading[1] @ out.boxes.velocities[1] == pytest.approx(0.0, abs=1e-9)
    assert np.linalg.norm(out.boxes.velocities[1]) == pytest.approx(2.0 * scale, rel=1e-9)
    assert np.isnan(out.boxes.velocities[2]).all()
    np.testing.assert_allclose(out.boxes.sizes, frame.boxes.sizes * scale, rtol=1e-12)
    # the recorded matrix maps the original points and centres onto the augmented ones
    matrix = results["aug"]["lidar_aug_matrix"]
    order = np.argsort(out.points[:, 3])
    np.testing.assert_allclose(out.points[order, :3], apply_transform(matrix, frame.points[:, :3].astype(np.float64)),
                               atol=1e-4)
    np.testing.assert_allclose(out.boxes.centers, apply_transform(matrix, frame.boxes.centers), atol=1e-9)
    assert results["aug"]["flow"][:3] == ["R", "S", "T"]
    assert np.abs(out.boxes.yaws).max() <= np.pi


def test_rotation_scale_translation_exact_values() -> None:
    np.random.seed(1)
    frame = make_frame()
    transform = GlobalRotScaleTrans(rot_range=[0.5, 0.5], scale_ratio_range=[1.1, 1.1], translation_std=0)
    out = transform({"frame": frame})["frame"]
    c, s = np.cos(0.5), np.sin(0.5)
    rotation = np.array([[c, -s], [s, c]])
    np.testing.assert_allclose(out.boxes.centers[:, :2], 1.1 * frame.boxes.centers[:, :2] @ rotation.T, atol=1e-12)
    np.testing.assert_allclose(out.boxes.centers[:, 2], 1.1 * frame.boxes.centers[:, 2], atol=1e-12)
    np.testing.assert_allclose(out.boxes.yaws, wrap_angle(frame.boxes.yaws + 0.5), atol=1e-12)
    np.testing.assert_allclose(out.boxes.velocities[:2], 1.1 * frame.boxes.velocities[:2] @ rotation.T, atol=1e-12)
    assert out.points.dtype == np.float32 and out.points.shape == frame.points.shape
    np.testing.assert_array_equal(out.points[:, 3:], frame.points[:, 3:])  # non-xyz columns untouched


@pytest.mark.parametrize("horizontal, vertical", [(True, False), (False, True), (True, True), (False, False)])
def test_flips_mirror_positions_yaws_and_velocities(horizontal: bool, vertical: bool) -> None:
    frame = make_frame()
    results = RandomFlip3D(float(horizontal), float(vertical))({"frame": frame})
    out, boxes = results["frame"], frame.boxes
    sign_x, sign_y = (-1.0 if vertical else 1.0), (-1.0 if horizontal else 1.0)
    np.testing.assert_allclose(out.boxes.centers, boxes.centers * [sign_x, sign_y, 1.0])
    np.testing.assert_allclose(out.points[:, :2], frame.points[:, :2] * [sign_x, sign_y])
    yaw = boxes.yaws.copy()
    if horizontal:
        yaw = -yaw
    if vertical:
        yaw = np.pi - yaw
    np.testing.assert_allclose(np.cos(out.boxes.yaws), np.cos(yaw), atol=1e-12)
    np.testing.assert_allclose(np.sin(out.boxes.yaws), np.sin(yaw), atol=1e-12)
    np.testing.assert_allclose(out.boxes.velocities[:2], boxes.velocities[:2] * [sign_x, sign_y], atol=1e-12)
    assert results["aug"]["flip_horizontal"] is horizontal and results["aug"]["flip_vertical"] is vertical
    assert ids_in_boxes(out) == ids_in_boxes(frame)


def test_point_shuffle_permutes_rows_only() -> None:
    np.random.seed(3)
    frame = make_frame()
    out = PointShuffle()({"frame": frame})["frame"]
    assert not np.array_equal(out.points, frame.points)
    order = np.argsort(out.points[:, 3])
    np.testing.assert_array_equal(out.points[order], frame.points)
    assert out.boxes is frame.boxes


def test_registered_and_bad_arguments() -> None:
    assert TRANSFORMS.get("GlobalRotScaleTrans") is GlobalRotScaleTrans
    assert TRANSFORMS.get("RandomFlip3D") is RandomFlip3D and TRANSFORMS.get("PointShuffle") is PointShuffle
    with pytest.raises(ValueError, match="rot_range"):
        GlobalRotScaleTrans(rot_range=[0.5, -0.5])
    with pytest.raises(ValueError, match="scale_ratio_range must be positive"):
        GlobalRotScaleTrans(scale_ratio_range=[0.0, 1.0])
    with pytest.raises(ValueError, match="translation_std"):
        GlobalRotScaleTrans(translation_std=[-1, 0, 0])
    with pytest.raises(ValueError, match="flip_ratio_bev_vertical"):
        RandomFlip3D(0.5, 1.5)
    assert GlobalRotScaleTrans(rot_range=0.3).rot_range == (-0.3, 0.3)


def test_real_frame_keeps_points_in_boxes(tiny_synthetic_root: Path) -> None:
    """On a generated LiDAR frame: every point not within 1 mm of a face stays in its boxes."""
    from perception.datasets import NuScenesDataset

    frame = NuScenesDataset(ann_file="nuscenes_infos_train.pkl", data_root=str(tiny_synthetic_root),
                            with_cameras=False).get_frame(0)
    np.random.seed(7)
    results = _chain({"frame": frame}, GlobalRotScaleTrans(translation_std=[0.2, 0.2, 0.1]), RandomFlip3D(0.5, 0.5))
    out = results["frame"]
    before, after = frame.boxes.points_in_boxes(frame.points), out.boxes.points_in_boxes(out.points)
    clear = ~(_inside_grown(frame, 1e-3) ^ _inside_grown(frame, -1e-3)).any(axis=1)  # not near a face
    assert before.sum() > 500 and clear.mean() > 0.99
    np.testing.assert_array_equal(before[clear], after[clear])


def _inside_grown(frame, delta: float) -> np.ndarray:
    """Points inside the frame's boxes grown by ``delta`` metres on every face."""
    boxes = type(frame.boxes)(frame.boxes.data.copy(), frame.boxes.labels)
    boxes.data[:, 3:6] += 2 * delta
    return boxes.points_in_boxes(frame.points)
