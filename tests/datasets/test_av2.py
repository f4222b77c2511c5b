"""Argoverse 2 sensor loader on the real sample log (../shared/data/av2/sensor/val/7fab...)."""
from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import numpy as np
import pytest
from av2.geometry.se3 import SE3
from av2.structures.cuboid import CuboidList
from av2.utils.io import read_city_SE3_ego, read_feather
from shapely.geometry import LineString, Point, Polygon

from perception.datasets.av2 import AV2_CLASSES, AV2SensorDataset
from perception.datasets.av2.annotations import track_velocities
from perception.datasets.av2.categories import AV2_ALL_CATEGORIES, AV2_TO_NUSCENES, labels_for
from perception.datasets.av2.create_infos import create_infos
from perception.datasets.av2.map_elements import map_elements_near, mark_type_of
from perception.registry import DATASETS
from perception.structures import NUSCENES_CLASSES, FrameError, invert_transform, wrap_angle

pytestmark = pytest.mark.real_data  # all but test_track_velocities_* read ../shared/data

REPO = Path(__file__).resolve().parents[2]
STATIC = ("BOLLARD", "CONSTRUCTION_CONE", "CONSTRUCTION_BARREL", "SIGN", "STOP_SIGN")


@pytest.fixture(scope="module")
def infos(av2_sensor_log_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Infos of the shared log, written to a temp folder and pointing at the shared files."""
    root = av2_sensor_log_dir.parents[1]
    return create_infos(root, "val", tmp_path_factory.mktemp("av2"), max_sweeps=5)


@pytest.fixture(scope="module")
def dataset(infos: Path, av2_sensor_log_dir: Path) -> AV2SensorDataset:
    return AV2SensorDataset(ann_file=str(infos), data_root=str(av2_sensor_log_dir.parents[1]), with_map=True)


@pytest.fixture(scope="module")
def key_frame(dataset: AV2SensorDataset):
    return dataset.get_frame(1)


def test_info_records(infos: Path, av2_sensor_log_dir: Path) -> None:
    data = pickle.loads(infos.read_bytes())
    assert data["metainfo"]["classes"] == AV2_CLASSES and len(AV2_CLASSES) == 26
    records = data["data_list"]
    assert [r["timestamp_ns"] for r in records] == [315966265259836000, 315966265360032000]
    first, second = records
    assert second["timestamp"] == pytest.approx(315966265.360032)
    assert not Path(second["lidar_path"]).is_absolute()  # relative to the root, not copied
    assert [s["timestamp"] for s in second["sweeps"]] == [first["timestamp"]] and first["sweeps"] == []
    assert np.array_equal(second["lidar2ego"], np.eye(4)) and second["location"] == "PIT"
    poses = read_city_SE3_ego(av2_sensor_log_dir)
    np.testing.assert_allclose(second["ego2global"], poses[second["timestamp_ns"]].transform_matrix)
    cams = second["cameras"]
    assert len(cams) == 7 and not cams["ring_front_center"]["image_found"]
    assert cams["ring_front_center"]["image_path"].endswith(
        "sensors/cameras/ring_front_center/315966265360032000.jpg")
    assert cams["ring_front_center"]["image_size"] == (1550, 2048)  # portrait
    annotations = read_feather(av2_sensor_log_dir / "annotations.feather")
    assert len(second["annos"]["names"]) == (annotations.timestamp_ns == second["timestamp_ns"]).sum() == 81


def test_points(key_frame) -> None:
    assert key_frame.point_features == ("x", "y", "z", "intensity")
    assert 98_000 < len(key_frame.points) < 100_000
    xyz = key_frame.points[:, :3]
    assert np.abs(xyz[:, :2]).max() < 300 and -10 < np.median(xyz[:, 2]) < 5
    assert 0 <= key_frame.feature("intensity").min() and key_frame.feature("intensity").max() <= 255
    # the ground under the ego is ~0 m in the ego frame (origin on the ground at the rear axle)
    near = np.linalg.norm(xyz[:, :2], axis=1) < 8
    assert -1.0 < np.percentile(xyz[near, 2], 5) < 0.5


def test_boxes_match_av2_interior_counts(key_frame) -> None:
    boxes = key_frame.boxes
    assert len(boxes) == 81 and key_frame.class_names == AV2_CLASSES
    av2_counts = boxes.num_lidar_pts
    ours = boxes.count_points(key_frame.points)
    dense = av2_counts >= 10
    assert dense.sum() >= 20
    assert np.corrcoef(av2_counts[dense], ours[dense])[0, 1] > 0.9
    assert np.median(np.abs(ours[dense] - av2_counts[dense]) / av2_counts[dense]) < 0.05


def test_boxes_round_trip_and_av2_city_frame(key_frame, av2_sensor_log_dir: Path) -> None:
    boxes = key_frame.boxes
    city = boxes.transform(key_frame.lidar2global)
    back = city.transform(invert_transform(key_frame.lidar2global))
    np.testing.assert_allclose(back.data[:, :6], boxes.data[:, :6], atol=1e-6)
    # AV2 city poses carry ~3 deg of pitch/roll, so projecting headings onto the xy plane
    # (Boxes3D.transform) is not exactly invertible: ~1 mrad after a round trip
    assert np.abs(wrap_angle(back.yaws - boxes.yaws)).max() < 5e-3
    # independent check: av2's own cuboid transform into the city frame
    cuboids = CuboidList.from_feather(av2_sensor_log_dir / "annotations.feather")
    ts = int(round(key_frame.timestamp * 1e9 / 1000)) * 1000
    mine = CuboidList([c for c in cuboids.cuboids if c.timestamp_ns == ts])
    city_se3 = SE3(key_frame.ego2global[:3, :3], key_frame.ego2global[:3, 3])
    np.testing.assert_allclose(mine.transform(city_se3).xyz_center_m, city.centers, atol=1e-6)


def test_velocities(key_frame, dataset: AV2SensorDataset) -> None:
    boxes = key_frame.boxes
    names = [key_frame.class_names[i] for i in boxes.labels]
    speed = np.linalg.norm(boxes.velocities, axis=1)
    assert np.isfinite(speed).all() and speed.max() < 40
    static = np.array([n in STATIC for n in names])
    assert static.sum() >= 5 and np.median(speed[static]) < 0.1 and speed[static].max() < 0.5
    moving = (speed > 2.0) & np.isin(names, ["REGULAR_VEHICLE", "BUS", "BOX_TRUCK", "TRUCK"])
    assert moving.sum() >= 3  # vehicles drive along their heading (up to reversing)
    heading = np.stack([np.cos(boxes.yaws), np.sin(boxes.yaws)], axis=1)
    cos = np.abs((heading * boxes.velocities).sum(1)) / speed
    assert np.all(cos[moving] > 0.9)


def test_track_velocities_finite_differences() -> None:
    tracks = np.array(["a", "a", "a", "b", "c", "c"])
    times = np.array([0.0, 0.1, 0.2, 0.0, 0.0, 5.0])
    centers = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [5, 5, 0], [0, 0, 0], [9, 9, 0]], float)
    velocity = track_velocities(tracks, times, centers, max_time_diff=1.5)
    np.testing.assert_allclose(velocity[:3], [[10, 0, 0]] * 3)
    assert np.isnan(velocity[3:]).all()  # seen once, or neighbours too far apart in time


def test_multi_sweep_motion_compensation(infos: Path, av2_sensor_log_dir: Path) -> None:
    ds = AV2SensorDataset(ann_file=str(infos), data_root=str(av2_sensor_log_dir.parents[1]), load_sweeps=3)
    frame = ds.get_frame(1)
    assert frame.point_features[-1] == "time_lag"
    lag = frame.feature("time_lag")
    old = lag > 0
    assert 98_000 < old.sum() < 100_000 and np.allclose(lag[old], 0.100196, atol=1e-6)
    poses = read_city_SE3_ego(av2_sensor_log_dir)
    raw = read_feather(av2_sensor_log_dir / "sensors/lidar/315966265259836000.feather")
    expected = poses[315966265360032000].inverse().compose(poses[315966265259836000]).transform_point_cloud(
        raw[["x", "y", "z"]].to_numpy().astype(float))
    np.testing.assert_allclose(frame.points[old, :3], expected, atol=1e-3)


def test_static_objects_align_across_sweeps(dataset: AV2SensorDataset) -> None:
    old, key = dataset.get_data_info(0), dataset.get_data_info(1)
    old2key = invert_transform(key["ego2global"]) @ old["ego2global"]
    key_centres = dict(zip(key["annos"]["track_ids"], key["annos"]["boxes"][:, :3]))
    moved = []
    for track, name, centre in zip(old["annos"]["track_ids"], old["annos"]["names"], old["annos"]["boxes"][:, :3]):
        if name in STATIC and track in key_centres:
            moved.append(np.linalg.norm(old2key[:3, :3] @ centre + old2key[:3, 3] - key_centres[track]))
    assert len(moved) >= 5 and np.median(moved) < 0.05


def test_map_near_ego_path(key_frame, dataset: AV2SensorDataset, av2_sensor_log_dir: Path) -> None:
    categories = {e.category for e in key_frame.map_elements}
    assert {"divider", "ped_crossing", "drivable_area", "boundary", "lane_centerline"} <= categories
    ego = Point(key_frame.ego2global[:2, 3])
    centerlines = [LineString(e.points[:, :2]) for e in key_frame.map_elements if e.category == "lane_centerline"]
    assert min(line.distance(ego) for line in centerlines) < 2.0
    dividers = [e for e in key_frame.map_elements if e.category == "divider"]
    assert {mark_type_of(e) for e in dividers} <= {"SOLID_YELLOW", "SOLID_WHITE", "DASHED_WHITE",
                                                     "DASHED_YELLOW", "DOUBLE_SOLID_YELLOW", "UNKNOWN"}
    for element in key_frame.map_elements:  # within the radius (L-inf, any vertex), as av2 selects
        slack = 5.0 if element.category == "lane_centerline" else 1e-6  # lanes chosen by boundaries
        assert np.abs(element.points[:, :2] - key_frame.ego2global[:2, 3]).max(axis=1).min() <= 50.0 + slack
    crossing = next(e for e in key_frame.map_elements if e.category == "ped_crossing")
    assert crossing.closed and len(crossing.points) == 4
    # the whole ego path lies on the drivable area and near lane centerlines
    avm = dataset._static_map(key_frame.scene, dataset.get_data_info(1)["map_dir"])
    poses = read_city_SE3_ego(av2_sensor_log_dir)
    path = np.array([p.translation[:2] for p in poses.values()])[::100]
    lane_dist, area_dist = [], []
    for xy in path:
        elements = map_elements_near(avm, xy, 30.0)
        point = Point(xy)
        lane_dist.append(min(LineString(e.points[:, :2]).distance(point)
                             for e in elements if e.category == "lane_centerline"))
        area_dist.append(min(Polygon(e.points).distance(point) for e in elements if e.category == "drivable_area"))
    assert np.median(area_dist) == pytest.approx(0.0, abs=1e-6) and np.max(lane_dist) < 3.0


def test_map_cached_per_instance(dataset: AV2SensorDataset) -> None:
    dataset.get_frame(0)
    first = dataset._maps[dataset.get_data_info(0)["log_id"]]
    dataset.get_frame(1)
    assert dataset._maps[dataset.get_data_info(1)["log_id"]] is first and len(dataset._maps) == 1


def test_nuscenes_mapping_and_registry(infos: Path, av2_sensor_log_dir: Path) -> None:
    assert set(AV2_TO_NUSCENES) == set(AV2_ALL_CATEGORIES)
    assert set(v for v in AV2_TO_NUSCENES.values() if v) <= set(NUSCENES_CLASSES)
    keep, labels = labels_for(["REGULAR_VEHICLE", "BICYCLIST", "BUS"], "nuscenes")
    assert keep.tolist() == [0, 2] and [NUSCENES_CLASSES[i] for i in labels] == ["car", "bus"]
    ds = DATASETS.build(dict(type="AV2SensorDataset", ann_file=str(infos),
                             data_root=str(av2_sensor_log_dir.parents[1]), class_mapping="nuscenes"))
    frame = ds[1]["frame"]
    assert frame.class_names == NUSCENES_CLASSES
    names = [NUSCENES_CLASSES[i] for i in frame.boxes.labels]
    assert 0 < len(frame.boxes) < 81 and "car" in names and "pedestrian" in names
    with pytest.raises(ValueError, match="class_mapping"):
        AV2SensorDataset(ann_file=str(infos), class_mapping="kitti")


def test_cli(av2_sensor_log_dir: Path, tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("create_data", REPO / "tools" / "create_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    main = module.main
    root = str(av2_sensor_log_dir.parents[1])
    assert main(["av2", "--root", root, "--split", "val", "--out-dir", str(tmp_path), "--max-sweeps", "1"]) == 0
    assert len(pickle.loads((tmp_path / "av2_infos_val.pkl").read_bytes())["data_list"]) == 2
    assert not list(tmp_path.glob("*.tmp"))
    assert main(["av2", "--root", str(tmp_path), "--split", "val"]) == 1  # no such split


# ---------------------------------------------------------------- bad input


def _fake_root(log_dir: Path, tmp_path: Path) -> Path:
    """A root/val/<log> copy made of symlinks to the shared files (sweeps linked one by one)."""
    fake = tmp_path / "root" / "val" / log_dir.name
    (fake / "sensors" / "lidar").mkdir(parents=True)
    for name in ("annotations.feather", "city_SE3_egovehicle.feather", "calibration", "map"):
        (fake / name).symlink_to(log_dir / name)
    for sweep in (log_dir / "sensors" / "lidar").iterdir():
        (fake / "sensors" / "lidar" / sweep.name).symlink_to(sweep)
    return fake


def _dataset(fake: Path, tmp_path: Path, **kwargs) -> AV2SensorDataset:
    infos = create_infos(fake.parents[1], "val", tmp_path)
    return AV2SensorDataset(ann_file=str(infos), data_root=str(fake.parents[1]), **kwargs)


def test_truncated_and_garbage_sweeps(av2_sensor_log_dir: Path, tmp_path: Path) -> None:
    fake = _fake_root(av2_sensor_log_dir, tmp_path)
    ds = _dataset(fake, tmp_path, load_sweeps=1)
    target = fake / "sensors" / "lidar" / "315966265259836000.feather"
    data = target.read_bytes()
    target.unlink()
    target.write_bytes(data[: len(data) // 2])
    with pytest.raises(FrameError, match="315966265259836000.feather"):
        ds.get_frame(0)
    with pytest.raises(FrameError, match="315966265259836000.feather"):
        ds.get_frame(1)  # through the previous-sweep path
    target.write_bytes(b"not a feather file at all")
    with pytest.raises(FrameError, match="cannot read AV2 sweep"):
        ds.get_frame(0)
    target.unlink()
    with pytest.raises(FrameError, match="not found"):
        ds.get_frame(0)


def test_nan_points(av2_sensor_log_dir: Path, tmp_path: Path) -> None:
    fake = _fake_root(av2_sensor_log_dir, tmp_path)
    target = fake / "sensors" / "lidar" / "315966265360032000.feather"
    table = read_feather(target)
    target.unlink()
    table.loc[10, "x"] = np.nan
    table.loc[20, "z"] = np.inf
    table.to_feather(target)
    ds = _dataset(fake, tmp_path)
    with pytest.raises(FrameError, match=r"315966265360032000.feather: 2 of \d+ points are NaN/Inf"):
        ds.get_frame(1)
    assert len(ds.get_frame(0).points) > 0


def test_empty_annotations_give_empty_boxes(av2_sensor_log_dir: Path, tmp_path: Path) -> None:
    fake = _fake_root(av2_sensor_log_dir, tmp_path)
    table = read_feather(av2_sensor_log_dir / "annotations.feather")
    (fake / "annotations.feather").unlink()
    table.iloc[:0].reset_index(drop=True).to_feather(fake / "annotations.feather")
    ds = _dataset(fake, tmp_path)
    assert len(ds) == 2  # unlabelled: every sweep is a frame
    frame = ds.get_frame(1)
    assert len(frame.boxes) == 0 and frame.boxes.data.shape == (0, 9) and len(frame.points) > 90_000


def test_corrupt_annotations_name_the_file(av2_sensor_log_dir: Path, tmp_path: Path) -> None:
    fake = _fake_root(av2_sensor_log_dir, tmp_path)
    (fake / "annotations.feather").unlink()
    (fake / "annotations.feather").write_bytes(b"ARROW1 but then garbage")
    with pytest.raises(FrameError, match="cannot read AV2 annotations .*annotations.feather"):
        create_infos(fake.parents[1], "val", tmp_path)


def test_missing_pose_names_timestamp(av2_sensor_log_dir: Path, tmp_path: Path) -> None:
    fake = _fake_root(av2_sensor_log_dir, tmp_path)
    poses = read_feather(av2_sensor_log_dir / "city_SE3_egovehicle.feather")
    (fake / "city_SE3_egovehicle.feather").unlink()
    (fake / "annotations.feather").unlink()  # unlabelled, so the sweep pose is the first lookup
    poses[poses.timestamp_ns != 315966265360032000].reset_index(drop=True).to_feather(
        fake / "city_SE3_egovehicle.feather")
    with pytest.raises(FrameError, match="no ego pose at timestamp 315966265360032000"):
        create_infos(fake.parents[1], "val", tmp_path)
    assert not (tmp_path / "av2_infos_val.pkl").exists()


def test_missing_images_raise_only_when_requested(infos: Path, av2_sensor_log_dir: Path) -> None:
    root = str(av2_sensor_log_dir.parents[1])
    frame = AV2SensorDataset(ann_file=str(infos), data_root=root).get_frame(0)
    assert len(frame.cameras) == 7 and frame.cameras["ring_front_center"].image is None
    projection = frame.lidar2img("ring_front_center") @ np.array([20.0, 0.0, 1.0, 1.0])
    u, v = projection[:2] / projection[2]
    assert 0 < u < 1550 and 0 < v < 2048  # a point ahead projects into the front image
    with pytest.raises(FrameError, match="ring_.*image file not found"):
        AV2SensorDataset(ann_file=str(infos), data_root=root, load_images=True).get_frame(0)
    with pytest.raises(FileNotFoundError, match="AV2 info file not found"):
        AV2SensorDataset(ann_file="/nonexistent/av2_infos_val.pkl")
