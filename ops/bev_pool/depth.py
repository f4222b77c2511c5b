"""``bev_pool_depth``: LSS's depth x context outer product pooled without materializing it.

LSS lifts every image feature ``context[b, cam, h, w]`` to every depth bin, weighted by the
predicted depth distribution: ``features[b, cam, d, h, w] = depth[b, cam, d, h, w] *
context[b, cam, h, w]``, ``(B, Ncam, D, H, W, C)``, then pools it.  With BEVFusion's nuScenes
setting that tensor is 2 M x 80 floats (638 MB) per frame, and its gradient as much again.
Here (the idea of BEVPoolv2) the forward sums ``depth * context`` row by row inside each
interval, and the backward produces the two small gradients directly:

* ``grad_depth[q] = <grad_bev[cell of q], context[pixel of q]>`` (over points);
* ``grad_context[pixel] = sum over the pixel's depth bins q of depth[q] * grad_bev[cell of q]``.

``bev_pool_depth(depth, context, plan)`` equals ``bev_pool(depth[..., None] *
context[:, :, None], plan)`` up to float rounding.
"""
from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from ..voxelize.grid import VoxelGrid
from .api import as_plan, cells_to_bev, check_floating
from .backends import PoolBackend, select_backend
from .plan import BEVPoolPlan


class _BEVPoolDepthFunction(torch.autograd.Function):
    """Fused forward and the two gather backwards of one backend."""

    @staticmethod
    def forward(ctx, depth: torch.Tensor, context: torch.Tensor, plan: BEVPoolPlan,  # type: ignore[override]
                backend: PoolBackend) -> torch.Tensor:
        ctx.save_for_backward(depth, context)
        ctx.plan, ctx.backend = plan, backend
        return backend.depth_forward(depth, context, plan)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        depth, context = ctx.saved_tensors
        grad_depth, grad_context = ctx.backend.depth_backward(
            grad.contiguous(), depth, context, ctx.plan, ctx.needs_input_grad[0], ctx.needs_input_grad[1])
        return grad_depth, grad_context, None, None


def check_depth_context(depth: object, context: object, plan: BEVPoolPlan) -> tuple[torch.Tensor, torch.Tensor]:
    """``depth (B, Ncam, D, H, W)`` and ``context (B, Ncam, H, W, C)`` as contiguous ``(G, D, HW)``
    and ``(G, HW, C)``, raising ``ValueError`` on any mismatch with each other or the plan."""
    depth = check_floating(depth, "depth", plan)
    context = check_floating(context, "context", plan)
    if len(plan.point_shape) != 5 or tuple(depth.shape) != plan.point_shape:
        raise ValueError(f"depth must have the plan's point shape (B, Ncam, D, H, W) = {plan.point_shape}, "
                         f"got {tuple(depth.shape)}")
    batch, cams, bins, height, width = plan.point_shape
    if context.dim() != 5 or tuple(context.shape[:4]) != (batch, cams, height, width):
        raise ValueError(f"context must have shape (B, Ncam, H, W, C) = {(batch, cams, height, width)} + (C,), "
                         f"got {tuple(context.shape)}; a (B, Ncam, C, H, W) map needs .permute(0, 1, 3, 4, 2)")
    if context.dtype != depth.dtype:
        raise ValueError(f"depth ({depth.dtype}) and context ({context.dtype}) must share a dtype")
    return (depth.reshape(batch * cams, bins, height * width).contiguous(),
            context.reshape(batch * cams, height * width, context.shape[-1]).contiguous())


def bev_pool_depth(depth: torch.Tensor, context: torch.Tensor, plan: BEVPoolPlan | torch.Tensor,
                   grid: VoxelGrid | None = None, *, collapse_z: bool = False, backend: str = "auto") -> torch.Tensor:
    """Pool ``depth (B, Ncam, D, H, W) x context (B, Ncam, H, W, C)`` into the BEV cells of
    ``plan`` (or of a geometry ``(B, Ncam, D, H, W, 3)`` with ``grid``).

    Returns ``(B, C, Z, Y, X)`` or, with ``collapse_z``, ``(B, Z*C, Y, X)`` as
    :func:`~.api.bev_pool`; differentiable with respect to both inputs.
    """
    plan = as_plan(plan, grid)
    depth3, context3 = check_depth_context(depth, context, plan)
    chosen = select_backend(backend, depth3.device)
    return cells_to_bev(_BEVPoolDepthFunction.apply(depth3, context3, plan, chosen), plan, collapse_z)
