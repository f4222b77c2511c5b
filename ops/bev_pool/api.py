"""``bev_pool``: sum camera frustum features into BEV cells with the interval method.

    plan = BEVPoolPlan.build(geometry, grid)          # (B, Ncam, D, H, W, 3) -> ranks/sort/intervals
    bev = bev_pool(features, plan)                    # (N, C) -> (B, C, Z, Y, X)
    bev = bev_pool(features, plan, collapse_z=True)   # (B, Z*C, Y, X), channel z * C + c

The plan is usually taken from a :class:`~.cache.BEVPoolPlanCache` so it is rebuilt only
when the calibration changes.  Backends (:data:`.backends.BACKENDS`: ``native`` C++/OpenMP,
``triton``, ``torch``) are picked by device with ``backend="auto"``.  Every backend computes
the same sums (the order of additions may differ, so float results agree to rounding); the
backward of every backend is the gather
``grad_features[i] = grad_bev[cell of point i]`` (zero for dropped points).  The output is a
channels-last view of the pooled ``(rows, C)`` tensor (see :mod:`.plan`); call
``.contiguous()`` if a consumer needs the default layout.
"""
from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from ..voxelize.grid import VoxelGrid
from .backends import PoolBackend, select_backend
from .plan import BEVPoolPlan

SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


class _BEVPoolFunction(torch.autograd.Function):
    """Interval-sum forward and gather backward of one backend."""

    @staticmethod
    def forward(ctx, features: torch.Tensor, plan: BEVPoolPlan,  # type: ignore[override]
                backend: PoolBackend) -> torch.Tensor:
        ctx.plan, ctx.backend = plan, backend
        return backend.forward(features.contiguous(), plan)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return ctx.backend.backward(grad.contiguous(), ctx.plan), None, None


def check_floating(tensor: object, name: str, plan: BEVPoolPlan) -> torch.Tensor:
    """Raise ``ValueError`` unless ``tensor`` is a float16/bfloat16/float32/float64 tensor on
    the plan's device."""
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"{name} must be float16/bfloat16/float32/float64, got {tensor.dtype}")
    if tensor.device != plan.device:
        raise ValueError(f"{name} is on {tensor.device} but the plan's indices are on {plan.device}; "
                         "move one of them (plan.to(device))")
    return tensor


def as_plan(plan: object, grid: VoxelGrid | None) -> BEVPoolPlan:
    """``plan`` itself, or the plan of a geometry tensor on ``grid`` (built now)."""
    if isinstance(plan, torch.Tensor):
        if grid is None:
            raise ValueError("bev_pool: pass grid= when giving the geometry instead of a BEVPoolPlan")
        return BEVPoolPlan.build(plan, grid)
    if not isinstance(plan, BEVPoolPlan):
        raise ValueError(f"plan must be a BEVPoolPlan or a geometry tensor, got {type(plan).__name__}")
    return plan


def check_features(features: object, plan: BEVPoolPlan) -> torch.Tensor:
    """``features`` as ``(N, C)``, raising ``ValueError`` on a type, shape, dtype or device
    mismatch with ``plan``.  ``(B, Ncam, D, H, W, C)`` must match the plan's point shape."""
    features = check_floating(features, "features", plan)
    if features.dim() == 2:
        if features.shape[0] != plan.num_points:
            raise ValueError(f"features have {features.shape[0]} rows but the geometry has "
                             f"{plan.num_points} points {plan.point_shape}")
        return features
    if features.dim() < 2 or tuple(features.shape[:-1]) != plan.point_shape:
        raise ValueError(f"features must be (N, C) or {plan.point_shape + ('C',)} to match the geometry, "
                         f"got {tuple(features.shape)}")
    return features.reshape(plan.num_points, features.shape[-1])


def bev_pool(features: torch.Tensor, plan: BEVPoolPlan | torch.Tensor, grid: VoxelGrid | None = None, *,
             collapse_z: bool = False, backend: str = "auto") -> torch.Tensor:
    """Sum ``features`` (``(N, C)`` or ``(B, Ncam, D, H, W, C)``) into the BEV cells of ``plan``.

    ``plan`` may also be the geometry ``(B, ..., 3)`` itself (then ``grid`` is required and the
    plan is built on the fly; use a plan or a cache to reuse it).  Returns ``(B, C, Z, Y, X)``,
    or ``(B, Z*C, Y, X)`` with ``collapse_z`` (channel ``z * C + c``); Y rows along +y, X
    columns along +x.  Differentiable with respect to ``features``.
    """
    plan = as_plan(plan, grid)
    flat = check_features(features, plan)
    chosen = select_backend(backend, flat.device)
    pooled = _BEVPoolFunction.apply(flat, plan, chosen)
    return cells_to_bev(pooled, plan, collapse_z)


def cells_to_bev(pooled: torch.Tensor, plan: BEVPoolPlan, collapse_z: bool = False) -> torch.Tensor:
    """View the pooled ``(rows, C)`` as ``(B, C, Z, Y, X)`` or, collapsed, ``(B, Z*C, Y, X)``."""
    batch, nz, ny, nx = plan.output_shape
    channels = pooled.shape[1]
    if collapse_z:
        return pooled.view(batch, ny, nx, nz * channels).permute(0, 3, 1, 2)
    return pooled.view(batch, ny, nx, nz, channels).permute(0, 4, 3, 1, 2)
