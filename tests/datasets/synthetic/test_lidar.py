"""The synthetic spinning LiDAR: beam layout, returns per sweep, object and ground hits."""
from __future__ import annotations

import time

import numpy as np
import pytest

from perception.datasets.synthetic.catalog import STATIC_PREFIX
from perception.datasets.synthetic.ground import ASPHALT, WHITE_PAINT, rasterize
from perception.datasets.synthetic.lidar import LidarSpec, sweep
from perception.datasets.synthetic.raycast import BoxSet, cast
from perception.datasets.synthetic.rig import LIDAR_HEIGHT, lidar_to_ego
from perception.datasets.synthetic.simulate import generate_scene
from perception.datasets.synthetic.world import build_town
from perception.structures import Boxes3D
from perception.structures.geometry import apply_transform, invert_transform


@pytest.fixture(scope="module")
def world():
    """A one-tick scene (its objects and pose) and the ground raster of its town."""
    scene = generate_scene("lidar-test", 5, sensor_duration_s=0.05, with_images=False)
    return scene, rasterize(build_town().road_map)


def _sweep(world, spec: LidarSpec, seed: int = 0):
    scene, ground = world
    tick = scene.ticks[0]
    lidar2world = tick.ego2global @ scene.lidar2ego
    boxes = BoxSet.from_objects(tick.objects)
    start = time.perf_counter()
    points, index = sweep(spec, lidar2world, boxes, ground, np.random.default_rng(seed), return_index=True)
    return points, index, lidar2world, time.perf_counter() - start


def test_sweep_format_and_count(world):
    scene, _ = world
    points, _, _, seconds = _sweep(world, LidarSpec())
    print(f"\nLiDAR sweep: {len(points)} points in {seconds * 1000:.1f} ms")
    assert points.dtype == np.float32 and points.shape[1] == 5
    assert 30_000 <= len(points) <= 35_000  # nuScenes: 32 x 1084 = 34,688 rays, most return
    assert len(scene.ticks[0].points) == pytest.approx(len(points), rel=0.05)
    assert set(np.unique(points[:, 4]).astype(int)) <= set(range(32))
    assert points[:, 3].min() >= 0 and points[:, 3].max() <= 255
    assert np.linalg.norm(points[:, :3], axis=1).max() <= 100.5


def test_ray_elevations(world):
    points, _, _, _ = _sweep(world, LidarSpec())
    elevation = np.degrees(np.arctan2(points[:, 2], np.linalg.norm(points[:, :2], axis=1)))
    for ring, expected in ((0, -30.67), (31, 10.67), (16, -30.67 + 16 * 41.34 / 31)):
        got = elevation[points[:, 4] == ring]
        assert len(got) > 0 and np.abs(got - expected).max() < 0.05, ring


def test_lidar_frame_is_nuscenes_like():
    lidar2ego = lidar_to_ego()
    np.testing.assert_allclose(lidar2ego[:3, :3] @ [1, 0, 0], [0, -1, 0])  # x right
    np.testing.assert_allclose(lidar2ego[:3, :3] @ [0, 1, 0], [1, 0, 0])  # y forward
    assert lidar2ego[2, 3] == pytest.approx(1.84, abs=0.01)


def test_ground_points_and_intensity(world):
    points, index, lidar2world, _ = _sweep(world, LidarSpec(range_noise=0.0))
    ground = points[index < 0]
    assert len(ground) > 10_000
    np.testing.assert_allclose(ground[:, 2], -LIDAR_HEIGHT, atol=1e-3)
    surface = world[1].lookup(apply_transform(lidar2world, ground[:, :3])[:, :2])
    paint, asphalt = ground[surface == WHITE_PAINT, 3], ground[surface == ASPHALT, 3]
    assert len(paint) > 20 and paint.mean() > 4 * asphalt.mean()


def test_visible_objects_have_points(world):
    scene, _ = world
    points, index, lidar2world, _ = _sweep(world, LidarSpec(dropout=0.0, range_noise=0.0))
    objects = scene.ticks[0].objects
    world2lidar = invert_transform(lidar2world)
    data = np.array([[*o.center, *o.size, o.yaw, *o.velocity[:2]] for o in objects])
    boxes = Boxes3D(data, np.zeros(len(objects)), [o.track_id for o in objects]).transform(world2lidar)
    grown = Boxes3D(boxes.data + np.r_[0, 0, 0, 0.02, 0.02, 0.02, 0, 0, 0], boxes.labels)
    counts = grown.count_points(points)
    # every hit lies inside the box it hit
    for b in np.unique(index[index >= 0])[:50]:
        assert grown[np.array([b])].points_in_boxes(points[index == b]).all()
    checked = 0
    all_boxes = BoxSet.from_objects(objects)
    for b, obj in enumerate(objects):
        distance = np.linalg.norm(boxes.centers[b, :2])
        if obj.category.startswith(STATIC_PREFIX) or distance > 40.0:
            continue
        # independent visibility: a clear line of sight to the centre, a box tall enough
        # to span two beams and wide enough to span two azimuth steps
        direction = boxes.centers[b] / np.linalg.norm(boxes.centers[b])
        world_dir = (lidar2world[:3, :3] @ direction).astype(np.float32)[None, None]
        hit = cast(lidar2world[:3, 3].astype(np.float32), world_dir, all_boxes, lambda _: [(0, 1, 0, 1)])
        spans_beams = np.degrees(np.arctan2(obj.size[2], distance)) > 2 * 1.34
        spans_azimuth = np.degrees(min(obj.size[:2]) / distance) > 2 * 360 / 1084
        if hit.index[0, 0] != b or not (spans_beams and spans_azimuth):
            continue
        checked += 1
        assert counts[b] > 0, (obj.category, distance)
    assert checked >= 5


def test_single_box_hit_distance():
    box = BoxSet(np.array([[10.0, 0.0, 1.0]]), np.array([[2.0, 2.0, 2.0]]), np.array([0.3]), ["vehicle.car"])
    box_flat = BoxSet(np.array([[10.0, 0.0, 1.0]]), np.array([[2.0, 2.0, 2.0]]), np.array([0.0]), ["vehicle.car"])
    dirs = np.array([[[1.0, 0.0, 0.0]]], dtype=np.float32)
    hit = cast(np.array([0.0, 0.0, 1.0], np.float32), dirs, box_flat, lambda _: [(0, 1, 0, 1)])
    assert hit.depth[0, 0] == pytest.approx(9.0, abs=1e-5) and hit.index[0, 0] == 0
    np.testing.assert_allclose(hit.normal[0, 0], [-1, 0, 0], atol=1e-6)
    rotated = cast(np.array([0.0, 0.0, 1.0], np.float32), dirs, box, lambda _: [(0, 1, 0, 1)])
    assert 8.8 < rotated.depth[0, 0] < 9.0  # a turned box shows a corner nearer than its face


def test_sweep_is_seeded(world):
    a, _, _, _ = _sweep(world, LidarSpec(num_beams=8, azimuth_steps=360), seed=1)
    b, _, _, _ = _sweep(world, LidarSpec(num_beams=8, azimuth_steps=360), seed=1)
    c, _, _, _ = _sweep(world, LidarSpec(num_beams=8, azimuth_steps=360), seed=2)
    assert a.tobytes() == b.tobytes() and a.tobytes() != c.tobytes()


def test_vehicle_front_faces_return_brighter_than_rear_faces():
    """The front-face gain makes a parked car's heading observable (boxes are symmetric)."""
    spec = LidarSpec()
    ground = rasterize(build_town().road_map)
    lidar2world = np.eye(4)
    lidar2world[2, 3] = LIDAR_HEIGHT
    # Two identical cars 10 m ahead on either side, one facing the sensor, one facing away.
    boxes = BoxSet(np.array([[10.0, 4.0, 0.8], [10.0, -4.0, 0.8]]), np.array([[4.5, 1.9, 1.6]] * 2),
                   np.array([np.pi, 0.0]), ["vehicle.car", "vehicle.car"])
    points, index = sweep(spec, lidar2world, boxes, ground, np.random.default_rng(0), return_index=True)
    facing = points[(index == 0) & (points[:, 0] < 8.0), 3]   # front face seen
    away = points[(index == 1) & (points[:, 0] < 8.0), 3]     # rear face seen
    assert len(facing) > 20 and len(away) > 20
    assert facing.mean() > 2.0 * away.mean()
