"""bev_pool_depth (fused LSS depth x context pooling) == bev_pool of the materialized outer
product == both references, with gradients for depth and context."""
from __future__ import annotations

import pytest
import torch

from perception_ops.bev_pool import BEVPoolPlan, bev_pool, bev_pool_depth
from perception_ops.bev_pool import reference as ref

from bev_pool_cases import (BACKENDS, CASES, GRID, SMALL_GRID, depth_context, gradcheck_case, lifted, make_case,
                            needs_native)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES)
def test_equals_pooling_the_outer_product(backend: str, case: str) -> None:
    needs_native(backend)
    geometry, _ = make_case(case)
    depth, context = depth_context(geometry, channels=4)
    plan = BEVPoolPlan.build(geometry, GRID)
    out = bev_pool_depth(depth, context, plan, backend=backend)
    assert out.shape == (geometry.shape[0], 4, 4, 12, 16)
    for method in ("index_add", "cumsum"):
        expected = ref.bev_pool_reference(lifted(depth, context), geometry, GRID, method)
        torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    collapsed = bev_pool_depth(depth, context, plan, collapse_z=True, backend=backend)
    assert torch.equal(collapsed, torch.cat(out.unbind(dim=2), dim=1))


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradients_match_autograd_of_the_outer_product(backend: str) -> None:
    needs_native(backend)
    geometry, _ = gradcheck_case()
    depth, context = depth_context(geometry, channels=3)
    depth.requires_grad_()
    context.requires_grad_()
    plan = BEVPoolPlan.build(geometry, SMALL_GRID)
    assert torch.autograd.gradcheck(lambda d, c: bev_pool_depth(d, c, plan, backend=backend), (depth, context))
    weight = torch.randn(2, 3, 2, 3, 4, dtype=torch.float64)
    fused = torch.autograd.grad((bev_pool_depth(depth, context, plan, backend=backend) * weight).sum(),
                                (depth, context))
    plain = torch.autograd.grad((ref.bev_pool_reference(lifted(depth, context), geometry, SMALL_GRID, "cumsum")
                                 * weight).sum(), (depth, context))
    for got, expected in zip(fused, plain):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    dropped = (plan.ranks < 0).view(depth.shape)
    assert dropped.any() and (fused[0][dropped] == 0).all() and (fused[0][~dropped] != 0).all()
    only_context = torch.autograd.grad(bev_pool_depth(depth.detach(), context, plan, backend=backend).sum(), context)
    torch.testing.assert_close(only_context[0], torch.autograd.grad(
        bev_pool_depth(depth, context, plan, backend=backend).sum(), context)[0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_and_half(backend: str) -> None:
    needs_native(backend)
    geometry, _ = make_case("random", torch.float32)
    depth, context = depth_context(geometry, channels=136)  # > one native channel block
    plan = BEVPoolPlan.build(geometry, GRID)
    expected = bev_pool(lifted(depth, context), plan, backend="torch")
    for dtype, tol in ((torch.float32, 1e-5), (torch.bfloat16, 2e-2)):
        out = bev_pool_depth(depth.to(dtype), context.to(dtype), plan, backend=backend)
        assert out.dtype == dtype
        torch.testing.assert_close(out.double(), expected, rtol=tol, atol=tol * 4)


def test_errors_name_the_problem() -> None:
    geometry, _ = make_case("random")
    depth, context = depth_context(geometry)
    plan = BEVPoolPlan.build(geometry, GRID)
    with pytest.raises(ValueError, match=r"depth must have the plan's point shape \(B, Ncam, D, H, W\)"):
        bev_pool_depth(depth[:, :, :-1], context, plan)
    with pytest.raises(ValueError, match=r"permute\(0, 1, 3, 4, 2\)"):
        bev_pool_depth(depth, context.permute(0, 1, 4, 2, 3), plan)
    with pytest.raises(ValueError, match="must share a dtype"):
        bev_pool_depth(depth, context.float(), plan)
    with pytest.raises(ValueError, match="context must be float16/bfloat16/float32/float64"):
        bev_pool_depth(depth, context.int(), plan)
    flat = BEVPoolPlan.build(geometry.reshape(2, -1, 3), GRID)  # a (B, N, 3) plan has no cameras
    with pytest.raises(ValueError, match="point shape"):
        bev_pool_depth(depth, context, flat)
