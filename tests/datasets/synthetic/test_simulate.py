"""generate_scene: determinism, classes, motion consistency, tick layout, timing."""
from __future__ import annotations

import re
import time

import numpy as np
import pytest

from perception.datasets.synthetic.simulate import generate_scene
from perception.datasets.synthetic.types import KEYFRAME_EVERY, EgoRoute
from perception.structures.conventions import NUSCENES_CLASSES

SMALL = dict(sensor_duration_s=0.6, image_size=(96, 54), num_beams=8, azimuth_steps=180, future_s=1.0)
CLASS_OF = {
    "vehicle.car": "car", "vehicle.truck": "truck", "vehicle.trailer": "trailer", "vehicle.bus.rigid": "bus",
    "vehicle.construction": "construction_vehicle", "vehicle.bicycle": "bicycle",
    "vehicle.motorcycle": "motorcycle", "human.pedestrian.adult": "pedestrian",
    "movable_object.trafficcone": "traffic_cone", "movable_object.barrier": "barrier",
}


@pytest.fixture(scope="module")
def scene():
    return generate_scene("scene-test", 3, **SMALL)


def _arrays(scene):
    out = [scene.lidar2ego]
    for tick in scene.ticks + scene.trajectory_ticks:
        out += [tick.ego2global, tick.points, np.array([tick.timestamp])]
        out += [np.array([*o.center, *o.size, o.yaw, *o.velocity]) for o in tick.objects]
        out += [tick.images[name] for name in sorted(tick.images)]
    return out


def test_same_seed_same_bytes_other_seed_differs(scene):
    again = generate_scene("scene-test", 3, **SMALL)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(_arrays(scene), _arrays(again)))
    other = generate_scene("scene-test", 4, **SMALL)
    assert scene.ticks[0].points.tobytes() != other.ticks[0].points.tobytes()
    assert scene.ticks[0].timestamp != other.ticks[0].timestamp
    renamed = generate_scene("scene-other", 3, **SMALL)
    assert scene.ticks[0].points.tobytes() != renamed.ticks[0].points.tobytes()


def test_tick_layout(scene):
    stamps = np.array([t.timestamp for t in scene.ticks])
    assert len(scene.ticks) == 12 and 1.5e9 < stamps[0] < 1.8e9
    np.testing.assert_allclose(np.diff(stamps), 0.05, atol=1e-5)
    assert [t.is_keyframe for t in scene.ticks] == [k % KEYFRAME_EVERY == 0 for k in range(12)]
    for tick in scene.ticks:
        assert len(tick.images) == (6 if tick.is_keyframe else 0)
        assert all(im.shape == (54, 96, 3) and im.dtype == np.uint8 for im in tick.images.values())
        assert tick.points.dtype == np.float32 and tick.points.shape[1] == 5
    traj = np.array([t.timestamp for t in scene.trajectory_ticks])
    np.testing.assert_allclose(np.diff(traj), 0.1, atol=1e-5)
    assert traj[0] <= stamps[0] - 2.0 + 1e-6 and traj[-1] >= stamps[-1] + 1.0 - 1e-6
    assert all(t.points.shape == (0, 5) for t in scene.trajectory_ticks)
    # sensor ticks and trajectory ticks agree on shared timestamps
    shared = scene.trajectory_ticks[int(np.argmin(np.abs(traj - stamps[0])))]
    assert shared.timestamp == stamps[0]
    np.testing.assert_array_equal(shared.ego2global, scene.ticks[0].ego2global)


def test_objects_classes_ids_and_attributes(scene):
    objects = scene.ticks[0].objects
    classes = {CLASS_OF[o.category] for o in objects if o.category in CLASS_OF}
    assert classes == set(NUSCENES_CLASSES)
    assert all(o.category in CLASS_OF or o.category.startswith("static.") for o in objects)
    ids = [o.track_id for o in objects]
    assert len(set(ids)) == len(ids) and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    for tick in scene.ticks[1:]:
        assert [o.track_id for o in tick.objects] == ids
    # static objects are the same ObjectState at every tick; moving agents get a new one
    parked = {a.track_id for a, b in zip(objects, scene.ticks[1].objects) if a is b}
    assert {CLASS_OF.get(o.category) for o in objects if o.track_id in parked} >= {
        "truck", "bus", "trailer", "construction_vehicle", "motorcycle", "bicycle", "traffic_cone", "barrier"}
    for o in objects:
        if o.category.startswith("movable_object"):
            assert o.attribute == ""
        elif o.category.startswith("human"):
            assert o.attribute in ("pedestrian.moving", "pedestrian.standing")
        elif o.category in ("vehicle.bicycle", "vehicle.motorcycle"):  # parked cycles have no rider
            assert o.attribute == ("cycle.without_rider" if o.track_id in parked else "cycle.with_rider")
        elif o.category.startswith("vehicle"):
            assert o.attribute in ("vehicle.moving", "vehicle.stopped", "vehicle.parked")
        assert o.center[2] == pytest.approx(o.size[2] / 2)
    sizes = {o.category: o.size for o in objects}
    np.testing.assert_allclose(sizes["vehicle.car"], [4.63, 1.95, 1.73], rtol=0.07)
    np.testing.assert_allclose(sizes["human.pedestrian.adult"], [0.73, 0.67, 1.77], rtol=0.09)


def test_velocities_match_motion(scene):
    for ticks, dt in ((scene.ticks, 0.05), (scene.trajectory_ticks, 0.1)):
        for k in range(1, len(ticks) - 1):
            for before, now, after in zip(ticks[k - 1].objects, ticks[k].objects, ticks[k + 1].objects):
                finite = (after.center[:2] - before.center[:2]) / (2 * dt)
                assert np.linalg.norm(finite - now.velocity) < 0.3, (now.category, k)
                speed = np.linalg.norm(now.velocity)
                if speed > 1.0:  # yaw along motion
                    heading = np.arctan2(now.velocity[1], now.velocity[0])
                    assert abs((heading - now.yaw + np.pi) % (2 * np.pi) - np.pi) < 0.15
                # the rule of the detection output: moving above 0.2 m/s
                assert (now.attribute == "vehicle.moving") == (speed > 0.2 and now.attribute.startswith("vehicle.")
                                                               and now.attribute != "vehicle.parked")
    ego = np.array([t.ego2global[:2, 3] for t in scene.ticks])
    assert np.linalg.norm(ego[-1] - ego[0]) > 1.0  # the ego drives


def test_bad_arguments():
    with pytest.raises(ValueError, match="sensor_duration_s"):
        generate_scene("x", 0, sensor_duration_s=0.0)
    with pytest.raises(ValueError, match="unknown synthetic location"):
        generate_scene("x", 0, location="nowhere", **SMALL)


@pytest.mark.slow
def test_default_scene_time():
    start = time.perf_counter()
    scene = generate_scene("scene-timing", 0)
    seconds = time.perf_counter() - start
    counts = [len(t.points) for t in scene.ticks]
    print(f"\ndefault scene: {len(scene.ticks)} sweeps (mean {np.mean(counts):.0f} points), "
          f"{sum(len(t.images) for t in scene.ticks)} images in {seconds:.1f} s")
    assert len(scene.ticks) == 110 and sum(t.is_keyframe for t in scene.ticks) == 11
    assert all(28_000 <= c <= 35_000 for c in counts) and 30_000 <= np.mean(counts) <= 35_000  # nuScenes-like
    assert seconds < 60.0


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 12])
def test_keyframes_show_every_class_within_eval_range(seed):
    """Every class has a box the devkit keeps (class range, >= 1 LiDAR point) in some keyframe."""
    from nuscenes.eval.common.config import config_factory
    from nuscenes.eval.detection.utils import category_to_detection_name

    from perception.datasets.synthetic.writers import annotate_tick

    ranges = config_factory("detection_cvpr_2019").class_range
    scene = generate_scene(f"scene-eval-{seed}", seed, sensor_duration_s=2.0, with_images=False)
    seen: dict[str, int] = {}
    for tick in scene.ticks[::KEYFRAME_EVERY]:
        found = annotate_tick(tick, scene.lidar2ego)
        distance = np.linalg.norm(found.boxes_world.centers[:, :2] - tick.ego2global[:2, 3], axis=1)
        for obj, d, count in zip(found.objects, distance, found.num_points):
            name = category_to_detection_name(obj.category)
            if d <= ranges[name] and count > 0:
                seen[name] = seen.get(name, 0) + 1
    assert set(seen) == set(NUSCENES_CLASSES), seen


def test_revisit_drives_the_recorded_route_among_other_traffic(scene):
    """A revisit (``ego_route=``) follows the recorded lanes from the same start, with its own
    traffic and LiDAR noise; a route naming lanes the town lacks is refused."""
    assert isinstance(scene.ego_route, EgoRoute) and scene.ego_route.lanes
    other_seed = [generate_scene(f"scene-test-{s}", s, **SMALL) for s in (5, 6, 7, 8)]
    assert any(o.ego_route.lanes[:2] != scene.ego_route.lanes[:2] for o in other_seed)  # routes do vary
    revisit = generate_scene("scene-test-revisit-1", 5, ego_route=scene.ego_route, **SMALL)
    assert revisit.ego_route == scene.ego_route
    start, again = scene.ticks[0].ego2global[:2, 3], revisit.ticks[0].ego2global[:2, 3]
    assert np.linalg.norm(start - again) < 1.0
    assert revisit.ticks[0].points.tobytes() != scene.ticks[0].points.tobytes()
    centres = [np.round(sorted(o.center[:2].tolist() for o in s.ticks[0].objects), 1) for s in (scene, revisit)]
    assert centres[0].shape != centres[1].shape or not np.array_equal(*centres)  # other traffic, parked cars
    bad = EgoRoute(scene.ego_route.arm, ("no_such_lane",), 0.0)
    with pytest.raises(ValueError, match="no_such_lane"):
        generate_scene("scene-test-bad", 5, ego_route=bad, **SMALL)
    with pytest.raises(ValueError, match="names no lanes"):
        generate_scene("scene-test-bad", 5, ego_route=EgoRoute(scene.ego_route.arm, (), 0.0), **SMALL)
