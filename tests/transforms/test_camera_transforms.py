"""Camera pipeline steps: LoadMultiViewImages (order, matrices), ImageAug3D (the recorded
img_aug_matrix moves pixels where the image content moved), ImageNormalize, LidarAugMatrix and
the packed sample's metainfo."""
from __future__ import annotations

import numpy as np
import pytest

from perception.structures import CameraView, Frame, FrameError
from perception.structures.conventions import CAMERA_NAMES_NUSCENES
from perception.transforms import GlobalRotScaleTrans, PackDetInputs
from perception.transforms.camera import ImageNormalize, LidarAugMatrix, LoadMultiViewImages
from perception.transforms.camera_aug import ImageAug3D, aug_matrix

H, W = 90, 160


def spot_image(u: int, v: int) -> np.ndarray:
    """Black image with a 6x6 white square whose top-left pixel is (u, v)."""
    image = np.zeros((H, W, 3), dtype=np.uint8)
    image[v:v + 6, u:u + 6] = 255
    return image


def make_frame(images: dict[str, np.ndarray] | None = None) -> Frame:
    cameras = {}
    for i, name in enumerate(CAMERA_NAMES_NUSCENES):
        yaw = np.deg2rad(60 * i)
        cam2ego = np.eye(4)
        # optical axis (camera z) along ego (cos yaw, sin yaw, 0), camera x to its right, y down
        forward, right = np.array([np.cos(yaw), np.sin(yaw), 0]), np.array([np.sin(yaw), -np.cos(yaw), 0])
        cam2ego[:3, :3] = np.stack([right, [0, 0, -1], forward], axis=1)
        cam2ego[:3, 3] = [1.0, 0.0, 1.5]
        image = (images or {}).get(name, np.full((H, W, 3), 10 * i, dtype=np.uint8))
        cameras[name] = CameraView(name=name, image_path=f"/nonexistent/{name}.jpg",
                                   cam2img=np.array([[100.0, 0, 80], [0, 100.0, 45], [0, 0, 1]]), cam2ego=cam2ego,
                                   timestamp=0.0, image=image)
    lidar2ego = np.eye(4)
    lidar2ego[:3, 3] = [0.9, 0.0, 1.8]
    return Frame(token="cam", timestamp=0.0, dataset="test", points=np.array([[10.0, 0.5, 0.2, 1.0]], np.float32),
                 point_features=("x", "y", "z", "intensity"), lidar2ego=lidar2ego, ego2global=np.eye(4),
                 class_names=("car",), cameras=cameras)


def test_load_multi_view_images_order_and_matrices() -> None:
    frame = make_frame()
    results = LoadMultiViewImages()({"frame": frame})
    assert results["cam_names"] == list(CAMERA_NAMES_NUSCENES)
    assert [int(img[0, 0, 0]) for img in results["imgs"]] == [0, 10, 20, 30, 40, 50]
    for i, name in enumerate(CAMERA_NAMES_NUSCENES):
        np.testing.assert_allclose(results["lidar2img"][i], frame.lidar2img(name))
        np.testing.assert_allclose(results["lidar2img"][i], results["cam2img"][i] @ results["lidar2cam"][i])
    assert results["cam2img"].shape == (6, 4, 4) and results["cam2img"][0, 3, 3] == 1.0
    np.testing.assert_array_equal(results["img_aug_matrix"], np.tile(np.eye(4), (6, 1, 1)))
    # a point 10 m ahead of the LiDAR (9.9 m ahead of CAM_FRONT, 0.6 m above it) by hand
    p = results["lidar2img"][0] @ np.array([10.0, 0.0, 0.3, 1.0])
    assert p[2] == pytest.approx(9.9)
    np.testing.assert_allclose(p[:2] / p[2], [80.0, 45.0 - 100.0 * 0.6 / 9.9])
    del frame.cameras["CAM_BACK"]
    with pytest.raises(FrameError, match="CAM_BACK"):
        LoadMultiViewImages()({"frame": frame})


@pytest.mark.parametrize("resize, crop, flip, rotate", [(0.5, (3, 10), False, 0.0), (0.8, (20, 30), True, 0.0),
                                                        (0.6, (5, 8), True, 4.0), (1.0, (30, 20), False, -5.0)])
def test_img_aug_matrix_moves_pixels_with_the_image(resize, crop, flip, rotate) -> None:
    aug = ImageAug3D(final_dim=(40, 72), resize_lim=(resize, resize))
    u0, v0 = 60, 40
    out = aug.apply(spot_image(u0, v0), resize, crop, flip, rotate)
    assert out.shape == (40, 72, 3)
    rows, cols = np.nonzero(out[..., 0] > 127)
    centroid = np.array([cols.mean() + 0.5, rows.mean() + 0.5])  # continuous pixel coordinates
    matrix = aug_matrix(resize, crop, flip, rotate, (40, 72))
    expected = matrix[:2, :2] @ np.array([u0 + 3.0, v0 + 3.0]) + matrix[:2, 3]  # the square's centre
    assert np.abs(centroid - expected).max() < 0.75


def test_image_aug3d_test_mode_and_composition() -> None:
    results = LoadMultiViewImages()({"frame": make_frame()})
    aug = ImageAug3D(final_dim=(40, 72), resize_lim=(0.5, 0.5), bot_pct_lim=(0.0, 0.0))
    out = aug(results)
    # test mode: resize 0.5 -> 80 x 45, crop from the bottom (45 - 40 = 5) and centred (80 - 72) / 2 = 4
    assert out["img_aug"] == dict(resize=0.5, crop=[4, 5], flip=False, rotate=0.0)
    expected = np.eye(4)
    expected[:2, :2], expected[:2, 3] = np.eye(2) * 0.5, [-4, -5]
    np.testing.assert_allclose(out["img_aug_matrix"], np.tile(expected, (6, 1, 1)))
    assert all(img.shape == (40, 72, 3) for img in out["imgs"])
    twice = ImageAug3D(final_dim=(40, 72), resize_lim=(1.0, 1.0))(out)
    np.testing.assert_allclose(twice["img_aug_matrix"][0], expected)  # identity crop composes
    np.random.seed(1)
    train = ImageAug3D(final_dim=(40, 72), resize_lim=(0.5, 0.6), rot_lim=(-5, 5), rand_flip=True, is_train=True)
    drawn = {train.sample((H, W))[2] for _ in range(30)}
    assert drawn == {True, False}
    with pytest.raises(ValueError, match="resize_lim"):
        ImageAug3D(final_dim=(40, 72), resize_lim=(0.6, 0.5))


def test_normalize_pack_and_lidar_aug_matrix() -> None:
    np.random.seed(0)
    results = LoadMultiViewImages()({"frame": make_frame(), "sample_idx": 0})
    results = ImageAug3D(final_dim=(40, 72), resize_lim=(0.5, 0.5))(results)
    results = ImageNormalize(mean=(10.0, 10.0, 10.0), std=(2.0, 2.0, 2.0))(results)
    assert results["imgs"][1].shape == (3, 40, 72) and results["imgs"][1].dtype == np.float32
    assert float(results["imgs"][1][0, 20, 30]) == pytest.approx((10 - 10) / 2)
    assert float(results["imgs"][3][2, 20, 30]) == pytest.approx((30 - 10) / 2)
    results = LidarAugMatrix()(results)
    np.testing.assert_array_equal(results["lidar_aug_matrix"], np.eye(4))
    results = LidarAugMatrix()(GlobalRotScaleTrans(rot_range=(0.5, 0.5), scale_ratio_range=(1.0, 1.0))(results))
    np.testing.assert_allclose(results["lidar_aug_matrix"][:2, :2],
                               [[np.cos(0.5), -np.sin(0.5)], [np.sin(0.5), np.cos(0.5)]])
    keys = ("sample_idx", "lidar2img", "cam2img", "lidar2cam", "img_aug_matrix", "lidar_aug_matrix")
    packed = PackDetInputs(meta_keys=keys)(results)
    assert tuple(packed["inputs"]["imgs"].shape) == (6, 3, 40, 72)
    meta = packed["data_samples"].metainfo
    assert all(meta[k].shape == (6, 4, 4) for k in keys[1:5]) and meta["lidar_aug_matrix"].shape == (4, 4)
    with pytest.raises(KeyError, match="LoadMultiViewImages"):
        ImageNormalize()({})
