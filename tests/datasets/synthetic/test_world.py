"""The synthetic road network: junction, lane connectivity, markings, scenery, traffic."""
from __future__ import annotations

import numpy as np
import pytest
from shapely.geometry import Polygon
from shapely.ops import unary_union

from perception.datasets.synthetic import polyline as pl
from perception.datasets.synthetic.agents import simulate_traffic
from perception.datasets.synthetic.scenery import footprint, overlapping
from perception.datasets.synthetic.world import ARM_ANGLES, LOCATIONS, build_town


@pytest.fixture(scope="module")
def town():
    return build_town("synth-town")


def test_four_way_junction_with_all_turns(town):
    junction = [poly for poly, is_junction in town.road_map.road_segments if is_junction]
    assert len(junction) == 1
    area = Polygon(junction[0])
    for arm in ARM_ANGLES:
        ins = [lane for lane in town.lanes.values() if lane.lane_id.startswith(f"{arm}_in_")]
        targets = {town.lanes[s].successors[0].split("_")[0] for lane in ins for s in lane.successors}
        assert targets == set(ARM_ANGLES) - {arm}, arm  # straight, left and right reachable
        for lane in ins:
            for succ in lane.successors:
                turn = town.lanes[succ]
                assert turn.is_intersection
                assert area.buffer(0.5).contains(Polygon(np.concatenate([turn.centerline, turn.centerline[::-1]])).buffer(0.01))
    assert len(town.road_map.ped_crossings) == 4 and len(town.road_map.stop_lines) == 4


def test_lanes_connect_and_never_dead_end(town):
    for lane in town.road_map.lanes:
        assert lane.successors, lane.lane_id
        steps = np.linalg.norm(np.diff(lane.centerline, axis=0), axis=1)
        assert steps.max() <= 1.0 and steps.min() > 0.05, lane.lane_id
        for succ in lane.successors:
            gap = np.linalg.norm(town.lanes[succ].centerline[0] - lane.centerline[-1])
            assert gap < 0.1, (lane.lane_id, succ, gap)
        width = np.linalg.norm(lane.left_boundary - lane.right_boundary, axis=1)
        np.testing.assert_allclose(width, lane.width, atol=0.05)


def test_dividers_and_lane_types(town):
    kinds = {kind for _, kind in town.road_map.dividers}
    assert {"lane_dashed", "road_divider", "lane_solid"} <= kinds
    types = {t for lane in town.road_map.lanes for t in (lane.left_type, lane.right_type)}
    assert types == {"dashed", "solid", "road_edge"}
    lane = town.lanes["E_in_0"]
    # lane 0 runs along the road divider (the road's reference line)
    assert np.abs(lane.left_boundary[:, 1]).max() < 1e-6


def test_walkways_bounds_and_scenery(town):
    rm = town.road_map
    x0, y0, x1, y1 = rm.bounds
    assert x1 - x0 > 2 * town.spec.arm_length and y1 - y0 > 2 * town.spec.arm_length
    for walkway in rm.walkways:
        poly = Polygon(walkway)
        assert poly.is_valid and poly.intersection(town.drivable).area < 0.5
    assert {o.category for o in town.statics} == {"static.building", "static.pole", "static.vegetation"}
    for obj in town.statics:
        assert obj.category.startswith("static.")
        if obj.category == "static.building":
            assert not footprint(obj.center, obj.size, obj.yaw).intersects(town.drivable.buffer(town.spec.sidewalk_width))
        corners = np.asarray(footprint(obj.center, obj.size, obj.yaw).exterior.coords)
        assert (corners[:, 0] > x0).all() and (corners[:, 0] < x1).all()
    assert not overlapping(town.statics)
    assert set(build_town("synth-town").road_map.bounds) == set(rm.bounds)  # location-deterministic


def test_unknown_location_is_rejected():
    with pytest.raises(ValueError, match="synth-town"):
        build_town("atlantis")
    assert build_town("synth-village").spec == LOCATIONS["synth-village"]


def test_traffic_keeps_apart_and_follows_lanes(town):
    times = np.arange(-3.0, 8.0, 0.05)
    result = simulate_traffic(town, np.random.default_rng(11), times, arrival=1.0, key=("t", 11))
    vehicles = [result.ego] + [m for m in result.movers if m.category.startswith("vehicle.")]
    parked = [o for o in result.statics if not o.category.startswith("static.")]
    for k in range(0, len(times), 4):
        shapes = [footprint(m.positions[k], m.size, m.yaws[k]) for m in vehicles]
        shapes += [footprint(o.center, o.size, o.yaw) for o in parked]
        for i in range(len(vehicles)):
            for j in range(i + 1, len(shapes)):
                assert shapes[i].intersection(shapes[j]).area == 0.0, (times[k], i, j)
                if j < len(vehicles):
                    heading = abs((vehicles[i].yaws[k] - vehicles[j].yaws[k] + np.pi) % (2 * np.pi) - np.pi)
                    offset = vehicles[j].positions[k] - vehicles[i].positions[k]
                    lateral = abs(offset @ [-np.sin(vehicles[i].yaws[k]), np.cos(vehicles[i].yaws[k])])
                    if heading < 0.2 and lateral < 0.8:  # same lane: keep a gap
                        assert shapes[i].distance(shapes[j]) > 1.0, (times[k], i, j)
    # vehicles stay on lane centrelines: each position is within 0.1 m of some lane
    centre = np.concatenate([lane.centerline for lane in town.road_map.lanes])
    for m in vehicles[:10]:
        dist = np.linalg.norm(m.positions[::20, None, :] - centre[None], axis=-1).min(axis=1)
        assert dist.max() < 0.35
    # kerbside objects stand in the parking strips: on the road, clear of every lane
    lanes = unary_union([Polygon(np.concatenate([lane.left_boundary, lane.right_boundary[::-1]])).buffer(0)
                         for lane in town.road_map.lanes])
    kinds = set()
    for obj in parked:
        shape = footprint(obj.center, obj.size, obj.yaw)
        assert town.drivable.buffer(0.05).contains(shape) and shape.intersection(lanes).area < 0.05, obj.category
        kinds.add(obj.category)
    assert {"vehicle.truck", "vehicle.bus.rigid", "vehicle.trailer", "vehicle.construction", "vehicle.motorcycle",
            "vehicle.bicycle", "movable_object.trafficcone", "movable_object.barrier", "vehicle.car"} <= kinds
    # the rarer classes are near the ego's keyframe positions (first keyframe at t = 0)
    ego0 = result.ego.positions[np.searchsorted(times, 0.0)]
    rare = [o for o in parked if o.category in ("movable_object.trafficcone", "vehicle.bicycle")]
    assert min(np.linalg.norm(o.center[:2] - ego0) for o in rare) < 30.0
    # the ego goes through the junction
    half = town.junction_half
    inside = (np.abs(result.ego.positions) < half).all(axis=1)
    assert inside.any()
    assert pl.cumulative_length(result.ego.positions)[-1] > 30.0
