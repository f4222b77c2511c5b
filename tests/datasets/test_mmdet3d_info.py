"""mmdetection3d 1.x info reader on the shared nuScenes keyframe (no mmdet3d installed)."""
from __future__ import annotations

import copy
import pickle
from pathlib import Path

import numpy as np
import pytest

from perception.datasets.mmdet3d_info import (NUSCENES_DATA_PREFIX, InfoPaths, class_names_of,
                                              frame_from_mmdet3d_info, load_info_file)
from perception.structures import NUSCENES_CLASSES, Boxes3D, FrameError, invert_transform, wrap_angle

PICKLE = "n015-2018-07-24-11-22-45+0800.pkl"
pytestmark = pytest.mark.real_data


def flat_paths(root: Path) -> InfoPaths:
    """The shared folder keeps every file at its top level."""
    return InfoPaths(str(root), {key: "" for key in NUSCENES_DATA_PREFIX})


@pytest.fixture(scope="module")
def info(nuscenes_keyframe_dir: Path) -> dict:
    metainfo, data_list = load_info_file(nuscenes_keyframe_dir / PICKLE)
    assert class_names_of(metainfo) == NUSCENES_CLASSES and len(data_list) == 1
    return data_list[0]


@pytest.fixture(scope="module")
def frame(info: dict, nuscenes_keyframe_dir: Path):
    return frame_from_mmdet3d_info(info, flat_paths(nuscenes_keyframe_dir))


def test_points_boxes_and_labels(frame, info: dict) -> None:
    assert frame.points.shape == (34688, 5) and frame.point_features == ("x", "y", "z", "intensity", "ring")
    assert len(info["instances"]) == 69
    # the one instance with label -1 (a non-detection category) is dropped, as mmdet3d does
    assert sum(inst["bbox_label_3d"] < 0 for inst in info["instances"]) == 1
    assert len(frame.boxes) == 68 and frame.boxes.labels.min() >= 0
    assert np.bincount(frame.boxes.labels, minlength=10)[NUSCENES_CLASSES.index("pedestrian")] > 10
    assert np.isfinite(frame.boxes.data[:, :7]).all()
    # velocity unknown (NaN, the stack's convention) exactly where the pickle has NaN
    unknown = np.isnan(frame.boxes.velocities).any(axis=1)
    assert unknown.sum() == 2 and np.isnan(frame.boxes.velocities[unknown]).all()
    assert frame.timestamp == pytest.approx(1532402927.647951)
    assert np.abs(frame.boxes.centers[:, :2]).max() < 80 and (frame.boxes.sizes > 0).all()


def test_gravity_centre_matches_num_lidar_pts(frame) -> None:
    counts = frame.boxes.count_points(frame.points)
    expected = frame.boxes.num_lidar_pts
    dense = expected >= 10
    assert dense.sum() == 14
    assert np.corrcoef(counts, expected)[0, 1] > 0.99
    assert np.median(np.abs(counts[dense] - expected[dense]) / expected[dense]) < 0.05
    # the bottom-centre reading of z is clearly worse
    shifted = frame.boxes.data.copy()
    shifted[:, 2] += shifted[:, 5] / 2
    wrong = Boxes3D(shifted, frame.boxes.labels).count_points(frame.points)
    assert np.median(np.abs(wrong[dense] - expected[dense]) / expected[dense]) > 0.3


def test_lidar2cam_matches_pickle_through_camera_pose(frame, info: dict) -> None:
    assert set(frame.cameras) == set(info["images"])
    for name, record in info["images"].items():
        np.testing.assert_allclose(frame.lidar2cam(name), record["lidar2cam"], atol=1e-5)
        view = frame.cameras[name]
        assert view.ego2global is not None and Path(view.image_path).is_file()
        # the camera's own ego pose differs from the LiDAR's: the car moves ~9 m/s
        ego_shift = np.linalg.norm(view.ego2global[:3, 3] - frame.ego2global[:3, 3])
        lag = frame.timestamp - view.timestamp
        assert ego_shift == pytest.approx(9.2 * abs(lag), abs=0.05)


def test_box_centres_project_onto_mmdet3d_cam_instances(frame, info: dict) -> None:
    """Each 2D centre mmdet3d stored per camera is hit by one of our projected LiDAR boxes."""
    matched = 0
    for camera, cam_instances in info["cam_instances"].items():
        projected = np.c_[frame.boxes.centers, np.ones(len(frame.boxes))] @ frame.lidar2img(camera).T
        in_front = projected[:, 2] > 0.1
        pixels = projected[:, :2] / np.where(in_front, projected[:, 2], 1.0)[:, None]
        for cam_instance in cam_instances:
            if cam_instance["bbox_label_3d"] < 0:
                continue
            distance = np.linalg.norm(pixels - cam_instance["center_2d"], axis=1)
            distance[~in_front] = np.inf
            best = int(np.argmin(distance))
            assert distance[best] < 1.0, (camera, cam_instance["center_2d"], pixels[best])
            u, v = pixels[best]
            inside = 0 <= u < 1600 and 0 <= v < 900
            assert inside == (0 <= cam_instance["center_2d"][0] < 1600 and 0 <= cam_instance["center_2d"][1] < 900)
            matched += 1
    assert matched >= 80


def test_lidar_global_round_trip(frame) -> None:
    world = frame.boxes.transform(frame.lidar2global)
    assert np.abs(world.centers[:, :2] - frame.ego2global[:2, 3]).max() < 120
    back = world.transform(invert_transform(frame.lidar2global))
    np.testing.assert_allclose(back.data[:, :6], frame.boxes.data[:, :6], atol=1e-6)
    # yaw is re-projected onto the xy plane of a frame tilted ~1.4 deg to the LiDAR: < 1e-3 rad
    np.testing.assert_allclose(wrap_angle(back.yaws - frame.boxes.yaws), 0, atol=1e-3)
    # planar velocities lose their z part in the tilted frame: ~1% of the speed
    known = np.isfinite(frame.boxes.velocities).all(axis=1)
    assert np.isnan(back.velocities[~known]).all()
    speed = np.linalg.norm(frame.boxes.velocities[known], axis=1)
    error = np.linalg.norm(back.velocities[known] - frame.boxes.velocities[known], axis=1)
    assert (error <= 0.02 * speed + 1e-9).all()


def _linked_copy(source: Path, target: Path, skip: str = "") -> Path:
    """Symlink every file of ``source`` into ``target`` except names containing ``skip``."""
    target.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if not (skip and skip in path.name):
            (target / path.name).symlink_to(path)
    return target


def test_missing_camera_jpeg_names_the_file(info: dict, nuscenes_keyframe_dir: Path, tmp_path: Path) -> None:
    root = _linked_copy(nuscenes_keyframe_dir, tmp_path / "kf", skip="CAM_BACK_LEFT")
    with pytest.raises(FrameError, match="CAM_BACK_LEFT.*not found.*CAM_BACK_LEFT__1532402927647423.jpg"):
        frame_from_mmdet3d_info(info, flat_paths(root))
    frame = frame_from_mmdet3d_info(info, flat_paths(root), with_cameras=False)
    assert frame.cameras == {} and len(frame.points) == 34688


def test_empty_annotations_give_empty_boxes(info: dict, nuscenes_keyframe_dir: Path) -> None:
    record = copy.deepcopy(info)
    record["instances"] = []
    frame = frame_from_mmdet3d_info(record, flat_paths(nuscenes_keyframe_dir))
    assert len(frame.boxes) == 0 and frame.boxes.data.shape == (0, 9)
    del record["instances"]
    assert len(frame_from_mmdet3d_info(record, flat_paths(nuscenes_keyframe_dir)).boxes) == 0


def test_bad_records_are_named(info: dict, nuscenes_keyframe_dir: Path, tmp_path: Path) -> None:
    paths = flat_paths(nuscenes_keyframe_dir)
    record = copy.deepcopy(info)
    record["instances"][3]["bbox_3d"] = [1.0, 2.0]
    with pytest.raises(FrameError, match="instance 3 has a bad bbox_3d"):
        frame_from_mmdet3d_info(record, paths)
    record = copy.deepcopy(info)
    record["ego2global"] = np.eye(3)
    with pytest.raises(FrameError, match="ego2global"):
        frame_from_mmdet3d_info(record, paths)
    old_layout = tmp_path / "old.pkl"
    old_layout.write_bytes(pickle.dumps({"infos": [], "metadata": {"version": "v1.0-mini"}}))
    with pytest.raises(FrameError, match="0.x layout"):
        load_info_file(old_layout)
    with pytest.raises(FileNotFoundError, match="absent.pkl"):
        load_info_file(tmp_path / "absent.pkl")


def test_sweeps_from_info_and_missing_sweep(info: dict, nuscenes_keyframe_dir: Path, tmp_path: Path) -> None:
    """A sweep entry in mmdet3d's layout (only lidar2sensor) is read; a missing file is named."""
    root = _linked_copy(nuscenes_keyframe_dir, tmp_path / "kf")
    record = copy.deepcopy(info)
    lidar2sensor = np.eye(4)
    lidar2sensor[:3, 3] = [0.0, -0.5, 0.0]  # the sweep sensor sat 0.5 m behind along LiDAR y
    record["lidar_sweeps"] = [
        {"lidar_points": {"lidar_path": "./data/nuscenes/sweeps/LIDAR_TOP/gone.pcd.bin", "lidar2sensor": lidar2sensor},
         "timestamp": info["timestamp"] - 0.1},
        {"lidar_points": {"lidar_path": f"samples/LIDAR_TOP/{info['lidar_points']['lidar_path']}",
                          "lidar2sensor": lidar2sensor}, "timestamp": info["timestamp"] - 0.05},
    ]
    with pytest.raises(FrameError, match="gone.pcd.bin"):
        frame_from_mmdet3d_info(record, flat_paths(root), load_sweeps=2)
    frame = frame_from_mmdet3d_info(record, flat_paths(root), load_sweeps=2, skip_missing_sweeps=True)
    assert frame.points.shape == (2 * 34688, 6) and frame.point_features[-1] == "time_lag"
    np.testing.assert_allclose(frame.points[34688:, 1] - frame.points[:34688, 1], 0.5, atol=1e-4)
    np.testing.assert_allclose(frame.points[34688:, 5], 0.05, atol=1e-5)
    assert frame_from_mmdet3d_info(record, flat_paths(root), load_sweeps=0).points.shape == (34688, 5)
