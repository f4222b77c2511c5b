"""BEV pooling: native and torch backends vs the two references, gradients, plan cache, errors.

The fused depth x context op is tested in test_bev_pool_depth.py, the Triton kernels in
test_bev_pool_triton.py; the cases are in bev_pool_cases.py.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from perception.structures import BEVGrid
from perception_ops.bev_pool import (BEVPoolPlan, BEVPoolPlanCache, bev_pool, compute_ranks, frustum_geometry,
                                     frustum_points, grid_from_bounds)
from perception_ops.bev_pool import reference as ref

from bev_pool_cases import BACKENDS, CASES, GRID, SMALL_GRID, gradcheck_case, make_case, needs_native

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES)
def test_matches_both_references_fp64(backend: str, case: str) -> None:
    needs_native(backend)
    geometry, features = make_case(case)
    plan = BEVPoolPlan.build(geometry, GRID)
    out = bev_pool(features, plan, backend=backend)
    batch = geometry.shape[0]
    assert out.shape == (batch, 5, 4, 12, 16)
    for method in ("index_add", "cumsum"):
        expected = ref.bev_pool_reference(features, geometry, GRID, method)
        torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    kept = {"one_cell": plan.num_points, "all_outside": 0, "zero_points": 0}
    if case in kept:
        assert plan.num_kept == kept[case]
    if case == "one_cell":
        assert plan.starts.tolist() == [0, plan.num_points // 2] and len(plan.cells) == 2  # one per sample
        assert out.sum(dim=(2, 3, 4)).allclose(features.view(2, -1, 5).sum(1))
    if case == "random":
        assert 0 < plan.num_kept < plan.num_points and (out != 0).any(dim=1).sum() == len(plan.cells)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_and_half_precision(backend: str) -> None:
    needs_native(backend)
    geometry, features = make_case("random", torch.float32, channels=136)  # > one channel block
    plan = BEVPoolPlan.build(geometry, GRID)
    expected = ref.bev_pool_reference(features.double(), geometry, GRID, "index_add")
    torch.testing.assert_close(bev_pool(features, plan, backend=backend).double(), expected,
                               rtol=1e-5, atol=1e-5)
    for dtype in (torch.float16, torch.bfloat16):
        out = bev_pool(features.to(dtype), plan, backend=backend)
        assert out.dtype == dtype
        torch.testing.assert_close(out.double(), expected, rtol=2e-2, atol=5e-2)


def test_ranks_follow_bev_conventions() -> None:
    """Row along +y, column along +x (perception.structures.BEVGrid), z the slowest bin."""
    points = torch.tensor([[[3.9, -2.9, 1.5], [-3.9, 2.9, -1.5], [0.2, 0.7, 0.0], [4.0, 0.0, 0.0]]],
                          dtype=torch.float64)
    ranks = compute_ranks(points, GRID)
    assert torch.equal(ranks, ref.reference_ranks(points, GRID))
    bev = BEVGrid((-4.0, 4.0), (-3.0, 3.0), 0.5)
    rows_cols = bev.cell_of(points[0, :, :2].numpy())
    assert rows_cols[3].tolist() == [-1, -1] and ranks[3] == -1  # x = 4.0 is outside
    features = torch.eye(4, dtype=torch.float64)
    out = bev_pool(features, BEVPoolPlan.build(points, GRID), backend="torch")
    for k in range(3):
        z = int(np.floor((points[0, k, 2].item() + 2.0) / 1.0))
        row, col = rows_cols[k]
        assert out[0, k, z, row, col] == 1.0 and out[0, k].sum() == 1.0
    collapsed = bev_pool(features, BEVPoolPlan.build(points, GRID), collapse_z=True, backend="torch")
    assert torch.equal(collapsed, torch.cat(out.unbind(dim=2), dim=1))  # BEVFusion's channel order


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_and_gradients_match_references(backend: str) -> None:
    needs_native(backend)
    geometry, features = gradcheck_case()
    plan = BEVPoolPlan.build(geometry, SMALL_GRID)
    assert 10 < plan.num_kept < 50
    assert torch.autograd.gradcheck(lambda f: bev_pool(f, plan, backend=backend, collapse_z=True), (features,))
    weight = torch.randn(2, 3, 2, 3, 4, dtype=torch.float64)
    grads = []
    for fn in (lambda f: bev_pool(f, plan, backend=backend),
               lambda f: ref.bev_pool_reference(f, geometry, SMALL_GRID, "index_add"),
               lambda f: ref.bev_pool_reference(f, geometry, SMALL_GRID, "cumsum")):
        grads.append(torch.autograd.grad((fn(features) * weight).sum(), features)[0])
    assert torch.equal(grads[0], grads[1]) and torch.equal(grads[0], grads[2])
    dropped = plan.ranks < 0
    assert dropped.any() and (grads[0][dropped] == 0).all() and (grads[0][~dropped] != 0).any()


def test_native_is_deterministic_across_thread_counts() -> None:
    needs_native("native")
    geometry, features = make_case("one_cell", torch.float32, channels=16)
    plan = BEVPoolPlan.build(geometry, GRID)
    before = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append(bev_pool(features, plan, backend="native"))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(results[0], results[1])


def test_plan_cache_reuses_and_rebuilds() -> None:
    cam2img = torch.tensor([[[[500.0, 0, 32], [0, 500.0, 16], [0, 0, 1]]] * 2], dtype=torch.float64)
    cam2lidar = torch.eye(4, dtype=torch.float64).repeat(1, 2, 1, 1)
    cam2lidar[0, 1, :3, :3] = torch.tensor([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]])  # looks along +x
    frustum = frustum_points((32, 64), (4, 8), (1.0, 4.0, 1.0), dtype=torch.float64)
    calls = []

    def geometry() -> torch.Tensor:
        calls.append(1)
        return frustum_geometry(frustum, cam2img, cam2lidar)

    cache = BEVPoolPlanCache(max_entries=2)
    first = cache.get([cam2img, cam2lidar], GRID, geometry, extra=(4, 8))
    again = cache.get([cam2img.clone(), cam2lidar.clone()], GRID, geometry, extra=(4, 8))
    assert again is first and len(calls) == 1 and (cache.hits, cache.misses) == (1, 1)
    moved = cam2lidar.clone()
    moved[0, 0, 0, 3] += 1e-6  # a re-calibration, however small, is a new plan
    rebuilt = cache.get([cam2img, moved], GRID, geometry, extra=(4, 8))
    assert rebuilt is not first and len(calls) == 2
    other_grid = grid_from_bounds([-4, 4, 0.25], [-3, 3, 0.5], [-2, 2, 1.0])
    assert cache.get([cam2img, cam2lidar], other_grid, geometry, extra=(4, 8)) is not first
    assert len(cache) == 2 and len(calls) == 3  # LRU of 2: the first plan was evicted
    assert cache.get([cam2img, cam2lidar], GRID, geometry, extra=(4, 8)) is not first
    assert len(calls) == 4 and first.num_kept > 0
    with pytest.raises(ValueError, match="calibration entry"):
        cache.get([cam2img, "not a tensor"], GRID, geometry)


def test_frustum_geometry_reprojects_onto_its_pixels() -> None:
    g = torch.Generator().manual_seed(1)
    cam2img = torch.tensor([[800.0, 0, 300], [0, 810.0, 170], [0, 0, 1]], dtype=torch.float64)
    angle = 0.3
    cam2lidar = torch.eye(4, dtype=torch.float64)
    cam2lidar[:3, :3] = torch.tensor([[math.cos(angle), 0, math.sin(angle)], [0, 1, 0],
                                      [-math.sin(angle), 0, math.cos(angle)]], dtype=torch.float64)
    cam2lidar[:3, 3] = torch.randn(3, generator=g, dtype=torch.float64)
    img_aug = torch.eye(4, dtype=torch.float64)
    img_aug[0, 0] = img_aug[1, 1] = 0.5
    img_aug[:2, 3] = torch.tensor([-10.0, -20.0])
    frustum = frustum_points((128, 256), (8, 16), (1.0, 10.0, 3.0), dtype=torch.float64)
    geom = frustum_geometry(frustum, cam2img.view(1, 1, 3, 3), cam2lidar.view(1, 1, 4, 4), img_aug.view(1, 1, 4, 4))
    assert geom.shape == (1, 1, 3, 8, 16, 3)
    cam = (geom.reshape(-1, 3) - cam2lidar[:3, 3]) @ cam2lidar[:3, :3]  # lidar -> camera
    pixels = cam @ cam2img.T
    uv = pixels[:, :2] / pixels[:, 2:]
    net = uv * 0.5 + torch.tensor([-10.0, -20.0])
    torch.testing.assert_close(net, frustum.reshape(-1, 3)[:, :2])
    torch.testing.assert_close(cam[:, 2], frustum.reshape(-1, 3)[:, 2])


def test_errors_name_the_problem() -> None:
    geometry, features = make_case("random")
    plan = BEVPoolPlan.build(geometry, GRID)
    with pytest.raises(ValueError, match="rows but the geometry has"):
        bev_pool(features[:-1], plan)
    with pytest.raises(ValueError, match="to match the geometry"):
        bev_pool(features.view(2, 2, 4, 15, 5), plan)
    with pytest.raises(ValueError, match="float16/bfloat16/float32/float64"):
        bev_pool(features.long(), plan)
    with pytest.raises(ValueError, match="plan's indices are on cpu"):
        bev_pool(features.to("meta"), plan)
    with pytest.raises(ValueError, match="backend must be"):
        bev_pool(features, plan, backend="cuda")
    with pytest.raises(ValueError, match="pass grid="):
        bev_pool(features, geometry)
    with pytest.raises(ValueError, match=r"geometry must have shape \(B, \.\.\., 3\)"):
        BEVPoolPlan.build(geometry[..., :2], GRID)
    with pytest.raises(ValueError, match="floating"):
        BEVPoolPlan.build(geometry.long(), GRID)
    with pytest.raises(ValueError, match="xbound must be"):
        grid_from_bounds([-1, 1], [-1, 1, 0.5], [-1, 1, 2])
    assert torch.equal(bev_pool(features, geometry, GRID), bev_pool(features, plan))


def test_falls_back_to_torch_when_the_native_op_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from perception_ops.bev_pool import backends

    geometry, features = make_case("random")
    plan = BEVPoolPlan.build(geometry, GRID)
    monkeypatch.setattr(backends, "native_available", lambda: False)
    with pytest.warns(RuntimeWarning, match="native backend is unavailable on cpu; using the slower torch path"):
        out = bev_pool(features, plan)
    torch.testing.assert_close(out, ref.bev_pool_reference(features, geometry, GRID), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="backend 'native' is not available"):
        bev_pool(features, plan, backend="native")


def test_native_op_rejects_a_corrupt_plan() -> None:
    needs_native("native")
    geometry, features = make_case("random")
    plan = BEVPoolPlan.build(geometry, GRID)
    op = torch.ops.perception_ops
    bad_cells = plan.cells.clone()
    bad_cells[-1] = plan.num_rows
    with pytest.raises(ValueError, match="outside the"):
        op.bev_pool_forward(features, plan.order, plan.starts, plan.lengths, bad_cells, plan.num_rows)
    bad_order = plan.order.clone()
    bad_order[0] = features.shape[0]
    with pytest.raises(ValueError, match="is not one of the 240 points"):
        op.bev_pool_forward(features, bad_order, plan.starts, plan.lengths, plan.cells, plan.num_rows)
    with pytest.raises(ValueError, match="must be int64"):
        op.bev_pool_backward(torch.zeros(plan.num_rows, 5), plan.ranks.int())
    with pytest.raises(ValueError, match="outside the"):
        op.bev_pool_backward(torch.zeros(3, 5), plan.ranks)


@pytest.mark.slow
@pytest.mark.real_data
def test_real_keyframe_rig_lands_in_the_grid(nuscenes_keyframe_dir: Path) -> None:
    from perception.benchmarks.bevpool_rig import nuscenes_rig

    rig = nuscenes_rig(nuscenes_keyframe_dir, (256, 704))
    assert rig.image_sizes == [(1600, 900)] * 6
    frustum = frustum_points((256, 704), (32, 88), (1.0, 60.0, 0.5))
    geom = frustum_geometry(frustum, rig.cam2img, rig.cam2lidar, rig.img_aug)
    assert geom.shape == (1, 6, 118, 32, 88, 3)
    # 1 m deep points sit around the cameras (~1-2 m from the LiDAR), 60 m deep ones far out
    near = geom[0, :, 0].reshape(-1, 3)[:, :2].norm(dim=1)
    far = geom[0, :, -1].reshape(-1, 3)[:, :2].norm(dim=1)
    assert near.max() < 3.5 and far.min() > 45.0
    grid = grid_from_bounds([-54, 54, 0.3], [-54, 54, 0.3], [-10, 10, 20])
    plan = BEVPoolPlan.build(geom, grid)
    assert 0.8 < plan.num_kept / plan.num_points < 0.95 and plan.output_shape == (1, 1, 360, 360)
