"""Explicit backward for every dataflow (one ``torch.autograd.Function``).

For ``Y = conv(X, W)`` along a kernel map with pairs (i, o) per offset j:

* input gradient ``dX = conv^T(dY, W)``: the same pairs with inputs and outputs swapped
  (``MapView.transposed``, whose neighbour map is ``in_out_map``) and the transposed weight
  ``W_j^T`` (KRSC weight permuted to (C_in, kD, kH, kW, C_out)), run through any dataflow
  (``dgrad`` / ``dgrad_params``);
* weight gradient ``dW_j = X[ins_j]^T @ dY[outs_j]``: the native kernel (``wgrad_params``
  ``native=True``, the default, where it can run) or grouped like the gather-GEMM-scatter
  forward (``epsilon``, ``mm_thresh``), the submanifold centre as one mm.

The backward itself is not differentiable (``once_differentiable``).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from .native import weight_gradient
from .views import MapView

Kernel = Callable[..., Tensor]


def transposed_weight(weight: Tensor) -> Tensor:
    """KRSC weight of the transposed conv: (C_in, kD, kH, kW, C_out), offset j -> W_j^T."""
    return weight.permute(4, 1, 2, 3, 0)


class SparseMatmulFunction(torch.autograd.Function):
    """Forward through one dataflow kernel; backward as in the module doc."""

    @staticmethod
    def forward(ctx: FunctionCtx, features: Tensor, weight: Tensor, view: MapView,
                forward: Kernel, params: Mapping[str, Any], dgrad: Kernel,
                dgrad_params: Mapping[str, Any], wgrad_params: Mapping[str, Any]) -> Tensor:
        ctx.save_for_backward(features, weight)
        ctx.view, ctx.dgrad, ctx.dgrad_params, ctx.wgrad_params = (
            view, dgrad, dgrad_params, wgrad_params)
        return forward(features, weight, view, **params)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        features, weight = ctx.saved_tensors
        view: MapView = ctx.view
        grad_out = grad_out.contiguous()
        grad_in = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_in = ctx.dgrad(grad_out, transposed_weight(weight), view.transposed(),
                                **ctx.dgrad_params)
        if ctx.needs_input_grad[1]:
            grad_w = weight_gradient(features, grad_out, view, weight.shape,
                                     **ctx.wgrad_params)
        return grad_in, grad_w, None, None, None, None, None, None
