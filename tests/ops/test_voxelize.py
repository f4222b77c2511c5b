"""Voxelization ops: the fast torch path against the plain reference, edge cases, bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from perception_ops.voxelize import (VoxelGrid, dynamic_voxelize, dynamic_voxelize_batch, hard_voxelize,
                                     hard_voxelize_batch, select_sweeps, voxel_pooling)
from perception_ops.voxelize import reference as ref

RANGE = [-4.0, -4.0, -2.0, 4.0, 4.0, 2.0]


def random_cloud(seed: int, n: int | None = None) -> tuple[torch.Tensor, list[float]]:
    """Points partly outside RANGE, on a coarse lattice half the time so voxels share points."""
    gen = torch.Generator().manual_seed(seed)
    n = int(torch.randint(1, 400, (1,), generator=gen)) if n is None else n
    channels = int(torch.randint(3, 7, (1,), generator=gen))
    dtype = torch.float64 if seed % 3 == 0 else torch.float32
    points = (torch.rand(n, channels, generator=gen, dtype=torch.float64) * 10 - 5).to(dtype)
    if seed % 2:
        points[:, :3] = torch.round(points[:, :3] * 2) / 2  # many points on voxel boundaries
    voxel = [[0.5, 0.5, 0.5], [0.3, 0.7, 0.25], [1.0, 1.0, 4.0]][seed % 3]
    return points, voxel


def assert_hard_equal(got, expected) -> None:
    for g, e, name in zip(got, expected, ("voxels", "coords", "num_points")):
        assert g.dtype == e.dtype, name
        assert torch.equal(g, e), name


@pytest.mark.parametrize("seed", range(40))
def test_hard_voxelize_matches_reference(seed: int) -> None:
    points, voxel = random_cloud(seed)
    max_points = 1 + seed % 4
    max_voxels = [3, 20, 1000][seed % 3]  # 3 and 20 overflow
    grid = VoxelGrid.build(voxel, RANGE)
    got = hard_voxelize(points, voxel, RANGE, max_points, max_voxels)
    assert_hard_equal(got, ref.hard_voxelize_reference(points, grid, max_points, max_voxels))
    assert torch.equal(dynamic_voxelize(points, voxel, RANGE), ref.dynamic_voxelize_reference(points, grid))


def test_hard_voxelize_hand_computed() -> None:
    pts = torch.tensor([[0.1, 0.1, 0.1, 1.0],   # voxel A (z, y, x) = (4, 8, 8)
                        [9.0, 0.0, 0.0, 2.0],   # outside
                        [1.6, 0.2, 0.3, 3.0],   # voxel B = (4, 8, 11)
                        [0.2, 0.4, 0.0, 4.0],   # A
                        [0.3, 0.3, 0.3, 5.0],   # A, over max_points=2
                        [-4.0, -4.0, -2.0, 6.0],  # min corner: voxel (0, 0, 0), over max_voxels=2
                        [1.9, 0.1, 0.1, 7.0]])  # B
    voxels, coords, num = hard_voxelize(pts, [0.5] * 3, RANGE, 2, 2)
    assert coords.tolist() == [[4, 8, 8], [4, 8, 11]]
    assert num.tolist() == [2, 2]
    assert voxels[:, :, 3].tolist() == [[1.0, 4.0], [3.0, 7.0]]
    assert (coords.dtype, num.dtype) == (torch.int32, torch.int32)


def test_range_boundaries() -> None:
    # max edges are exclusive, min edges inclusive (exact binary voxel sizes: no rounding)
    pts = torch.tensor([[-4.0, -4.0, -2.0], [4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 2.0],
                        [3.9999, 3.9999, 1.9999], [-4.0001, 0.0, 0.0]])
    cells = dynamic_voxelize(pts, [0.5] * 3, RANGE)
    assert cells.tolist() == [[0, 0, 0], [-1] * 3, [-1] * 3, [-1] * 3, [7, 15, 15], [-1] * 3]
    _, coords, _ = hard_voxelize(pts, [0.5] * 3, RANGE, 4, 10)
    assert coords.tolist() == [[0, 0, 0], [7, 15, 15]]


def test_single_point_and_one_voxel_overflow() -> None:
    one = torch.tensor([[0.1, 0.2, 0.3, 0.9]])
    voxels, coords, num = hard_voxelize(one, [0.5] * 3, RANGE, 5, 10)
    assert voxels.shape == (1, 5, 4) and torch.equal(voxels[0, 0], one[0]) and not voxels[0, 1:].any()
    assert coords.tolist() == [[4, 8, 8]] and num.tolist() == [1]
    same = torch.rand(50, 4) * 0.4 + 0.05  # all 50 points in voxel (4, 8, 8)
    voxels, coords, num = hard_voxelize(same, [0.5] * 3, RANGE, 7, 10)
    assert coords.tolist() == [[4, 8, 8]] and num.tolist() == [7] and torch.equal(voxels[0], same[:7])


def test_max_voxels_keeps_first_appearing() -> None:
    pts = torch.tensor([[x + 0.25, 0.25, 0.25] for x in (3.0, -1.0, 2.0, 0.0)] + [[3.3, 0.3, 0.3]])
    voxels, coords, num = hard_voxelize(pts, [1.0] * 3, RANGE, 3, 2)
    assert coords[:, 2].tolist() == [7, 3]  # x cells of the first two voxels seen
    assert num.tolist() == [2, 1]  # the 5th point still joins the kept first voxel
    _, coords_nd, _ = hard_voxelize(pts, [1.0] * 3, RANGE, 3, 2, deterministic=False)
    assert coords_nd[:, 2].tolist() == [3, 4]  # non-deterministic mode: key order


@pytest.mark.parametrize("seed", range(10))
def test_nondeterministic_same_voxels(seed: int) -> None:
    points, voxel = random_cloud(seed)
    det = hard_voxelize(points, voxel, RANGE, 4, 10**6)
    nd = hard_voxelize(points, voxel, RANGE, 4, 10**6, deterministic=False)
    key = lambda c: (c[:, 0].long() * 10**6 + c[:, 1].long() * 10**3 + c[:, 2].long())  # noqa: E731
    order_det, order_nd = torch.argsort(key(det[1])), torch.argsort(key(nd[1]))
    assert torch.equal(order_nd, torch.arange(len(order_nd)))  # sorted by (z, y, x)
    for a, b in zip(det, nd):
        assert torch.equal(a[order_det], b[order_nd])


def test_large_coordinates_and_non_finite() -> None:
    big_range = [-1.0e4, -1.0e4, -10.0, 1.0e4, 1.0e4, 10.0]
    pts = torch.tensor([[9999.9, -9999.9, 9.95], [1e30, 0.0, 0.0], [-1e30, 0.0, 0.0], [0.0, 0.0, 0.0],
                        [float("nan"), 0.0, 0.0], [0.0, float("inf"), 0.0], [5e3, 5e3, 0.0]],
                       dtype=torch.float64)
    grid = VoxelGrid.build([0.05, 0.05, 0.1], big_range)
    assert grid.grid_size == (400000, 400000, 200)
    cells = dynamic_voxelize(pts, grid.voxel_size, big_range)
    assert cells.tolist() == [[199, 2, 399998], [-1] * 3, [-1] * 3, [100, 200000, 200000], [-1] * 3,
                              [-1] * 3, [100, 300000, 300000]]
    got = hard_voxelize(pts, grid.voxel_size, big_range, 2, 100)
    assert_hard_equal(got, ref.hard_voxelize_reference(pts, grid, 2, 100))
    assert got[2].sum() == 3


def test_half_precision_points_use_float32_cells() -> None:
    points, voxel = random_cloud(1, 300)
    half = points.half()
    grid = VoxelGrid.build(voxel, RANGE)
    assert torch.equal(dynamic_voxelize(half, voxel, RANGE), dynamic_voxelize(half.float(), voxel, RANGE))
    assert_hard_equal(hard_voxelize(half, voxel, RANGE, 3, 50), ref.hard_voxelize_reference(half, grid, 3, 50))


def test_non_contiguous_points() -> None:
    points, voxel = random_cloud(4, 200)
    strided = points.t().contiguous().t()
    assert not strided.is_contiguous()
    assert_hard_equal(hard_voxelize(strided, voxel, RANGE, 3, 50), hard_voxelize(points, voxel, RANGE, 3, 50))


def test_empty_outputs() -> None:
    for pts in (torch.zeros((0, 5)), torch.full((3, 5), 100.0)):
        voxels, coords, num = hard_voxelize(pts, [0.5] * 3, RANGE, 4, 10)
        assert (voxels.shape, voxels.dtype) == ((0, 4, 5), torch.float32)
        assert (coords.shape, coords.dtype, num.shape, num.dtype) == ((0, 3), torch.int32, (0,), torch.int32)
        cells = dynamic_voxelize(pts, [0.5] * 3, RANGE)
        assert cells.shape == (pts.shape[0], 3) and cells.dtype == torch.int32
        pooled, unique, inverse = voxel_pooling(pts, cells, "max")
        assert pooled.shape == (0, 5) and unique.shape == (0, 3) and inverse.tolist() == [-1] * pts.shape[0]


@pytest.mark.parametrize("seed", range(8))
def test_batch_matches_per_sample_reference(seed: int) -> None:
    xyz = [random_cloud(seed * 10 + b, n=[150, 0, 80][b])[0][:, :3].float() for b in range(3)]
    clouds = [torch.cat([p, torch.arange(len(p), dtype=p.dtype)[:, None]], 1) for p in xyz]
    grid = VoxelGrid.build([0.5] * 3, RANGE)
    max_voxels = [5, 1000][seed % 2]
    got = hard_voxelize_batch(clouds, grid.voxel_size, RANGE, 3, max_voxels)
    assert_hard_equal(got, ref.hard_voxelize_batch_reference(clouds, grid, 3, max_voxels))
    assert 1 not in got[1][:, 0].tolist()  # the empty sample has no voxels
    # same batch as one tensor + batch index, shuffled: per-sample first-appearance order holds
    flat, batch = torch.cat(clouds), torch.tensor([0] * 150 + [2] * 80)
    perm = torch.randperm(230, generator=torch.Generator().manual_seed(seed))
    shuffled = hard_voxelize_batch(flat[perm], grid.voxel_size, RANGE, 3, max_voxels, batch_idx=batch[perm],
                                   batch_size=3)
    expected = ref.hard_voxelize_batch_reference([flat[perm][batch[perm] == b] for b in range(3)], grid, 3,
                                                 max_voxels)
    assert_hard_equal(shuffled, expected)
    cells = dynamic_voxelize_batch(clouds, grid.voxel_size, RANGE)
    single = [dynamic_voxelize(c, grid.voxel_size, RANGE) for c in clouds]
    assert torch.equal(cells[:, 1:], torch.cat(single))
    assert torch.equal(cells[:, 0], torch.where(cells[:, 1] >= 0, batch, -1).int())


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("mode", ["mean", "max", "sum"])
def test_voxel_pooling_matches_reference(seed: int, mode: str) -> None:
    points, voxel = random_cloud(seed)
    coords = dynamic_voxelize(points, voxel, RANGE)
    if seed % 2:
        coords = torch.cat([torch.randint(0, 2, (len(points), 1), dtype=torch.int32), coords], 1)
    got = voxel_pooling(points, coords, mode)
    expected = ref.voxel_pooling_reference(points, coords, mode)
    torch.testing.assert_close(got[0], expected[0])
    assert torch.equal(got[1], expected[1]) and torch.equal(got[2], expected[2])
    assert got[1].dtype == coords.dtype and got[2].dtype == torch.int64


@pytest.mark.parametrize("mode", ["mean", "max", "sum"])
def test_voxel_pooling_gradcheck(mode: str) -> None:
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(12, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    coords = torch.randint(0, 3, (12, 2), generator=gen)
    coords[4] = -1  # ignored row: zero gradient
    assert torch.autograd.gradcheck(lambda f: voxel_pooling(f, coords, mode)[0], (feats,))
    voxel_pooling(feats, coords, mode)[0].sum().backward()
    assert not feats.grad[4].any()


def test_voxel_pooling_max_ties_split_gradient() -> None:
    feats = torch.tensor([[1.0, 2.0], [1.0, 5.0], [0.5, 5.0]], dtype=torch.float64, requires_grad=True)
    coords = torch.zeros((3, 3), dtype=torch.int32)
    voxel_pooling(feats, coords, "max")[0].sum().backward()
    assert feats.grad.tolist() == [[0.5, 0.0], [0.5, 0.5], [0.0, 0.5]]
    ref_feats = feats.detach().clone().requires_grad_()
    ref.voxel_pooling_reference(ref_feats, coords, "max")[0].sum().backward()
    assert torch.equal(ref_feats.grad, feats.grad)


def test_select_sweeps() -> None:
    pts = torch.tensor([[0.0, 0, 0, 1, 0.0], [0, 0, 0, 1, 0.05], [0, 0, 0, 1, 0.3], [0, 0, 0, 1, float("nan")]])
    assert torch.equal(select_sweeps(pts, 4, 0.1), pts[:2])
    assert select_sweeps(pts, -1, 1.0).shape == (3, 5)
    with pytest.raises(ValueError, match="time_lag_column"):
        select_sweeps(pts, 2, 0.1)


GOOD = dict(voxel_size=[0.5] * 3, point_cloud_range=RANGE, max_points_per_voxel=4, max_voxels=10)


@pytest.mark.parametrize("points, overrides, match", [
    (torch.zeros((4, 2)), {}, "points must have shape"),
    (torch.zeros(4), {}, "points must have shape"),
    (torch.zeros((4, 3), dtype=torch.int32), {}, "floating"),
    (np.zeros((4, 3), dtype=np.float32), {}, "torch.Tensor"),
    (torch.zeros((4, 3), device="meta"), {}, "device meta"),
    (torch.zeros((4, 3)), {"voxel_size": [0.5, 0.0, 0.5]}, "voxel_size must be > 0"),
    (torch.zeros((4, 3)), {"voxel_size": [0.5, 0.5]}, "voxel_size must have 3"),
    (torch.zeros((4, 3)), {"voxel_size": [0.5, float("nan"), 0.5]}, "voxel_size must be finite"),
    (torch.zeros((4, 3)), {"point_cloud_range": [0, 0, 0, 1, -1, 1]}, "point_cloud_range needs max > min"),
    (torch.zeros((4, 3)), {"point_cloud_range": [0, 0, 0, 1, 1]}, "point_cloud_range must have 6"),
    (torch.zeros((4, 3)), {"voxel_size": [20.0, 0.5, 0.5]}, "empty axis"),
    (torch.zeros((4, 3)), {"voxel_size": [1e-9] * 3}, "too large"),
    (torch.zeros((4, 3)), {"max_points_per_voxel": 0}, "max_points_per_voxel"),
    (torch.zeros((4, 3)), {"max_voxels": 2.5}, "max_voxels"),
    (torch.zeros((4, 3)), {"deterministic": "yes"}, "deterministic"),
])
def test_bad_input_raises(points, overrides, match) -> None:
    with pytest.raises(ValueError, match=match):
        hard_voxelize(points, **{**GOOD, **overrides})


def test_bad_pooling_and_batch_input_raises() -> None:
    feats = torch.zeros((4, 2))
    with pytest.raises(ValueError, match="point_coords must have shape"):
        voxel_pooling(feats, torch.zeros((3, 3), dtype=torch.int32))
    with pytest.raises(ValueError, match="integer"):
        voxel_pooling(feats, torch.zeros((4, 3)))
    with pytest.raises(ValueError, match="mode"):
        voxel_pooling(feats, torch.zeros((4, 3), dtype=torch.int32), "median")
    with pytest.raises(ValueError, match=r"points\[1\]"):
        hard_voxelize_batch([torch.zeros((2, 4)), torch.zeros((2, 5))], **GOOD)
    with pytest.raises(ValueError, match="batch_idx"):
        hard_voxelize_batch(torch.zeros((2, 4)), **GOOD)
    with pytest.raises(ValueError, match=r"batch_idx values must lie in \[0, 2\)"):
        hard_voxelize_batch(torch.zeros((2, 4)), **GOOD, batch_idx=torch.tensor([0, 2]), batch_size=2)
    with pytest.raises(ValueError, match="non-empty list"):
        dynamic_voxelize_batch([], [0.5] * 3, RANGE)


@pytest.mark.slow
@pytest.mark.real_data
def test_nuscenes_keyframe_matches_reference(nuscenes_keyframe_dir) -> None:
    path = next(nuscenes_keyframe_dir.glob("*.pcd.bin"))
    points = torch.from_numpy(np.fromfile(path, dtype=np.float32).reshape(-1, 5))
    pc_range, voxel = [-54.0, -54.0, -5.0, 54.0, 54.0, 3.0], [0.075, 0.075, 0.2]
    grid = VoxelGrid.build(voxel, pc_range)
    assert grid.grid_size == (1440, 1440, 40)
    got = hard_voxelize(points, voxel, pc_range, 10, 120000)
    assert_hard_equal(got, ref.hard_voxelize_reference(points, grid, 10, 120000))
    cells = dynamic_voxelize(points, voxel, pc_range)
    inside = int((cells[:, 0] >= 0).sum())
    assert 30000 < inside < points.shape[0]  # most of the 34,688 points are within 54 m
    pooled, unique, _ = voxel_pooling(points, cells, "mean")
    assert unique.shape[0] == got[1].shape[0]  # no max_voxels overflow: same voxel set
    assert int(got[2].sum()) <= inside and pooled.shape == (unique.shape[0], 5)
