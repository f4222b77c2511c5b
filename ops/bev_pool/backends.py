"""The implementations behind :func:`~.api.bev_pool` and :func:`~.depth.bev_pool_depth`.

Each :class:`PoolBackend` has four functions (the plain op's forward and backward, the fused
depth x context op's forward and backward) over a :class:`~.plan.BEVPoolPlan`:

* ``native``: the C++/OpenMP CPU kernels of ``ops/csrc/bev_pool.cpp``, called as
  ``torch.ops.perception_ops.bev_pool_*`` (registered when ``perception_ops._C`` loads);
* ``triton``: the Triton GPU kernels (:mod:`.triton_kernels`, :mod:`.triton_depth`);
* ``torch``: device-agnostic torch ops (``index_add_`` of the sorted points, gather
  backwards), the fallback when the native op or triton is missing; it materializes the
  gathered rows, so it needs more memory.

Tensors reach them validated and contiguous: features ``(N, C)``, depth ``(G, D, HW)``,
context ``(G, HW, C)``, gradients ``(rows, C)``.
"""
from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Mapping

import torch

from . import triton_depth, triton_kernels
from .plan import BEVPoolPlan

Tensor = torch.Tensor


@functools.lru_cache(maxsize=None)
def native_available() -> bool:
    """True when the ``torch.ops.perception_ops.bev_pool_*`` ops are registered
    (``perception_ops._C`` built with ``ops/csrc/bev_pool.cpp``)."""
    from ..native import native_module

    if native_module() is None:
        return False
    try:
        for name in ("bev_pool_forward", "bev_pool_backward", "bev_pool_depth_forward",
                     "bev_pool_depth_backward"):
            getattr(torch.ops.perception_ops, name)
    except (AttributeError, RuntimeError):
        warnings.warn("perception_ops._C lacks the bev_pool ops (built before ops/csrc/bev_pool.cpp "
                      "changed?): rebuild with `python setup.py build_ext --inplace`; using the torch "
                      "path", RuntimeWarning, stacklevel=2)
        return False
    return True


def _native_forward(features: Tensor, plan: BEVPoolPlan) -> Tensor:
    return torch.ops.perception_ops.bev_pool_forward(features, plan.order, plan.starts, plan.lengths,
                                                     plan.cells, plan.num_rows)


def _native_backward(grad: Tensor, plan: BEVPoolPlan) -> Tensor:
    return torch.ops.perception_ops.bev_pool_backward(grad, plan.ranks)


def _native_depth_forward(depth: Tensor, context: Tensor, plan: BEVPoolPlan) -> Tensor:
    return torch.ops.perception_ops.bev_pool_depth_forward(depth, context, plan.order, plan.starts,
                                                           plan.lengths, plan.cells, plan.num_rows)


def _native_depth_backward(grad: Tensor, depth: Tensor, context: Tensor, plan: BEVPoolPlan,
                           need_depth: bool, need_context: bool) -> tuple[Tensor | None, Tensor | None]:
    gd, gc = torch.ops.perception_ops.bev_pool_depth_backward(grad, depth, context, plan.ranks,
                                                              need_depth, need_context)
    return (gd if need_depth else None), (gc if need_context else None)


def _point_rows(plan: BEVPoolPlan, depth: Tensor) -> Tensor:
    """Context row of every point: point ``(g * D + d) * HW + s`` reads row ``g * HW + s``."""
    points = torch.arange(plan.num_points, device=depth.device)
    bins, hw = depth.shape[1], depth.shape[2]
    return (points // (bins * hw)) * hw + points % hw


def _torch_forward(features: Tensor, plan: BEVPoolPlan) -> Tensor:
    rows = torch.repeat_interleave(plan.cells, plan.lengths, output_size=plan.num_kept)
    out = features.new_zeros((plan.num_rows, features.shape[1]))
    return out.index_add_(0, rows, features.index_select(0, plan.order))


def _torch_backward(grad: Tensor, plan: BEVPoolPlan) -> Tensor:
    padded = torch.cat([grad, grad.new_zeros((1, grad.shape[1]))])  # row -1: the zero row
    return padded.index_select(0, plan.ranks.where(plan.ranks >= 0, plan.num_rows))


def _torch_depth_forward(depth: Tensor, context: Tensor, plan: BEVPoolPlan) -> Tensor:
    rows = _point_rows(plan, depth).index_select(0, plan.order)
    weights = depth.reshape(-1).index_select(0, plan.order)
    features = context.reshape(-1, context.shape[2]).index_select(0, rows) * weights[:, None]
    cells = torch.repeat_interleave(plan.cells, plan.lengths, output_size=plan.num_kept)
    return context.new_zeros((plan.num_rows, context.shape[2])).index_add_(0, cells, features)


def _torch_depth_backward(grad: Tensor, depth: Tensor, context: Tensor, plan: BEVPoolPlan,
                          need_depth: bool, need_context: bool) -> tuple[Tensor | None, Tensor | None]:
    per_point = _torch_backward(grad, plan).view(*depth.shape, -1)  # (G, D, HW, C)
    grad_depth = (per_point * context[:, None]).sum(-1) if need_depth else None
    grad_context = (per_point * depth[..., None]).sum(1) if need_context else None
    return grad_depth, grad_context


def _triton_forward(features: Tensor, plan: BEVPoolPlan) -> Tensor:
    return triton_kernels.interval_sum_triton(features, plan.order, plan.starts, plan.lengths,
                                              plan.cells, plan.num_rows)


def _triton_backward(grad: Tensor, plan: BEVPoolPlan) -> Tensor:
    return triton_kernels.gather_cells_triton(grad, plan.ranks)


def _triton_depth_forward(depth: Tensor, context: Tensor, plan: BEVPoolPlan) -> Tensor:
    return triton_depth.depth_interval_sum_triton(depth, context, plan.order, plan.starts, plan.lengths,
                                                  plan.cells, plan.num_rows)


def _triton_depth_backward(grad: Tensor, depth: Tensor, context: Tensor, plan: BEVPoolPlan,
                           need_depth: bool, need_context: bool) -> tuple[Tensor | None, Tensor | None]:
    return (triton_depth.depth_grad_triton(grad, context, plan.ranks, depth.shape) if need_depth else None,
            triton_depth.context_grad_triton(grad, depth, plan.ranks, context.shape) if need_context else None)


@dataclass(frozen=True)
class PoolBackend:
    """One implementation of both ops, the devices it runs on and whether it is usable."""

    name: str
    forward: Callable[[Tensor, BEVPoolPlan], Tensor]
    backward: Callable[[Tensor, BEVPoolPlan], Tensor]
    depth_forward: Callable[[Tensor, Tensor, BEVPoolPlan], Tensor]
    depth_backward: Callable[..., tuple[Tensor | None, Tensor | None]]
    devices: tuple[str, ...]
    available: Callable[[], bool]


BACKENDS: Mapping[str, PoolBackend] = MappingProxyType({
    "native": PoolBackend("native", _native_forward, _native_backward, _native_depth_forward,
                          _native_depth_backward, ("cpu",), lambda: native_available()),
    "triton": PoolBackend("triton", _triton_forward, _triton_backward, _triton_depth_forward,
                          _triton_depth_backward, ("cuda", "cpu") if triton_kernels.INTERPRETED else ("cuda",),
                          lambda: triton_kernels.TRITON_AVAILABLE),
    "torch": PoolBackend("torch", _torch_forward, _torch_backward, _torch_depth_forward, _torch_depth_backward,
                         ("cpu", "cuda"), lambda: True),
})
"""Backend name -> implementation (read-only)."""

AUTO_ORDER: Mapping[str, tuple[str, ...]] = MappingProxyType({"cpu": ("native", "torch"),
                                                               "cuda": ("triton", "torch")})
"""Preference per device of ``backend="auto"``."""


def select_backend(name: str, device: torch.device) -> PoolBackend:
    """The backend ``name`` (or the first usable one of :data:`AUTO_ORDER` for ``"auto"``),
    raising ``ValueError`` when it is unknown, unusable or does not run on ``device``."""
    if name == "auto":
        if device.type not in AUTO_ORDER:
            raise ValueError(f"bev_pool supports {sorted(AUTO_ORDER)} tensors, got device {device}")
        candidates = AUTO_ORDER[device.type]
        chosen = next(BACKENDS[c] for c in candidates if BACKENDS[c].available())
        if chosen.name != candidates[0]:
            warnings.warn(f"bev_pool: the {candidates[0]} backend is unavailable on {device.type}; "
                          "using the slower torch path", RuntimeWarning, stacklevel=3)
        return chosen
    if name not in BACKENDS:
        raise ValueError(f"bev_pool backend must be 'auto' or one of {sorted(BACKENDS)}, got {name!r}")
    backend = BACKENDS[name]
    if device.type not in backend.devices:
        raise ValueError(f"bev_pool backend {name!r} runs on {backend.devices} tensors, got device {device}")
    if not backend.available():
        raise ValueError(f"bev_pool backend {name!r} is not available here (native: build the extension; "
                         "triton: pip install triton)")
    return backend
