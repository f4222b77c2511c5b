"""The nuScenes writers: the devkit loads the tables, the official detection eval scores the
ground truth perfectly, and the map expansion round-trips through ``NuScenesMap``."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from perception.datasets.nuscenes.map_api import load_nuscenes_map
from PIL import Image
from scene_factory import make_scene
from shapely.geometry import LineString, Point

from perception.datasets.synthetic.writers import nuscenes_map, nuscenes_tables, stable_token

VERSION = "v1.0-synthetic"
PRESENT = {"car", "truck", "traffic_cone", "barrier", "bicycle"}


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    root = tmp_path_factory.mktemp("nuscenes")
    scenes = [make_scene("scene-0000", 0), make_scene("scene-0001", 1)]
    rows = [nuscenes_tables.write_scene_files(scene, root) for scene in scenes]
    nuscenes_map.write_map_expansion(root, scenes[0].road_map)
    png = nuscenes_map.write_semantic_prior(root, scenes[0].road_map)
    nuscenes_tables.write_tables(root, rows, {"train": ["scene-0000"], "val": ["scene-0001"]},
                                 {scenes[0].location: png}, VERSION)
    return root, scenes


@pytest.fixture(scope="module")
def nusc(written):
    from nuscenes import NuScenes

    return NuScenes(VERSION, str(written[0]), verbose=False)


def test_tables_load_and_link(nusc, written) -> None:
    root, scenes = written
    assert len(nusc.scene) == 2 and len(nusc.sample) == 6
    for scene_rec, scene in zip(nusc.scene, scenes):
        sample = nusc.get("sample", scene_rec["first_sample_token"])
        assert set(sample["data"]) == {"LIDAR_TOP"} | {cam.name for cam in scene.cameras}
        # walk the LiDAR chain through sweeps: every tick once, time increasing
        record = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
        stamps = [record["timestamp"]]
        while record["next"]:
            record = nusc.get("sample_data", record["next"])
            stamps.append(record["timestamp"])
        assert len(stamps) == len(scene.ticks) and np.all(np.diff(stamps) == 50_000)
        last = nusc.get("sample", scene_rec["last_sample_token"])
        assert last["timestamp"] == 1_000_000 and scene_rec["nbr_samples"] == 3
    sweep = next(r for r in nusc.sample_data if not r["is_key_frame"])
    assert sweep["filename"].startswith("sweeps/LIDAR_TOP/")
    points = np.fromfile(root / sweep["filename"], dtype=np.float32).reshape(-1, 5)
    tick = scenes[0].ticks[1] if "scene-0000" in sweep["filename"] else scenes[1].ticks[1]
    np.testing.assert_array_equal(points, tick.points)
    cam = nusc.get("sample_data", nusc.sample[0]["data"]["CAM_FRONT"])
    with Image.open(root / cam["filename"]) as image:
        assert image.format == "JPEG" and image.size == (32, 18) == (cam["width"], cam["height"])
    calib = nusc.get("calibrated_sensor", cam["calibrated_sensor_token"])
    assert np.allclose(calib["camera_intrinsic"], scenes[0].cameras[0].cam2img)
    splits = json.loads((root / "splits.json").read_text())
    assert splits == {"train": ["scene-0000"], "val": ["scene-0001"]}


def test_annotations(nusc, written) -> None:
    from nuscenes.utils.data_classes import Box, LidarPointCloud
    from nuscenes.utils.geometry_utils import points_in_box
    from pyquaternion import Quaternion

    root, _ = written
    names = {nusc.get("sample_annotation", t)["category_name"] for t in nusc.sample[0]["anns"]}
    assert names == {"vehicle.car", "vehicle.truck", "movable_object.trafficcone", "movable_object.barrier",
                     "vehicle.bicycle"}  # no building (static), no far car, no pedestrian 100 m away
    assert len(nusc.sample[0]["anns"]) == 6
    # num_lidar_pts agrees with the devkit's own count on the written point cloud
    sample = nusc.sample[0]
    lidar = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
    cloud = LidarPointCloud.from_file(str(root / lidar["filename"]))
    pose = nusc.get("ego_pose", lidar["ego_pose_token"])
    calib = nusc.get("calibrated_sensor", lidar["calibrated_sensor_token"])
    for token in sample["anns"]:
        ann = nusc.get("sample_annotation", token)
        box = Box(ann["translation"], ann["size"], Quaternion(ann["rotation"]))
        box.translate(-np.array(pose["translation"]))
        box.rotate(Quaternion(pose["rotation"]).inverse)
        box.translate(-np.array(calib["translation"]))
        box.rotate(Quaternion(calib["rotation"]).inverse)
        assert ann["num_lidar_pts"] == int(points_in_box(box, cloud.points[:3]).sum()) >= 15
    car = next(a for a in nusc.sample_annotation if a["category_name"] == "vehicle.car"
               and a["translation"][0] == 35.0 and a["prev"] == "")
    assert car["size"] == [1.9, 4.5, 1.6]  # (w, l, h)
    np.testing.assert_allclose(nusc.box_velocity(car["token"]), [8.0, 0.0, 0.0], atol=1e-9)
    truck = next(a for a in nusc.sample_annotation if a["category_name"] == "vehicle.truck")
    assert abs(Quaternion(truck["rotation"]).yaw_pitch_roll[0]) == pytest.approx(np.pi)


def _submission(nusc, shift: float = 0.0) -> dict:
    from nuscenes.eval.detection.utils import category_to_detection_name

    results = {}
    for sample in nusc.sample:
        boxes = []
        for token in sample["anns"]:
            ann = nusc.get("sample_annotation", token)
            attrs = [nusc.get("attribute", a)["name"] for a in ann["attribute_tokens"]]
            velocity = np.nan_to_num(nusc.box_velocity(token))[:2]
            boxes.append({"sample_token": sample["token"],
                          "translation": [ann["translation"][0] + shift, *ann["translation"][1:]],
                          "size": ann["size"], "rotation": ann["rotation"], "velocity": velocity.tolist(),
                          "detection_name": category_to_detection_name(ann["category_name"]),
                          "detection_score": 1.0, "attribute_name": attrs[0] if attrs else ""})
        results[sample["token"]] = boxes
    return {"meta": {"use_camera": False, "use_lidar": True, "use_radar": False, "use_map": False,
                     "use_external": False}, "results": results}


@pytest.mark.parametrize("shift", [0.0, 1.5])
def test_official_detection_eval(nusc, tmp_path: Path, shift: float) -> None:
    """Custom split ``synthetic_val`` from ``<version>/splits.json``: no monkeypatching needed."""
    from nuscenes.eval.common.config import config_factory
    from nuscenes.eval.detection.evaluate import DetectionEval

    path = tmp_path / "results.json"
    path.write_text(json.dumps(_submission(nusc, shift)))
    evaluator = DetectionEval(nusc, config_factory("detection_cvpr_2019"), str(path), "synthetic_val",
                              str(tmp_path / "eval"), verbose=False)
    metrics, _ = evaluator.evaluate()
    aps = {name: metrics.mean_dist_aps[name] for name in PRESENT}
    if shift == 0.0:
        assert aps == pytest.approx({name: 1.0 for name in PRESENT}, abs=1e-9)
        # true-positive errors of the present classes are zero (the NDS itself is bounded by the
        # classes absent from these tiny scenes, whose AP counts as 0 and errors as 1)
        errors = {name: metrics._label_tp_errors[name] for name in PRESENT}
        for name, per_metric in errors.items():
            for metric, value in per_metric.items():
                assert np.isnan(value) or value < 1e-6, (name, metric, value)
        assert metrics.mean_ap == pytest.approx(len(PRESENT) / 10)
    else:
        assert all(ap < 0.75 for ap in aps.values()) and metrics.nd_score < 0.8


def test_map_round_trip(written) -> None:
    root, scenes = written
    road_map = scenes[0].road_map
    nmap = load_nuscenes_map(root, road_map.location)
    loc = road_map.location
    lane_token = {lane.lane_id: stable_token(loc, "lane", lane.lane_id) for lane in road_map.lanes}
    for lane in road_map.lanes:
        poses = np.array(nmap.discretize_lanes([lane_token[lane.lane_id]], 1.0)[lane_token[lane.lane_id]])
        center = LineString(lane.centerline)
        assert max(center.distance(Point(p[:2])) for p in poses) < 1e-6
        np.testing.assert_allclose(poses[[0, -1], :2], lane.centerline[[0, -1]], atol=1e-6)
        assert nmap.get_arcline_path(lane_token[lane.lane_id])
    assert nmap.get_outgoing_lane_ids(lane_token["east-right-a"]) == [lane_token["east-right-b"]]
    assert nmap.get_incoming_lane_ids(lane_token["east-right-b"]) == [lane_token["east-right-a"]]
    assert len(nmap.lane) == 3 and len(nmap.lane_connector) == 1  # the intersection lane
    for record, (coords, kind) in zip(nmap.lane_divider + nmap.road_divider, road_map.dividers):
        assert kind in ("lane_dashed", "road_divider")
        np.testing.assert_allclose(np.asarray(nmap.extract_line(record["line_token"]).coords), coords, atol=1e-6)
    crossing = nmap.extract_polygon(nmap.ped_crossing[0]["polygon_token"])
    np.testing.assert_allclose(np.asarray(crossing.exterior.coords)[:-1], road_map.ped_crossings[0], atol=1e-6)
    assert [r["is_intersection"] for r in nmap.road_segment] == [f for _, f in road_map.road_segments]
    near = nmap.get_records_in_radius(60.0, 48.0, 10.0, ["lane", "ped_crossing", "lane_divider", "stop_line"])
    assert lane_token["east-left"] in near["lane"] and not near["ped_crossing"]
    assert nmap.get_closest_lane(60.0, 48.2) == lane_token["east-left"]
    assert nmap.stop_line[0]["stop_line_type"] == "PED_CROSSING"
    geoms = nmap.get_map_geom((100.0, 48.0, 80.0, 40.0), 0.0, ["drivable_area", "lane_divider"])
    assert geoms[0][1] and geoms[0][1][0].area > 0
