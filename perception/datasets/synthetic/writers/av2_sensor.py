"""Write a scene as an Argoverse 2 sensor-dataset log: ``<root>/av2/sensor/<split>/<log_id>/``.

Layout and dtypes follow the real logs (``sensors/lidar/<ns>.feather`` in the ego frame,
``annotations.feather``, ``city_SE3_egovehicle.feather``, ``calibration/*.feather``,
``sensors/cameras/<ring_cam>/<ns>.jpg``, ``map/`` with the vector map JSON, the ground-height
raster and its Sim(2)), so the ``av2`` package reads them.

Choices: LiDAR sweeps and annotations every second simulator tick (AV2 runs at 10 Hz), the one
simulated LiDAR is written as both ``up_lidar`` and ``down_lidar`` (``Sweep.from_feather``
needs both extrinsics); the six nuScenes-style cameras are written under the AV2 ring camera
of nearest mounting angle (:data:`RING_CAMERAS`, their true extrinsics in the calibration);
images exist on keyframes only; the ground is flat at the median ego height.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
from PIL import Image
from shapely.geometry import LineString, Polygon

from ....structures import apply_transform, invert_transform, matrix_to_quaternion
from ..types import RoadMap, SyntheticScene
from . import annotate_tick, seconds_to_ns, stable_int, stable_uuid

LIDAR_EVERY = 2
"""Write every second 20 Hz tick: AV2 sweeps and annotations are at 10 Hz."""
JPEG_QUALITY = 90
GROUND_RESOLUTION = 1.0
"""Metres per cell of the ground-height raster."""
RING_CAMERAS = {
    "CAM_FRONT": "ring_front_center", "CAM_FRONT_LEFT": "ring_front_left",
    "CAM_FRONT_RIGHT": "ring_front_right", "CAM_BACK_LEFT": "ring_side_left",
    "CAM_BACK_RIGHT": "ring_side_right", "CAM_BACK": "ring_rear_left",
}
AV2_CATEGORIES = {
    "vehicle.car": "REGULAR_VEHICLE", "vehicle.truck": "BOX_TRUCK", "vehicle.trailer": "VEHICULAR_TRAILER",
    "vehicle.bus.rigid": "BUS", "vehicle.bus.bendy": "ARTICULATED_BUS", "vehicle.construction": "LARGE_VEHICLE",
    "vehicle.bicycle": "BICYCLE", "vehicle.motorcycle": "MOTORCYCLE",
    "human.pedestrian.adult": "PEDESTRIAN", "human.pedestrian.child": "PEDESTRIAN",
    "human.pedestrian.construction_worker": "PEDESTRIAN", "human.pedestrian.police_officer": "OFFICIAL_SIGNALER",
    "movable_object.trafficcone": "CONSTRUCTION_CONE", "movable_object.barrier": "CONSTRUCTION_BARREL",
}
"""nuScenes category -> AV2 annotation category."""
LEFT_MARKS = {"dashed": "DASHED_WHITE", "solid": "DOUBLE_SOLID_YELLOW", "road_edge": "NONE"}
RIGHT_MARKS = {"dashed": "DASHED_WHITE", "solid": "SOLID_WHITE", "road_edge": "NONE"}
"""Lane boundary type -> AV2 mark type (a solid left line is the centre line in right-hand traffic)."""
POSE_COLUMNS = ("qw", "qx", "qy", "qz", "tx_m", "ty_m", "tz_m")


def log_id_of(scene: SyntheticScene) -> str:
    """The AV2 log id (a UUID) of a scene, stable across runs."""
    return stable_uuid("av2-log", scene.name)


def city_code(location: str) -> str:
    """Three upper-case letters naming the location in AV2 file names (``synth-town`` -> ``SYN``)."""
    letters = "".join(ch for ch in location.upper() if ch.isalpha())
    return (letters + "XXX")[:3]


def _pose_columns(transforms: list[np.ndarray]) -> dict[str, pa.Array]:
    quats = np.array([matrix_to_quaternion(np.asarray(t)[:3, :3]) for t in transforms]).reshape(-1, 4)
    trans = np.array([np.asarray(t)[:3, 3] for t in transforms]).reshape(-1, 3)
    values = np.concatenate([quats, trans], axis=1)
    return {name: pa.array(values[:, i], pa.float64()) for i, name in enumerate(POSE_COLUMNS)}


def _write_feather(path: Path, columns: dict[str, pa.Array]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    feather.write_feather(pa.table(columns), str(path))


def _xyz(points: np.ndarray, z: float) -> list[dict[str, float]]:
    return [{"x": float(x), "y": float(y), "z": float(z)} for x, y in np.asarray(points, dtype=float)[:, :2]]


def _crossing_edges(polygon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AV2 ``edge1`` / ``edge2`` of a crossing: the two long sides of its (rotated) rectangle,
    ordered so that ``PedestrianCrossing.polygon`` gives back the same 4 corners."""
    coords = np.asarray(polygon, dtype=float)[:, :2]
    if len(coords) > 4 and np.allclose(coords[0], coords[-1]):
        coords = coords[:-1]
    if len(coords) != 4:
        coords = np.asarray(Polygon(coords).minimum_rotated_rectangle.exterior.coords)[:4]
    lengths = [np.linalg.norm(coords[(i + 1) % 4] - coords[i]) for i in range(4)]
    start = int(np.argmax([lengths[0] + lengths[2], lengths[1] + lengths[3]]))
    p0, p1, p2, p3 = (coords[(start + k) % 4] for k in range(4))
    return np.stack([p0, p1]), np.stack([p3, p2])


def _neighbours(road_map: RoadMap) -> dict[str, dict[str, str | None]]:
    """Same-direction lanes sharing a boundary: ``{lane_id: {"left": id, "right": id}}``."""
    found: dict[str, dict[str, str | None]] = {lane.lane_id: {"left": None, "right": None} for lane in road_map.lanes}
    for a in road_map.lanes:
        for b in road_map.lanes:
            if a is not b and LineString(a.left_boundary[:, :2]).hausdorff_distance(
                    LineString(b.right_boundary[:, :2])) < 0.05:
                found[a.lane_id]["left"], found[b.lane_id]["right"] = b.lane_id, a.lane_id
    return found


def build_av2_map(road_map: RoadMap, ground_z: float = 0.0, with_centerlines: bool = False) -> dict[str, Any]:
    """The AV2 vector map JSON object (lane segments, pedestrian crossings, drivable areas).

    Ids are integers: lanes ``1..L`` in map order, crossings and drivable areas after them.
    ``with_centerlines`` adds the ``centerline`` key that motion-forecasting maps carry.
    """
    ids = {lane.lane_id: i + 1 for i, lane in enumerate(road_map.lanes)}
    predecessors: dict[str, list[int]] = {lane.lane_id: [] for lane in road_map.lanes}
    for lane in road_map.lanes:
        for successor in lane.successors:
            if successor not in ids:
                raise ValueError(f"map {road_map.location}: lane {lane.lane_id} has unknown successor {successor}")
            predecessors[successor].append(ids[lane.lane_id])
    neighbours = _neighbours(road_map)
    lanes = {}
    for lane in road_map.lanes:
        left, right = neighbours[lane.lane_id]["left"], neighbours[lane.lane_id]["right"]
        record = {
            "id": ids[lane.lane_id], "is_intersection": bool(lane.is_intersection), "lane_type": "VEHICLE",
            "left_lane_boundary": _xyz(lane.left_boundary, ground_z),
            # lanes through an intersection are unpainted, as in real AV2 maps
            "left_lane_mark_type": "NONE" if lane.is_intersection else LEFT_MARKS.get(lane.left_type, "NONE"),
            "right_lane_boundary": _xyz(lane.right_boundary, ground_z),
            "right_lane_mark_type": "NONE" if lane.is_intersection else RIGHT_MARKS.get(lane.right_type, "NONE"),
            "successors": [ids[s] for s in lane.successors], "predecessors": predecessors[lane.lane_id],
            "right_neighbor_id": ids[right] if right else None, "left_neighbor_id": ids[left] if left else None,
        }
        if with_centerlines:
            record["centerline"] = _xyz(lane.centerline, ground_z)
        lanes[str(record["id"])] = record
    next_id = len(ids) + 1
    crossings = {}
    for polygon in road_map.ped_crossings:
        edge1, edge2 = _crossing_edges(polygon)
        crossings[str(next_id)] = {"edge1": _xyz(edge1, ground_z), "edge2": _xyz(edge2, ground_z), "id": next_id}
        next_id += 1
    areas = {}
    for polygon, _ in road_map.road_segments:
        coords = np.asarray(polygon, dtype=float)
        if len(coords) > 3 and np.allclose(coords[0, :2], coords[-1, :2]):
            coords = coords[:-1]
        areas[str(next_id)] = {"area_boundary": _xyz(coords, ground_z), "id": next_id}
        next_id += 1
    return {"pedestrian_crossings": crossings, "lane_segments": lanes, "drivable_areas": areas}


def write_map_dir(map_dir: Path, road_map: RoadMap, log_id: str, ground_z: float) -> Path:
    """Write the vector map JSON, the flat ground-height raster and its Sim(2) into ``map_dir``."""
    map_dir.mkdir(parents=True, exist_ok=True)
    city = city_code(road_map.location)
    map_id = stable_int("av2-map", road_map.location, bits=20)
    path = map_dir / f"log_map_archive_{log_id}____{city}_city_{map_id}.json"
    path.write_text(json.dumps(build_av2_map(road_map, ground_z)))
    x_min, y_min, x_max, y_max = road_map.bounds
    xy = np.concatenate([np.asarray(p)[:, :2] for p, _ in road_map.road_segments] + [[[x_min, y_min], [x_max, y_max]]])
    low, high = np.floor(xy.min(axis=0)) - 1, np.ceil(xy.max(axis=0)) + 1
    shape = tuple(int(v) for v in np.ceil((high - low)[::-1] / GROUND_RESOLUTION))
    np.save(map_dir / f"{log_id}_ground_height_surface____{city}.npy", np.full(shape, ground_z, np.float16))
    sim2 = {"R": [1.0, 0.0, 0.0, 1.0], "t": [float(-low[0]), float(-low[1])], "s": 1.0 / GROUND_RESOLUTION}
    (map_dir / f"{log_id}___img_Sim2_city.json").write_text(json.dumps(sim2))
    return path


def _write_calibration(log_dir: Path, scene: SyntheticScene) -> None:
    cameras = [c for c in scene.cameras if c.name in RING_CAMERAS]
    if len(cameras) != len(scene.cameras):
        unknown = sorted({c.name for c in scene.cameras} - set(RING_CAMERAS))
        raise ValueError(f"scene {scene.name}: no AV2 ring camera for {unknown}")
    names = [RING_CAMERAS[c.name] for c in cameras] + ["up_lidar", "down_lidar"]
    poses = [c.cam2ego for c in cameras] + [scene.lidar2ego, scene.lidar2ego]
    _write_feather(log_dir / "calibration" / "egovehicle_SE3_sensor.feather",
                   {"sensor_name": pa.array(names, pa.string()), **_pose_columns(poses)})
    k = np.array([np.asarray(c.cam2img, dtype=float) for c in cameras]).reshape(-1, 3, 3)
    columns = {"sensor_name": pa.array(names[:-2], pa.string()),
               "fx_px": k[:, 0, 0], "fy_px": k[:, 1, 1], "cx_px": k[:, 0, 2], "cy_px": k[:, 1, 2],
               "k1": np.zeros(len(k)), "k2": np.zeros(len(k)), "k3": np.zeros(len(k))}
    columns = {n: v if isinstance(v, pa.Array) else pa.array(v, pa.float64()) for n, v in columns.items()}
    columns["height_px"] = pa.array([c.height for c in cameras], pa.uint16())
    columns["width_px"] = pa.array([c.width for c in cameras], pa.uint16())
    _write_feather(log_dir / "calibration" / "intrinsics.feather", columns)


def write_av2_log(scene: SyntheticScene, root: Path, split: str) -> Path:
    """Write ``scene`` as ``<root>/av2/sensor/<split>/<log_id>/``; returns the log folder."""
    log_id = log_id_of(scene)
    log_dir = Path(root) / "av2" / "sensor" / split / log_id
    _write_calibration(log_dir, scene)
    _write_feather(log_dir / "city_SE3_egovehicle.feather", {
        "timestamp_ns": pa.array([seconds_to_ns(t.timestamp) for t in scene.ticks], pa.int64()),
        **_pose_columns([t.ego2global for t in scene.ticks])})
    rows: dict[str, list[Any]] = {name: [] for name in (
        "timestamp_ns", "track_uuid", "category", "length_m", "width_m", "height_m", "num_interior_pts")}
    boxes_ego = []
    for index, tick in enumerate(scene.ticks):
        stamp = seconds_to_ns(tick.timestamp)
        for name, image in sorted(tick.images.items()):
            path = log_dir / "sensors" / "cameras" / RING_CAMERAS[name] / f"{stamp}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.asarray(image, dtype=np.uint8)).save(path, format="JPEG", quality=JPEG_QUALITY)
        if index % LIDAR_EVERY:
            continue
        points = np.asarray(tick.points, dtype=np.float64)
        xyz = apply_transform(scene.lidar2ego, points[:, :3]) if len(points) else np.zeros((0, 3))
        _write_feather(log_dir / "sensors" / "lidar" / f"{stamp}.feather", {
            "x": pa.array(xyz[:, 0].astype(np.float16)), "y": pa.array(xyz[:, 1].astype(np.float16)),
            "z": pa.array(xyz[:, 2].astype(np.float16)),
            "intensity": pa.array(np.clip(np.round(points[:, 3]), 0, 255).astype(np.uint8)),
            "laser_number": pa.array(np.clip(points[:, 4], 0, 255).astype(np.uint8)),
            "offset_ns": pa.array(np.zeros(len(points), np.int32))})
        found = annotate_tick(tick, scene.lidar2ego)
        for obj, count in zip(found.objects, found.num_points):
            if obj.category not in AV2_CATEGORIES:
                raise ValueError(f"scene {scene.name}: no AV2 category for {obj.category!r}")
            rows["timestamp_ns"].append(stamp)
            rows["track_uuid"].append(stable_uuid("av2-track", scene.name, obj.track_id))
            rows["category"].append(AV2_CATEGORIES[obj.category])
            rows["num_interior_pts"].append(int(count))
        boxes = found.boxes_world.transform(invert_transform(tick.ego2global))
        boxes_ego.append(boxes.data)
        rows["length_m"].extend(boxes.sizes[:, 0])
        rows["width_m"].extend(boxes.sizes[:, 1])
        rows["height_m"].extend(boxes.sizes[:, 2])
    data = np.concatenate(boxes_ego) if boxes_ego else np.zeros((0, 9))
    quats = [np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]) for yaw in data[:, 6]]
    quats = np.array([q if q[0] >= 0 else -q for q in quats]).reshape(-1, 4)
    _write_feather(log_dir / "annotations.feather", {
        "timestamp_ns": pa.array(rows["timestamp_ns"], pa.int64()),
        "track_uuid": pa.array(rows["track_uuid"], pa.string()),
        "category": pa.array(rows["category"], pa.string()),
        **{n: pa.array(np.asarray(rows[n], dtype=np.float64)) for n in ("length_m", "width_m", "height_m")},
        **{n: pa.array(quats[:, i]) for i, n in enumerate(("qw", "qx", "qy", "qz"))},
        **{n: pa.array(data[:, i]) for i, n in enumerate(("tx_m", "ty_m", "tz_m"))},
        "num_interior_pts": pa.array(rows["num_interior_pts"], pa.int64())})
    ground_z = float(np.median([np.asarray(t.ego2global)[2, 3] for t in scene.ticks]))
    write_map_dir(log_dir / "map", scene.road_map, log_id, ground_z)
    return log_dir
