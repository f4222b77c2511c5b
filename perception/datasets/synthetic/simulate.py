"""Entry point of the simulator: :func:`generate_scene` builds one seeded synthetic log.

The traffic is simulated at 20 Hz from ``history_s`` (plus a short warm-up) before the
first sensor tick to ``future_s`` after the last; every sensor tick gets a LiDAR sweep,
every 10th (2 Hz keyframe) the six camera images.  All randomness comes from generators
seeded by ``(seed, name)``, so the same arguments give byte-identical arrays.
"""
from __future__ import annotations

import zlib

import numpy as np
from tqdm import tqdm

from perception.structures.geometry import make_transform, yaw_matrix

from .agents import TrafficResult, Trajectory, simulate_traffic
from .camera import ground_texture, pixel_rays, render
from .ground import rasterize
from .lidar import LidarSpec, sweep
from .raycast import BoxSet
from .rig import REAR_AXLE_TO_CENTER, build_cameras, lidar_to_ego
from .types import KEYFRAME_EVERY, LIDAR_RATE_HZ, EgoRoute, ObjectState, SyntheticScene, Tick
from .world import build_town

TRAJECTORY_RATE_HZ = 10.0
WARMUP_S = 2.0
EGO_SIZE = (4.08, 1.73, 1.56)
EPOCH_US = 1_600_000_000_000_000


def _ego_pose(ego: Trajectory, index: int) -> np.ndarray:
    """``ego2global``: rear axle on the ground, behind the ego box centre."""
    yaw = float(ego.yaws[index])
    heading = np.array([np.cos(yaw), np.sin(yaw)])
    origin = ego.positions[index] - REAR_AXLE_TO_CENTER * heading
    return make_transform(yaw_matrix(yaw), [origin[0], origin[1], 0.0])


def _objects_at(traffic: TrafficResult, velocities: list[np.ndarray], index: int) -> list[ObjectState]:
    """Every object (moving agents, then static ones) at simulation step ``index``."""
    moving = [m.state(index, v) for m, v in zip(traffic.movers, velocities)]
    return moving + list(traffic.statics)


def _check(name: str, sensor_duration_s: float, history_s: float, future_s: float, num_beams: int) -> None:
    if not name:
        raise ValueError("generate_scene: name must be a non-empty string")
    if sensor_duration_s <= 0 or history_s < 0 or future_s < 0:
        raise ValueError(f"generate_scene({name}): durations must be positive, got sensor_duration_s="
                         f"{sensor_duration_s}, history_s={history_s}, future_s={future_s}")
    if num_beams < 2:
        raise ValueError(f"generate_scene({name}): num_beams must be >= 2, got {num_beams}")


def generate_scene(
    name: str,
    seed: int,
    location: str = "synth-town",
    sensor_duration_s: float = 5.5,
    history_s: float = 2.0,
    future_s: float = 6.0,
    image_size: tuple[int, int] = (800, 450),
    num_beams: int = 32,
    with_images: bool = True,
    vehicle_density: float = 2.0,
    pedestrian_count: int = 24,
    azimuth_steps: int = 1084,
    progress: bool = False,
    ego_route: EgoRoute | None = None,
) -> SyntheticScene:
    """Simulate one scene.

    ``vehicle_density`` is vehicles per 100 m of lane; ``azimuth_steps`` the LiDAR's
    directions per turn (nuScenes: 1084); ``progress`` shows a tqdm bar over sensor ticks;
    ``ego_route`` (another scene's :attr:`SyntheticScene.ego_route`) makes the ego drive the
    same streets again, among traffic, parked cars and LiDAR noise drawn from ``seed``.
    """
    _check(name, sensor_duration_s, history_s, future_s, num_beams)
    root = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode())])
    traffic_seq, lidar_seq, clock_seq = root.spawn(3)
    dt = 1.0 / LIDAR_RATE_HZ
    stride = int(round(LIDAR_RATE_HZ / TRAJECTORY_RATE_HZ))
    num_ticks = max(int(round(sensor_duration_s * LIDAR_RATE_HZ)), 1)
    history_steps = int(round(history_s * TRAJECTORY_RATE_HZ)) * stride
    future_steps = int(round(future_s * TRAJECTORY_RATE_HZ)) * stride
    warmup_steps = int(round(WARMUP_S * LIDAR_RATE_HZ))
    first_sensor = warmup_steps + history_steps  # simulation index of the first sensor tick
    total = first_sensor + num_ticks + future_steps + stride
    times = (np.arange(total) - first_sensor) * dt

    town = build_town(location)
    traffic = simulate_traffic(town, np.random.default_rng(traffic_seq), times, arrival=0.2 * sensor_duration_s,
                               key=(name, seed), vehicle_density=vehicle_density,
                               pedestrian_count=pedestrian_count, ego_size=EGO_SIZE,
                               keyframe_times=times[first_sensor:first_sensor + num_ticks:KEYFRAME_EVERY],
                               ego_route=ego_route)
    velocities = [np.gradient(m.positions, dt, axis=0) for m in traffic.movers]
    epoch_us = EPOCH_US + int(np.random.default_rng(clock_seq).integers(0, 10**14))

    def stamp(index: int) -> float:
        return (epoch_us + int(round(times[index] * 1e6))) / 1e6

    trajectory_ticks = [
        Tick(stamp(i), _ego_pose(traffic.ego, i), _objects_at(traffic, velocities, i),
             np.zeros((0, 5), np.float32), False)
        for i in range(warmup_steps, total, stride)
    ]

    ground = rasterize(town.road_map)
    lidar2ego = lidar_to_ego()
    spec = LidarSpec(num_beams=num_beams, azimuth_steps=azimuth_steps)
    directions = spec.directions()
    cameras = build_cameras(image_size)
    rays = {c.name: pixel_rays(c) for c in cameras}
    texture = ground_texture()
    lidar_rng = np.random.default_rng(lidar_seq)
    ticks = []
    for k in tqdm(range(num_ticks), desc=f"simulate {name}", disable=not progress):
        i = first_sensor + k
        ego2global = _ego_pose(traffic.ego, i)
        objects = _objects_at(traffic, velocities, i)
        boxes = BoxSet.from_objects(objects)
        points = sweep(spec, ego2global @ lidar2ego, boxes, ground, lidar_rng, local_dirs=directions)
        keyframe = k % KEYFRAME_EVERY == 0
        images = {}
        if keyframe and with_images:
            images = {c.name: render(c, ego2global, boxes, ground, texture, rays[c.name]) for c in cameras}
        ticks.append(Tick(stamp(i), ego2global, objects, points, keyframe, images))
    return SyntheticScene(name, location, town.road_map, lidar2ego, cameras, ticks, trajectory_ticks,
                          ego_size=EGO_SIZE, ego_route=traffic.ego_route)
