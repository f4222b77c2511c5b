"""Small hand-made :class:`SyntheticScene` objects for the writer tests (no simulator needed).

A straight road along +x at y in [43, 53.5]: two eastbound lanes (the right one split into
two segments with a successor link) and one westbound lane; a pedestrian crossing at
x in [120, 124]; objects of several classes at constant velocity; random LiDAR points plus
points inside every nearby box; six tiny camera images on keyframes.
"""
from __future__ import annotations

import numpy as np

from perception.datasets.synthetic.types import (
    KEYFRAME_EVERY,
    LIDAR_RATE_HZ,
    CameraRig,
    Lane,
    ObjectState,
    RoadMap,
    SyntheticScene,
    Tick,
)
from perception.structures import apply_transform, invert_transform, make_transform, yaw_matrix

LOCATION = "synth-test-town"
EGO_SPEED = 10.0
EGO_START = np.array([20.0, 48.25, 0.0])
CAMERA_YAWS = {"CAM_FRONT": 0.0, "CAM_FRONT_RIGHT": -0.96, "CAM_FRONT_LEFT": 0.96,
               "CAM_BACK": np.pi, "CAM_BACK_LEFT": 1.92, "CAM_BACK_RIGHT": -1.92}
# track id, category, attribute, start centre (relative to the ego start), size (l, w, h), yaw, velocity
OBJECTS = [
    ("car-ahead", "vehicle.car", "vehicle.moving", (15.0, 0.0, 0.8), (4.5, 1.9, 1.6), 0.0, (8.0, 0.0)),
    ("car-right", "vehicle.car", "vehicle.moving", (-6.0, -3.5, 0.8), (4.2, 1.8, 1.5), 0.0, (11.0, 0.0)),
    ("truck-west", "vehicle.truck", "vehicle.moving", (40.0, 3.5, 1.6), (8.0, 2.5, 3.2), np.pi, (-9.0, 0.0)),
    ("ped-cross", "human.pedestrian.adult", "pedestrian.moving", (102.0, -4.0, 0.9), (0.6, 0.6, 1.8),
     np.pi / 2, (0.0, 1.4)),
    ("cone", "movable_object.trafficcone", "", (12.0, -6.2, 0.4), (0.4, 0.4, 0.8), 0.0, (0.0, 0.0)),
    ("barrier", "movable_object.barrier", "", (25.0, -6.6, 0.5), (2.0, 0.5, 1.0), 0.0, (0.0, 0.0)),
    ("bike", "vehicle.bicycle", "cycle.with_rider", (8.0, -4.4, 0.9), (1.8, 0.6, 1.6), 0.0, (5.0, 0.0)),
    ("building", "static.building", "", (30.0, 15.0, 5.0), (20.0, 10.0, 10.0), 0.0, (0.0, 0.0)),
    ("car-far", "vehicle.car", "vehicle.parked", (150.0, -4.0, 0.8), (4.5, 1.9, 1.6), 0.0, (0.0, 0.0)),
]


def _polyline(x0: float, x1: float, y: float, count: int = 5) -> np.ndarray:
    return np.stack([np.linspace(x0, x1, count), np.full(count, y)], axis=1)


def make_road_map(location: str = LOCATION) -> RoadMap:
    """Three straight lanes, one crossing, one walkway, a stop line."""
    lanes = [
        Lane("east-right-a", _polyline(0, 100, 44.75), _polyline(0, 100, 46.5), _polyline(0, 100, 43.0),
             "dashed", "road_edge", 3.5, successors=["east-right-b"]),
        Lane("east-right-b", _polyline(100, 200, 44.75), _polyline(100, 200, 46.5), _polyline(100, 200, 43.0),
             "dashed", "road_edge", 3.5, is_intersection=True),
        Lane("east-left", _polyline(0, 200, 48.25, 9), _polyline(0, 200, 50.0, 9), _polyline(0, 200, 46.5, 9),
             "solid", "dashed", 3.5),
        Lane("west", _polyline(200, 0, 51.75, 9), _polyline(200, 0, 50.0, 9), _polyline(200, 0, 53.5, 9),
             "solid", "road_edge", 3.5),
    ]
    def rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)
    return RoadMap(
        location=location,
        lanes=lanes,
        road_segments=[(rect(0, 43, 110, 53.5), False), (rect(110, 43, 130, 53.5), True),
                       (rect(130, 43, 200, 53.5), False)],
        dividers=[(_polyline(0, 200, 46.5, 9), "lane_dashed"), (_polyline(0, 200, 50.0, 9), "road_divider")],
        boundaries=[_polyline(0, 200, 43.0), _polyline(0, 200, 53.5)],
        ped_crossings=[rect(120, 43, 124, 53.5)],
        walkways=[rect(0, 40, 200, 43)],
        stop_lines=[np.array([[117.0, 43.0], [117.0, 50.0]])],
        bounds=(0.0, 0.0, 200.0, 60.0),
    )


def make_cameras(width: int = 32, height: int = 18) -> list[CameraRig]:
    """Six cameras around the ego (OpenCV camera frames)."""
    cam_to_ego_axes = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    intrinsic = np.array([[20.0, 0.0, width / 2], [0.0, 20.0, height / 2], [0.0, 0.0, 1.0]])
    return [CameraRig(name, intrinsic.copy(), make_transform(yaw_matrix(yaw) @ cam_to_ego_axes, [1.0, 0.0, 1.5]),
                      width, height) for name, yaw in CAMERA_YAWS.items()]


def _objects_at(t: float) -> list[ObjectState]:
    states = []
    for track, category, attribute, offset, size, yaw, velocity in OBJECTS:
        center = EGO_START + np.asarray(offset) + np.array([*velocity, 0.0]) * t
        states.append(ObjectState(track, category, center, np.asarray(size, float), float(yaw),
                                  np.asarray(velocity, float), attribute))
    return states


def _ego_pose(t: float) -> np.ndarray:
    return make_transform(np.eye(3), EGO_START + np.array([EGO_SPEED * t, 0.0, 0.0]))


def _points(rng: np.random.Generator, objects: list[ObjectState], world2lidar: np.ndarray,
            count: int) -> np.ndarray:
    """Random points around the sensor plus 15 points inside every object within 60 m."""
    xyz = [rng.uniform([-50, -50, -2], [50, 50, 3], size=(count, 3))]
    for obj in objects:
        local = rng.uniform(-0.4, 0.4, size=(15, 3)) * obj.size
        world = local @ yaw_matrix(obj.yaw).T + obj.center
        xyz.append(apply_transform(world2lidar, world))
    xyz = np.concatenate(xyz)
    extra = np.stack([rng.uniform(0, 255, len(xyz)), rng.integers(0, 32, len(xyz))], axis=1)
    return np.concatenate([xyz, extra], axis=1).astype(np.float32)


def make_scene(name: str = "scene-0000", seed: int = 0, num_ticks: int = 21, num_trajectory: int = 90,
               history_steps: int = 20, image_size: tuple[int, int] = (32, 18), num_points: int = 300,
               location: str = LOCATION) -> SyntheticScene:
    """A scene of ``num_ticks`` 20 Hz sensor ticks and ``num_trajectory`` 10 Hz trajectory ticks
    starting ``history_steps`` steps before the first sensor tick."""
    rng = np.random.default_rng(seed)
    lidar2ego = make_transform(yaw_matrix(-np.pi / 2), [0.94, 0.0, 1.84])
    cameras = make_cameras(*image_size)
    ticks = []
    for i in range(num_ticks):
        t = i / LIDAR_RATE_HZ
        ego2global = _ego_pose(t)
        objects = _objects_at(t)
        world2lidar = invert_transform(ego2global @ lidar2ego)
        keyframe = i % KEYFRAME_EVERY == 0
        images = ({cam.name: rng.integers(0, 256, size=(cam.height, cam.width, 3), dtype=np.uint8)
                   for cam in cameras} if keyframe else {})
        ticks.append(Tick(t, ego2global, objects, _points(rng, objects, world2lidar, num_points), keyframe, images))
    trajectory = [Tick((k - history_steps) / 10.0, _ego_pose((k - history_steps) / 10.0),
                       _objects_at((k - history_steps) / 10.0), np.zeros((0, 5), np.float32), False)
                  for k in range(num_trajectory)]
    return SyntheticScene(name, location, make_road_map(location), lidar2ego, cameras, ticks, trajectory)


def generate_like_simulator(name: str, seed: int, location: str = LOCATION, sensor_duration_s: float = 1.0,
                            image_size: tuple[int, int] = (32, 18), with_images: bool = True,
                            **_: object) -> SyntheticScene:
    """``make_scene`` behind ``generate_scene``'s signature, for ``create_dataset(generator=...)``."""
    scene = make_scene(name, seed, num_ticks=int(round(sensor_duration_s * LIDAR_RATE_HZ)) + 1,
                       image_size=image_size, num_points=200, location=location)
    if not with_images:
        for tick in scene.ticks:
            tick.images = {}
    return scene
