"""The synthetic cameras: rig calibration, box colours where boxes project, the horizon."""
from __future__ import annotations

import pickle
import time

import numpy as np
import pytest

from perception.datasets.synthetic.camera import SKY_HORIZON, class_colour, ground_texture, render, shade
from perception.datasets.synthetic.ground import rasterize
from perception.datasets.synthetic.raycast import BoxSet
from perception.datasets.synthetic.rig import build_cameras
from perception.datasets.synthetic.world import build_town
from perception.structures.conventions import CAMERA_NAMES_NUSCENES
from perception.structures.geometry import invert_transform, make_transform, yaw_matrix


@pytest.fixture(scope="module")
def ground():
    return rasterize(build_town().road_map)


def _yaw_of_axis(cam2ego: np.ndarray) -> float:
    axis = cam2ego[:3, 2]
    return float(np.degrees(np.arctan2(axis[1], axis[0])))


def test_rig_layout_and_intrinsics():
    cameras = build_cameras((800, 450))
    assert [c.name for c in cameras] == list(CAMERA_NAMES_NUSCENES)
    yaws = [_yaw_of_axis(c.cam2ego) for c in cameras]
    np.testing.assert_allclose(yaws, [0, -55, 55, 180, 110, -110], atol=1e-6)
    front = cameras[0]
    np.testing.assert_allclose(front.cam2ego[:3, :3], [[0, 0, 1], [-1, 0, 0], [0, -1, 0]], atol=1e-12)
    assert front.cam2img[0, 0] == pytest.approx(633.0) and front.cam2img[:2, 2].tolist() == [400, 225]
    assert cameras[3].cam2img[0, 0] < 0.7 * front.cam2img[0, 0]  # CAM_BACK is wider
    small = build_cameras((160, 90))[0]
    assert small.cam2img[0, 0] == pytest.approx(126.6) and (small.width, small.height) == (160, 90)


@pytest.mark.real_data
def test_rig_matches_nuscenes(nuscenes_keyframe_dir):
    info = pickle.load(open(next(nuscenes_keyframe_dir.glob("*.pkl")), "rb"))["data_list"][0]
    real_lidar = np.asarray(info["lidar_points"]["lidar2ego"])
    from perception.datasets.synthetic.rig import lidar_to_ego

    np.testing.assert_allclose(lidar_to_ego()[:3, :3], real_lidar[:3, :3], atol=0.03)
    for camera in build_cameras((1600, 900)):
        real = np.asarray(info["images"][camera.name]["cam2ego"])
        assert abs(_yaw_of_axis(camera.cam2ego) - _yaw_of_axis(real)) < 3.0, camera.name
        np.testing.assert_allclose(camera.cam2ego[:3, 3], real[:3, 3], atol=0.05)
        np.testing.assert_allclose(camera.cam2img[0, 0], np.asarray(info["images"][camera.name]["cam2img"])[0, 0],
                                   rtol=0.01)


def test_box_in_front_has_its_class_colour(ground):
    camera = build_cameras((320, 180))[0]
    ego2global = make_transform(yaw_matrix(0.0), [0.0, 0.0, 0.0])
    box = BoxSet(np.array([[12.0, 0.0, 0.85]]), np.array([[4.6, 1.9, 1.7]]), np.array([0.0]), ["vehicle.car"])
    image = render(camera, ego2global, box, ground, ground_texture())
    # project a point of the face looking at the camera, on the lower body (the cabin is set
    # back from the car's ends, see perception/datasets/synthetic/shapes.py)
    face = np.array([12.0 - 2.3, 0.0, 0.45, 1.0])
    cam = invert_transform(ego2global @ camera.cam2ego) @ face
    u, v = (camera.cam2img @ cam[:3])[:2] / cam[2]
    expected = np.round(class_colour("vehicle.car") * shade(np.array([-1.0, 0.0, 0.0], np.float32)))
    patch = image[int(v) - 3:int(v) + 4, int(u) - 3:int(u) + 4].reshape(-1, 3)
    assert (patch == expected.astype(np.uint8)).all()
    # a pedestrian box shows the pedestrian colour instead
    person = BoxSet(box.centers, np.array([[0.7, 0.7, 1.75]]), box.yaws, ["human.pedestrian.adult"])
    pixel = render(camera, ego2global, person, ground, ground_texture())[int(v), int(u)]
    ratio = pixel.astype(float) / class_colour("human.pedestrian.adult")
    assert np.ptp(ratio) < 0.02 and 0.45 < ratio.mean() < 1.0


def test_sky_above_horizon_ground_below(ground):
    for camera in build_cameras((320, 180)):
        image = render(camera, make_transform(yaw_matrix(0.3), [0.0, 0.0, 0.0]), BoxSet.from_objects([]),
                       ground, ground_texture())
        horizon = int(camera.cam2img[1, 2])  # level cameras: the horizon is the principal row
        sky = image[: horizon - 1].astype(float)
        assert (sky[..., 2] > sky[..., 0]).all(), camera.name  # blue
        np.testing.assert_allclose(sky[-1].mean(axis=0), SKY_HORIZON, atol=15)
        below = image[horizon + 4:].astype(float)
        assert (np.abs(below - SKY_HORIZON).sum(-1) > 20).all(), camera.name


def test_image_timing_and_format(ground):
    town = build_town()
    camera = build_cameras((800, 450))[0]
    boxes = BoxSet.from_objects(town.statics)
    start = time.perf_counter()
    image = render(camera, make_transform(yaw_matrix(0.0), [-30.0, -5.25, 0.0]), boxes, ground, ground_texture())
    seconds = time.perf_counter() - start
    print(f"\ncamera image 800x450: {seconds * 1000:.1f} ms")
    assert image.shape == (450, 800, 3) and image.dtype == np.uint8
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50
