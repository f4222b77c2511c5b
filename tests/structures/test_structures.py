"""Round trips of the coordinate conventions in perception.structures.conventions."""
from __future__ import annotations

import numpy as np
import pytest

from perception.structures import (
    BEVGrid,
    Boxes3D,
    Frame,
    FrameError,
    apply_transform,
    invert_transform,
    make_transform,
    matrix_to_quaternion,
    quaternion_to_matrix,
    wrap_angle,
    yaw_matrix,
)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    quat = rng.normal(size=4)
    return quaternion_to_matrix(quat / np.linalg.norm(quat))


def _random_boxes(rng: np.random.Generator, count: int) -> Boxes3D:
    data = np.concatenate(
        [
            rng.uniform(-40, 40, (count, 3)),
            rng.uniform(0.5, 6, (count, 3)),
            rng.uniform(-np.pi, np.pi, (count, 1)),
            rng.uniform(-10, 10, (count, 2)),
        ],
        axis=1,
    )
    return Boxes3D(data, rng.integers(0, 10, count), [f"t{i}" for i in range(count)])


def test_quaternion_round_trip() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        rotation = _random_rotation(rng)
        assert np.allclose(quaternion_to_matrix(matrix_to_quaternion(rotation)), rotation, atol=1e-9)
        assert np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-9)


def test_transform_inverse_round_trip() -> None:
    rng = np.random.default_rng(1)
    transform = make_transform(_random_rotation(rng), rng.normal(size=3) * 100)
    points = rng.normal(size=(100, 3)) * 30
    back = apply_transform(invert_transform(transform), apply_transform(transform, points))
    assert np.allclose(back, points, atol=1e-9)
    assert np.allclose(invert_transform(transform) @ transform, np.eye(4), atol=1e-12)


def test_boxes_round_trip_between_frames() -> None:
    """lidar -> global -> lidar keeps centres, sizes, yaws and velocities."""
    rng = np.random.default_rng(2)
    boxes = _random_boxes(rng, 20)
    lidar2global = make_transform(yaw_matrix(1.234), [400.0, 1100.0, 1.8])
    back = boxes.transform(lidar2global).transform(invert_transform(lidar2global))
    assert np.allclose(back.data[:, :6], boxes.data[:, :6], atol=1e-9)
    assert np.allclose(wrap_angle(back.yaws - boxes.yaws), 0, atol=1e-9)
    assert np.allclose(back.velocities, boxes.velocities, atol=1e-9)


def test_yaw_convention_and_transform_rotates_heading() -> None:
    """yaw 0 points along +x; rotating the frame by +90 deg adds 90 deg to the yaw."""
    box = Boxes3D(np.array([[10.0, 0, 0, 4.0, 2.0, 1.5, 0.0, 5.0, 0.0]]), [0])
    corners = box.corners()[0]
    assert np.isclose(corners[:, 0].max(), 12.0) and np.isclose(corners[:, 1].max(), 1.0)
    rotated = box.transform(make_transform(yaw_matrix(np.pi / 2), np.zeros(3)))
    assert np.allclose(rotated.centers[0], [0.0, 10.0, 0.0], atol=1e-9)
    assert np.isclose(rotated.yaws[0], np.pi / 2)
    assert np.allclose(rotated.velocities[0], [0.0, 5.0], atol=1e-9)


def test_points_in_boxes_matches_corners() -> None:
    rng = np.random.default_rng(3)
    boxes = _random_boxes(rng, 5)
    # points sampled in each box's local frame, then moved to the frame
    local = rng.uniform(-0.49, 0.49, (5, 200, 3)) * boxes.sizes[:, None, :]
    cos, sin = np.cos(boxes.yaws)[:, None], np.sin(boxes.yaws)[:, None]
    world = np.stack(
        [local[..., 0] * cos - local[..., 1] * sin, local[..., 0] * sin + local[..., 1] * cos, local[..., 2]],
        axis=-1,
    ) + boxes.centers[:, None, :]
    mask = boxes.points_in_boxes(world.reshape(-1, 3))
    for index in range(5):
        assert mask[index * 200 : (index + 1) * 200, index].all()
    outside = boxes.centers + boxes.sizes.max(axis=1, keepdims=True) * 2
    assert not boxes.points_in_boxes(outside).diagonal().any()
    assert boxes.count_points(world.reshape(-1, 3), chunk=77).tolist() == mask.sum(axis=0).tolist()


@pytest.mark.parametrize("count", [0, 1, 3, 60])
@pytest.mark.parametrize("cell", [0.25, 1.0, 7.0])
def test_points_in_any_box_equals_exact_test(count: int, cell: float) -> None:
    """The grid-prefiltered test agrees with the brute-force one, points on faces included."""
    rng = np.random.default_rng(count * 10 + int(cell * 4))
    boxes = _random_boxes(rng, count)
    points = rng.uniform(-45, 45, (20000, 4))
    points[:, 2] = rng.uniform(-4, 4, 20000)
    if count:
        # points on the +x face of each box, at its corners and at its centre
        corners = boxes.corners().reshape(-1, 3)
        face = boxes.centers + np.stack([np.cos(boxes.yaws), np.sin(boxes.yaws), np.zeros(count)], 1) * boxes.sizes[:, :1] / 2
        points = np.concatenate([points, np.pad(np.concatenate([corners, face, boxes.centers]), ((0, 0), (0, 1)))])
    points[:3] = np.nan  # NaN rows are inside nothing
    expected = boxes.points_in_boxes(points).any(axis=1) if count else np.zeros(len(points), bool)
    got = boxes.points_in_any_box(points, cell=cell, chunk=999)
    assert got.dtype == bool and got.shape == (len(points),)
    assert np.array_equal(got, expected)
    assert count == 0 or got.sum() > 0
    assert not boxes.points_in_any_box(np.zeros((0, 3))).any()


def test_bottom_centers() -> None:
    box = Boxes3D(np.array([[0.0, 0, 1.0, 4.0, 2.0, 2.0, 0.3, 0, 0]]), [0])
    assert np.allclose(box.bottom_centers()[0], [0, 0, 0])
    assert np.isclose(box.corners()[0, :4, 2].max(), 0.0)


def test_boxes_validation_and_indexing() -> None:
    with pytest.raises(ValueError, match="labels"):
        Boxes3D(np.zeros((2, 9)), [0])
    boxes = _random_boxes(np.random.default_rng(4), 4)
    picked = boxes[np.array([True, False, True, False])]
    assert len(picked) == 2 and picked.track_ids == ["t0", "t2"]
    assert len(Boxes3D.empty()) == 0


def test_bev_grid_axes() -> None:
    """Column grows along +x, row along +y; a point maps to the cell that contains it."""
    grid = BEVGrid((-51.2, 51.2), (-51.2, 51.2), 0.8)
    assert grid.shape == (128, 128)
    cells = grid.cell_of(np.array([[10.0, -20.0], [-51.2, -51.2], [60.0, 0.0]]))
    assert cells[0].tolist() == [39, 76]
    assert cells[1].tolist() == [0, 0] and cells[2].tolist() == [-1, -1]
    assert np.allclose(grid.center_of(cells[:1]), [[10.0, -19.6]])
    with pytest.raises(ValueError):
        BEVGrid((1, 0), (0, 1), 0.1)


def _frame(points: np.ndarray, features: tuple[str, ...] = ("x", "y", "z", "intensity")) -> Frame:
    return Frame("tok", 0.0, "test", points, features, np.eye(4), np.eye(4), ("car",))


def test_frame_validation() -> None:
    frame = _frame(np.zeros((3, 4)))
    assert frame.feature("intensity").shape == (3,)
    with pytest.raises(FrameError, match="does not match"):
        _frame(np.zeros((3, 5)))
    with pytest.raises(FrameError, match="x, y, z"):
        _frame(np.zeros((3, 4)), ("y", "x", "z", "intensity"))
    with pytest.raises(KeyError, match="ring"):
        frame.feature("ring")
