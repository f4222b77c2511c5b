"""Target-frame features of planning scenes (perception/planning/motion_features.py)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from perception.planning.motion_features import (AGENT_TYPES, FeatureConfig, MotionFeatureError, encode_target,
                                                 map_pieces, to_local_xy, to_world_xy)
from perception.planning.motion_toy import make_toy_scene

CFG = FeatureConfig(history_frames=5, history_stride=2, future_steps=30, max_agents=4, max_polylines=12,
                    points_per_polyline=6, piece_length=15.0, raster_size=32, raster_resolution=1.0)


def test_ego_target_frame_and_future() -> None:
    scene = make_toy_scene(seed=1, pose=(100.0, -40.0, 0.7))
    f = encode_target(scene, "AV", CFG)
    # "now" is the origin, heading along +x; the past lies behind (x < 0) on y = 0
    np.testing.assert_allclose(f["target_states"][-1, :4], [0, 0, 1, 0], atol=1e-5)
    assert np.all(np.diff(f["target_states"][:, 0]) > 0) and np.allclose(f["target_states"][:, 1], 0, atol=1e-4)
    speed = np.hypot(*scene.ego.states[scene.current_index, 3:5])
    np.testing.assert_allclose(f["future"][:, 0], speed * 0.1 * np.arange(1, 31), rtol=1e-4)
    np.testing.assert_allclose(f["target_actions"][:, 0], speed * 0.2, rtol=1e-4)
    assert f["future_valid"].all() and f["is_ego"] == 1.0
    np.testing.assert_allclose(f["target_states"][-1, 4:6], [speed, 0.0], rtol=1e-4, atol=1e-4)


def test_features_do_not_depend_on_the_world_pose() -> None:
    cfg = dataclasses.replace(CFG, max_polylines=150)  # all pieces: equally near ones cannot swap in / out
    a = encode_target(make_toy_scene(seed=2), "agent_1", cfg)
    b = encode_target(make_toy_scene(seed=2, pose=(-500.0, 1234.0, -2.1)), "agent_1", cfg)
    for key in ("target_states", "target_actions", "agents", "future"):
        np.testing.assert_allclose(a[key], b[key], atol=2e-3, err_msg=key)
    assert np.abs(a["raster"] - b["raster"]).mean() < 0.03  # points on cell borders may flip cells

    def as_set(polylines: np.ndarray) -> np.ndarray:  # equally near pieces may swap places
        flat = np.round(polylines.reshape(len(polylines), -1), 2)
        return flat[np.lexsort(flat.T[::-1])]

    np.testing.assert_allclose(as_set(a["polylines"]), as_set(b["polylines"]), atol=2e-2)
    assert not np.allclose(a["origin"], b["origin"])


def test_agents_nearest_first_and_ego_is_an_agent_of_others() -> None:
    scene = make_toy_scene(seed=3, num_agents=8)
    f = encode_target(scene, "agent_0", CFG)
    assert f["agent_mask"].sum() == CFG.max_agents
    last = f["agents"][:, -1, :2]
    dist = np.hypot(last[:, 0], last[:, 1])
    assert np.all(np.diff(dist) >= -1e-5)
    ego_local = to_local_xy(scene.ego.states[scene.current_index, :2], f["origin"].astype(np.float64))
    all_dist = sorted(np.hypot(*(to_local_xy(a.states[scene.current_index, :2], f["origin"].astype(np.float64))))
                      for a in [scene.ego, *scene.agents[1:]])
    if np.hypot(*ego_local) <= all_dist[CFG.max_agents - 1]:
        assert np.any(np.all(np.abs(last - ego_local) < 1e-3, axis=1))
    walker = encode_target(scene, "walker", CFG)
    assert AGENT_TYPES[int(walker["target_type"])] == "pedestrian"


def test_map_pieces_and_raster() -> None:
    scene = make_toy_scene(seed=4)
    pieces, types = map_pieces(scene.map_elements, CFG)
    assert pieces.shape[1:] == (6, 2) and len(pieces) == len(types) == 7 * 20  # 300 m lines in 15 m pieces
    f = encode_target(scene, "AV", CFG)
    assert f["polyline_mask"].all()
    # the nearest pieces surround the ego: the y = 0 centerline passes through the origin
    assert np.abs(f["polylines"][f["polyline_types"] == 0][..., 1]).min() < 1e-4
    raster = f["raster"]
    assert raster.shape == (7, 32, 32)
    assert raster[0, 16, :].sum() >= 30  # centerline y = 0 -> row 16 across the grid
    assert raster[6, 16, 10:17].sum() >= 3  # the ego's past, behind the centre


def test_roundtrip_and_errors() -> None:
    origin = np.array([3.0, -2.0, 1.1])
    pts = np.random.default_rng(0).normal(size=(5, 2))
    np.testing.assert_allclose(to_world_xy(to_local_xy(pts, origin), origin), pts, atol=1e-12)
    scene = make_toy_scene()
    with pytest.raises(MotionFeatureError, match="no valid state"):
        encode_target(scene, "AV", CFG, now=len(scene.timestamps))
    with pytest.raises(KeyError, match="nope"):
        encode_target(scene, "nope", CFG)
    with pytest.raises(MotionFeatureError, match="max_agents"):
        FeatureConfig(max_agents=0)
