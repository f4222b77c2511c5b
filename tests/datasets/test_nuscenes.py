"""nuScenes devkit path: create_infos on a tiny fixture dataset built from the shared keyframe,
then NuScenesDataset on our infos and on mmdet3d's, map elements and splits."""
from __future__ import annotations

import importlib.util
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from nuscenes_fixture import (PICKLE_NAME, SWEEP_LAG_S, NuScenesFixture, build_nuscenes_fixture,
                              write_synthetic_map)

from perception.datasets.mmdet3d_info import NUSCENES_DATA_PREFIX, InfoPaths, frame_from_mmdet3d_info
from perception.datasets.nuscenes import NuScenesDataset
from perception.datasets.nuscenes.create_infos import build_infos
from perception.datasets.nuscenes.map_elements import NuScenesMapCache
from perception.datasets.nuscenes.splits import scene_splits
from perception.registry import DATASETS
from perception.structures import FrameError, apply_transform, invert_transform, wrap_angle

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.real_data


def _create_data_main():
    spec = importlib.util.spec_from_file_location("create_data", REPO / "tools" / "create_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture(scope="module")
def fixture(nuscenes_keyframe_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> NuScenesFixture:
    built = build_nuscenes_fixture(nuscenes_keyframe_dir, tmp_path_factory.mktemp("nuscenes"))
    status = _create_data_main()(["nuscenes", "--root", str(built.root), "--version", "v1.0-mini",
                                  "--max-sweeps", "10"])
    assert status == 0
    return built


@pytest.fixture(scope="module")
def our_frame(fixture: NuScenesFixture):
    dataset = NuScenesDataset(ann_file="nuscenes_infos_train.pkl", data_root=str(fixture.root))
    assert len(dataset) == 1
    return dataset.get_frame(0)


@pytest.fixture(scope="module")
def mmdet3d_frame(nuscenes_keyframe_dir: Path):
    info = pickle.load((nuscenes_keyframe_dir / PICKLE_NAME).open("rb"))["data_list"][0]
    return frame_from_mmdet3d_info(info, InfoPaths(str(nuscenes_keyframe_dir), {k: "" for k in NUSCENES_DATA_PREFIX}))


def test_infos_written_atomically_with_our_extensions(fixture: NuScenesFixture) -> None:
    files = sorted(path.name for path in fixture.root.glob("*.pkl*"))
    assert files == ["nuscenes_infos_train.pkl", "nuscenes_infos_val.pkl"]  # no temp file left behind
    content = pickle.loads((fixture.root / "nuscenes_infos_train.pkl").read_bytes())
    assert content["metainfo"]["version"] == "v1.0-mini" and content["metainfo"]["categories"]["car"] == 0
    assert pickle.loads((fixture.root / "nuscenes_infos_val.pkl").read_bytes())["data_list"] == []
    info = content["data_list"][0]
    assert info["scene_name"] == fixture.scene_name and info["location"] == "singapore-onenorth"
    assert len(info["instances"]) == 68  # the pushable_pullable box is not a detection class
    first = info["instances"][0]
    assert first["instance_token"] == "inst-000" and first["category_name"] == "human.pedestrian.adult"
    assert first["velocity"] == [0.0, 0.0] and first["velocity_isvalid"] is False  # single annotation: NaN -> 0
    assert all(len(cam["ego2global"]) == 4 for cam in info["images"].values())
    sweep = info["lidar_sweeps"][0]
    assert len(info["lidar_sweeps"]) == 1 and sweep["lidar_points"]["lidar_path"].startswith("sweeps/LIDAR_TOP/")
    assert set(sweep) == {"lidar_points", "ego2global", "timestamp", "sample_data_token"}
    assert set(sweep["lidar_points"]) == {"lidar_path", "lidar2ego", "lidar2sensor"}


def test_devkit_infos_reproduce_mmdet3d_frame(our_frame, mmdet3d_frame) -> None:
    np.testing.assert_array_equal(our_frame.points, mmdet3d_frame.points)
    assert len(our_frame.boxes) == len(mmdet3d_frame.boxes) == 68
    np.testing.assert_array_equal(our_frame.boxes.labels, mmdet3d_frame.boxes.labels)
    np.testing.assert_array_equal(our_frame.boxes.num_lidar_pts, mmdet3d_frame.boxes.num_lidar_pts)
    np.testing.assert_allclose(our_frame.boxes.data[:, :6], mmdet3d_frame.boxes.data[:, :6], atol=1e-3)
    assert np.abs(wrap_angle(our_frame.boxes.yaws - mmdet3d_frame.boxes.yaws)).max() < 1e-3
    assert our_frame.boxes.track_ids[:2] == ["inst-000", "inst-001"]
    assert np.isnan(our_frame.boxes.velocities).all()  # every track is annotated once: unknown velocity
    np.testing.assert_allclose(our_frame.lidar2ego, mmdet3d_frame.lidar2ego, atol=1e-6)
    np.testing.assert_allclose(our_frame.ego2global, mmdet3d_frame.ego2global, atol=1e-5)
    assert our_frame.timestamp == pytest.approx(mmdet3d_frame.timestamp, abs=1e-6)
    assert set(our_frame.cameras) == set(mmdet3d_frame.cameras)
    for name, view in our_frame.cameras.items():
        other = mmdet3d_frame.cameras[name]
        assert Path(view.image_path).name == Path(other.image_path).name and Path(view.image_path).is_file()
        assert view.image_size == (1600, 900)
        np.testing.assert_allclose(view.cam2img, other.cam2img, atol=1e-9)
        np.testing.assert_allclose(our_frame.lidar2cam(name), mmdet3d_frame.lidar2cam(name), atol=1e-4)
        assert view.timestamp == pytest.approx(other.timestamp, abs=1e-6)


def test_sweep_lands_in_keyframe_lidar_frame(fixture: NuScenesFixture, our_frame) -> None:
    dataset = NuScenesDataset(ann_file="nuscenes_infos_train.pkl", data_root=str(fixture.root), load_sweeps=3,
                              with_cameras=False)
    frame = dataset.get_frame(0)
    count = len(our_frame.points)
    assert frame.points.shape == (2 * count, 6) and frame.point_features[-1] == "time_lag"
    expected = apply_transform(invert_transform(our_frame.lidar2global) @ fixture.sweep_lidar2global,
                               our_frame.points[:, :3].astype(np.float64))
    np.testing.assert_allclose(frame.points[count:, :3], expected, atol=2e-3)
    np.testing.assert_allclose(frame.points[count:, 5], SWEEP_LAG_S, atol=1e-5)
    assert (frame.points[:count, 5] == 0).all()
    # a missing sweep folder: clear error naming the file, or a logged skip
    missing = NuScenesDataset(ann_file="nuscenes_infos_train.pkl", data_root=str(fixture.root), load_sweeps=1,
                              with_cameras=False, data_prefix={"sweeps": "no_sweeps"})
    with pytest.raises(FrameError, match=r"no_sweeps/.*LIDAR_TOP__1532402927597951\.pcd\.bin"):
        missing.get_frame(0)
    skipping = NuScenesDataset(ann_file="nuscenes_infos_train.pkl", data_root=str(fixture.root), load_sweeps=1,
                               with_cameras=False, data_prefix={"sweeps": "no_sweeps"}, skip_missing_sweeps=True)
    assert skipping.get_frame(0).points.shape == (count, 6)


def test_registry_and_pipeline_item(fixture: NuScenesFixture) -> None:
    dataset = DATASETS.build(dict(type="NuScenesDataset", ann_file="nuscenes_infos_train.pkl",
                                  data_root=str(fixture.root), with_cameras=False))
    item = dataset[0]
    assert item["sample_idx"] == 0 and len(item["frame"].boxes) == 68 and item["frame"].cameras == {}


def test_map_elements_around_ego(fixture: NuScenesFixture, our_frame) -> None:
    write_synthetic_map(fixture.root, our_frame.ego2global[:2, 3])
    dataset = NuScenesDataset(ann_file="nuscenes_infos_train.pkl", data_root=str(fixture.root), with_map=True,
                              map_radius=30.0, with_cameras=False)
    elements = dataset.get_frame(0).map_elements
    by_category: dict[str, list] = {}
    for element in elements:
        by_category.setdefault(element.category, []).append(element)
    assert sorted((k, len(v)) for k, v in by_category.items()) == [("boundary", 2), ("divider", 2),
                                                                   ("ped_crossing", 1)]
    center = our_frame.ego2global[:2, 3]
    for element in elements:
        assert (np.linalg.norm(element.points[:, :2] - center, axis=1) <= 30.0 + 1e-6).all()
    for divider in by_category["divider"]:  # straight lines at y offsets 0 and 3, clipped to the disc
        offset = divider.points[0, 1] - center[1]
        length = np.linalg.norm(np.diff(divider.points, axis=0), axis=1).sum()
        assert length == pytest.approx(2 * np.sqrt(30**2 - offset**2), abs=0.2)
    boundary_offsets = sorted(float(np.mean(b.points[:, 1]) - center[1]) for b in by_category["boundary"])
    assert boundary_offsets == pytest.approx([-10.0, 10.0], abs=1e-6)  # the lane's inner edge is not a boundary
    crossing = by_category["ped_crossing"][0]
    assert crossing.closed and crossing.points[:, 0].min() - center[0] == pytest.approx(20.0)
    assert dataset._maps.index("singapore-onenorth") is dataset._maps.index("singapore-onenorth")  # cached
    assert pickle.loads(pickle.dumps(dataset._maps))._indices == {}  # workers start with an empty cache


def test_with_map_errors(tmp_path: Path, nuscenes_keyframe_dir: Path) -> None:
    with pytest.raises(FileNotFoundError, match="maps/expansion/boston-seaport.json"):
        NuScenesMapCache(tmp_path).index("boston-seaport")
    dataset = NuScenesDataset(ann_file=PICKLE_NAME, data_root=str(nuscenes_keyframe_dir), with_map=True,
                              with_cameras=False, data_prefix={k: "" for k in NUSCENES_DATA_PREFIX})
    with pytest.raises(FrameError, match="no 'location'"):
        dataset.get_frame(0)


def test_scene_splits(tmp_path: Path) -> None:
    assert scene_splits("v1.0-mini", tmp_path, ["scene-0061", "scene-0103"]) == {
        "train": ["scene-0061"], "val": ["scene-0103"]}
    assert scene_splits("v1.0-trainval", tmp_path, ["scene-0003"]) == {"train": [], "val": ["scene-0003"]}
    with pytest.raises(ValueError, match=r"synthetic-7.*splits.json"):
        scene_splits("v1.0-mini", tmp_path, ["synthetic-7"])
    (tmp_path / "splits.json").write_text(json.dumps({"train": [], "val": ["synthetic-7"]}))
    assert scene_splits("v1.0-mini", tmp_path, ["synthetic-7", "scene-0061"]) == {
        "train": ["scene-0061"], "val": ["synthetic-7"]}
    # a custom version takes its splits from splits.json alone
    assert scene_splits("v1.0-synthetic", tmp_path, ["synthetic-7"]) == {"train": [], "val": ["synthetic-7"]}
    (tmp_path / "splits.json").unlink()
    with pytest.raises(ValueError, match="no official split.*splits.json"):
        scene_splits("v1.0-synthetic", tmp_path, [])


def test_unknown_scene_without_splits_file(nuscenes_keyframe_dir: Path, tmp_path: Path) -> None:
    from nuscenes.nuscenes import NuScenes

    root = build_nuscenes_fixture(nuscenes_keyframe_dir, tmp_path, write_splits=False).root
    nusc = NuScenes(version="v1.0-mini", dataroot=str(root), verbose=False)
    with pytest.raises(ValueError, match="fixture-scene-0001"):
        build_infos(nusc, root, "v1.0-mini")
    assert _create_data_main()(["nuscenes", "--root", str(tmp_path / "absent"), "--version", "v1.0-mini"]) == 1
