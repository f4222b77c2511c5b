"""The Argoverse 2 writers: av2's own readers load the sensor log, the map and the motion
scenario; the schemas match the real files in ../shared/data."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
from scene_factory import make_scene

from perception.datasets.synthetic.writers import av2_sensor, motion, stable_uuid
from perception.structures import apply_transform


@pytest.fixture(scope="module")
def scene():
    return make_scene("scene-0000", 0)


@pytest.fixture(scope="module")
def log_dir(scene, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return av2_sensor.write_av2_log(scene, tmp_path_factory.mktemp("av2"), "train")


@pytest.fixture(scope="module")
def scenario_dir(scene, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return motion.write_scenario(scene, tmp_path_factory.mktemp("motion"), "val")


def test_sweeps_and_cuboids(scene, log_dir: Path) -> None:
    from av2.structures.cuboid import CuboidList
    from av2.structures.sweep import Sweep
    from av2.utils.io import read_city_SE3_ego

    files = sorted((log_dir / "sensors" / "lidar").glob("*.feather"), key=lambda p: int(p.stem))
    assert len(files) == 11  # 21 ticks at 20 Hz -> every other one
    sweep = Sweep.from_feather(files[1])
    expected = apply_transform(scene.lidar2ego, scene.ticks[2].points[:, :3].astype(np.float64))
    np.testing.assert_allclose(sweep.xyz, expected, rtol=2e-3, atol=2e-2)  # float16 storage, as AV2
    assert sweep.timestamp_ns == 100_000_000
    np.testing.assert_array_equal(sweep.laser_number, scene.ticks[2].points[:, 4].astype(np.uint8))
    cuboids = CuboidList.from_feather(log_dir / "annotations.feather").cuboids
    assert len(cuboids) == 11 * 6
    first = [c for c in cuboids if c.timestamp_ns == 0]
    car = next(c for c in first if c.category == "REGULAR_VEHICLE" and c.length_m == 4.5)
    np.testing.assert_allclose(car.dst_SE3_object.translation, [15.0, 0.0, 0.8])  # ego frame
    assert {c.category for c in cuboids} == {"REGULAR_VEHICLE", "BOX_TRUCK", "CONSTRUCTION_CONE",
                                             "CONSTRUCTION_BARREL", "BICYCLE"}
    table = feather.read_table(log_dir / "annotations.feather").to_pandas()
    assert table["num_interior_pts"].min() >= 15
    assert table["track_uuid"].nunique() == 6
    poses = read_city_SE3_ego(log_dir)
    np.testing.assert_allclose(poses[50_000_000].translation, scene.ticks[1].ego2global[:3, 3])
    images = (log_dir / "sensors" / "cameras" / "ring_front_center").glob("*.jpg")
    assert sorted(int(p.stem) for p in images) == [0, 500_000_000, 1_000_000_000]


def test_schemas_match_real_log(log_dir: Path, av2_sensor_log_dir: Path) -> None:
    real_lidar = next((av2_sensor_log_dir / "sensors" / "lidar").glob("*.feather"))
    ours_lidar = next((log_dir / "sensors" / "lidar").glob("*.feather"))
    pairs = [(real_lidar, ours_lidar)] + [
        (av2_sensor_log_dir / name, log_dir / name) for name in (
            "annotations.feather", "city_SE3_egovehicle.feather", "calibration/egovehicle_SE3_sensor.feather",
            "calibration/intrinsics.feather")]
    for real, ours in pairs:
        real_schema, our_schema = feather.read_table(real).schema, feather.read_table(ours).schema
        assert [(f.name, f.type) for f in our_schema] == [(f.name, f.type) for f in real_schema], ours.name


def test_map_round_trip(scene, log_dir: Path) -> None:
    from av2.map.lane_segment import LaneMarkType
    from av2.map.map_api import ArgoverseStaticMap

    static_map = ArgoverseStaticMap.from_map_dir(log_dir / "map", build_raster=True)
    assert static_map.log_id == log_dir.name == stable_uuid("av2-log", scene.name)
    lanes = static_map.vector_lane_segments
    assert len(lanes) == len(scene.road_map.lanes)
    for index, lane in enumerate(scene.road_map.lanes, start=1):
        segment = lanes[index]
        np.testing.assert_allclose(segment.left_lane_boundary.xyz[:, :2], lane.left_boundary, atol=1e-6)
        np.testing.assert_allclose(segment.right_lane_boundary.xyz[:, :2], lane.right_boundary, atol=1e-6)
        assert segment.is_intersection == lane.is_intersection
        if lane.is_intersection:  # junction lanes are unpainted, as in real AV2 maps
            assert segment.left_mark_type == segment.right_mark_type == LaneMarkType.NONE
    assert lanes[1].successors == [2] and lanes[2].predecessors == [1]
    assert lanes[3].left_mark_type == LaneMarkType.DOUBLE_SOLID_YELLOW
    assert lanes[3].right_mark_type == LaneMarkType.DASHED_WHITE
    assert lanes[4].right_mark_type == LaneMarkType.NONE
    crossing = next(iter(static_map.vector_pedestrian_crossings.values()))
    ours = {tuple(p) for p in scene.road_map.ped_crossings[0]}
    assert {tuple(p) for p in crossing.polygon[:, :2]} == ours and len(crossing.polygon) == 5
    assert len(static_map.vector_drivable_areas) == 3
    heights = static_map.raster_ground_height_layer.get_ground_height_at_xy(np.array([[50.0, 48.0, 0.0]]))
    assert heights[0] == 0.0
    roi = static_map.get_raster_layer_points_boolean(np.array([[50.0, 48.0, 0.0], [50.0, 80.0, 0.0]]), "ROI")
    assert roi.tolist() == [True, False]


def test_motion_scenario(scene, scenario_dir: Path, av2_motion_scenario_dir: Path) -> None:
    from av2.datasets.motion_forecasting.data_schema import ObjectType, TrackCategory
    from av2.datasets.motion_forecasting.scenario_serialization import load_argoverse_scenario_parquet
    from av2.map.map_api import ArgoverseStaticMap

    path = next(scenario_dir.glob("scenario_*.parquet"))
    scenario = load_argoverse_scenario_parquet(path)
    assert len(scenario.timestamps_ns) == 90  # the factory's 90 trajectory ticks (< 110)
    tracks = {t.track_id: t for t in scenario.tracks}
    assert "building" not in tracks and set(tracks) >= {"AV", "car-ahead", "ped-cross", "cone"}
    focal = tracks[scenario.focal_track_id]
    assert focal.category == TrackCategory.FOCAL_TRACK and focal.object_type == ObjectType.VEHICLE
    assert len(focal.object_states) == 90
    assert [s.observed for s in focal.object_states] == [True] * 30 + [False] * 60
    av = tracks["AV"].object_states
    np.testing.assert_allclose(av[20].position, scene.trajectory_ticks[20].ego2global[:2, 3])
    np.testing.assert_allclose(av[20].velocity, [10.0, 0.0], atol=1e-9)
    assert tracks["ped-cross"].object_type == ObjectType.PEDESTRIAN
    assert tracks["bike"].object_type == ObjectType.CYCLIST
    assert tracks["cone"].category == TrackCategory.UNSCORED_TRACK
    real = pq.read_table(next(av2_motion_scenario_dir.glob("*.parquet"))).schema
    ours = pq.read_table(path).schema
    assert [(f.name, f.type) for f in ours] == [(f.name, f.type) for f in real]
    static_map = ArgoverseStaticMap.from_json(next(scenario_dir.glob("log_map_archive_*.json")))
    assert len(static_map.vector_lane_segments) == 4


def test_motion_window_length(tmp_path: Path) -> None:
    from av2.datasets.motion_forecasting.scenario_serialization import load_argoverse_scenario_parquet

    long_scene = make_scene("scene-long", 0, num_ticks=1, num_trajectory=130, history_steps=50)
    folder = motion.write_scenario(long_scene, tmp_path, "train")
    scenario = load_argoverse_scenario_parquet(next(folder.glob("*.parquet")))
    assert len(scenario.timestamps_ns) == 110
    assert sum(s.observed for s in scenario.tracks[0].object_states) == 50
    short_scene = make_scene("scene-short", 0, num_ticks=1, num_trajectory=60)
    with pytest.raises(ValueError, match="scene-short.*>= 80"):
        motion.write_scenario(short_scene, tmp_path, "train")
