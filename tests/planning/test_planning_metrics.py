"""Open-loop planning metrics: rotated-box overlap, the L2 conventions, collision rates."""
from __future__ import annotations

import numpy as np
import pytest
from shapely.geometry import Polygon

from perception.evaluation.planning_metrics import (EgoSpec, OpenLoopAccumulator, PlanningMetricError, box_corners,
                                                    boxes_overlap, ego_boxes, evaluate_open_loop, footprint_of)
from perception.planning.scene import PlanningScene
from perception.structures.map_elements import AgentHistory

DT = 0.1


def straight_scene(agents: list[AgentHistory] | None = None, history: int = 10, future: int = 30,
                   speed: float = 5.0) -> PlanningScene:
    """Ego along +x at ``speed`` m/s, now at x = 0."""
    times = DT * np.arange(-history, future + 1)
    states = np.zeros((len(times), 5))
    states[:, 0], states[:, 3] = speed * times, speed
    ego = AgentHistory("ego", "vehicle", times, states, np.ones(len(times), bool), (4.08, 1.73, 1.56))
    return PlanningScene("straight", times, history, ego, agents or [])


def parked(x: float, y: float, times: np.ndarray, size=(4.5, 2.0, 1.5), track_id: str = "car") -> AgentHistory:
    states = np.zeros((len(times), 5))
    states[:, 0], states[:, 1] = x, y
    return AgentHistory(track_id, "vehicle", times, states, np.ones(len(times), bool), size)


def test_boxes_overlap_matches_shapely_on_random_boxes() -> None:
    rng = np.random.default_rng(0)
    a = np.column_stack([rng.uniform(-4, 4, (200, 2)), rng.uniform(0.3, 5, (200, 2)), rng.uniform(-np.pi, np.pi, 200)])
    b = np.column_stack([rng.uniform(-4, 4, (200, 2)), rng.uniform(0.3, 5, (200, 2)), rng.uniform(-np.pi, np.pi, 200)])
    got = boxes_overlap(a, b)
    assert got.shape == (200, 200)
    ca, cb = box_corners(a), box_corners(b)
    pa, pb = [Polygon(c) for c in ca], [Polygon(c) for c in cb]
    for i in range(0, 200, 9):
        expected = np.array([pa[i].intersection(q).area > 1e-9 for q in pb])
        assert (got[i] == expected).all(), i
    assert 0.05 < got.mean() < 0.95  # both outcomes are exercised


def test_rotated_boxes_whose_bounding_boxes_overlap_can_be_apart() -> None:
    diamond = np.array([[0.0, 0.0, 2.0, 2.0, np.pi / 4]])
    corner_gap = np.array([[1.45, 1.45, 1.0, 1.0, 0.0]])  # overlaps the AABB of the diamond, not the diamond
    assert not boxes_overlap(diamond, corner_gap)[0, 0]
    assert boxes_overlap(diamond, np.array([[1.0, 0.0, 1.0, 1.0, 0.0]]))[0, 0]
    assert boxes_overlap(np.zeros((0, 5)), diamond).shape == (0, 1)


def test_ego_box_centre_is_ahead_of_the_rear_axle() -> None:
    box = ego_boxes(np.array([[1.0, 2.0, np.pi / 2]]), EgoSpec(4.0, 2.0, 1.5))[0]
    assert np.allclose(box, [1.0, 3.5, 4.0, 2.0, np.pi / 2])


def test_l2_conventions_average_and_at_horizon() -> None:
    scene = straight_scene()
    times = DT * np.arange(1, 31)
    plan = np.column_stack([5.0 * times, 0.1 * np.arange(1, 31), np.zeros(30)])  # lateral error 0.1 * k
    metrics = evaluate_open_loop(lambda s: plan, [scene], dt=DT)
    assert metrics["l2_1s"] == pytest.approx(np.mean(0.1 * np.arange(1, 11)))  # 0.55: ST-P3 average
    assert metrics["l2_at_1s"] == pytest.approx(1.0)  # error at 1 s
    assert metrics["l2_3s"] == pytest.approx(np.mean(0.1 * np.arange(1, 31)))
    assert metrics["l2_at_3s"] == pytest.approx(3.0)
    assert metrics["collision_3s"] == 0.0 and metrics["num_scenes"] == 1.0


def test_collision_with_an_agent_on_the_path_counts_from_the_step_it_overlaps() -> None:
    times = DT * np.arange(-10, 31)
    # ego front (centre 1.1 m ahead + 2.04 half length) reaches x = 7.75 - 2.25 = 5.5 near t = 0.5 s
    scene = straight_scene([parked(7.75, 0.0, times)])
    plan = np.column_stack([5.0 * times[11:], np.zeros(30), np.zeros(30)])
    l2_free = evaluate_open_loop(lambda s: plan, [straight_scene([parked(7.75, 5.0, times)])], dt=DT)
    assert l2_free["collision_any_3s"] == 0.0
    metrics = evaluate_open_loop(lambda s: plan, [scene], dt=DT)
    steps = np.arange(1, 31) * DT * 5.0 + 1.1 + 2.04 > 7.75 - 2.25  # ego front past the car's rear
    steps &= np.arange(1, 31) * DT * 5.0 + 1.1 - 2.04 < 7.75 + 2.25  # ego rear before its front
    assert metrics["collision_any_1s"] == 1.0
    assert metrics["collision_1s"] == pytest.approx(steps[:10].mean())
    assert metrics["collision_3s"] == pytest.approx(steps.mean())


def test_horizons_beyond_the_ground_truth_are_nan_and_bad_plans_raise() -> None:
    scene = straight_scene(future=15)
    plan = np.zeros((30, 3))
    metrics = evaluate_open_loop(lambda s: plan, [scene], dt=DT)
    assert np.isfinite(metrics["l2_1s"]) and np.isnan(metrics["l2_2s"]) and np.isnan(metrics["l2_3s"])
    with pytest.raises(PlanningMetricError, match=r"\(T_future>0, 3\)"):
        evaluate_open_loop(lambda s: np.zeros((30, 4)), [scene], dt=DT)
    with pytest.raises(PlanningMetricError, match="non-finite"):
        evaluate_open_loop(lambda s: np.full((30, 3), np.nan), [scene], dt=DT)
    with pytest.raises(PlanningMetricError, match="dt"):
        OpenLoopAccumulator(dt=0.5).add(plan, scene)


def test_unknown_agent_sizes_get_category_footprints() -> None:
    assert footprint_of("pedestrian", (0.0, 0.0, 0.0)) == (0.73, 0.67)
    assert footprint_of("vehicle.car", (0, 0, 0)) == (4.6, 1.95)
    assert footprint_of("bus", (12.0, 3.0, 3.0)) == (12.0, 3.0)
    assert footprint_of("mystery", ()) == (1.0, 1.0)
