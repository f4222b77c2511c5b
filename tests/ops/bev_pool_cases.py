"""Shared inputs of the BEV pooling tests: a small grid, named edge cases, a gradcheck case."""
from __future__ import annotations

import math
import zlib

import pytest
import torch

from perception_ops.bev_pool import grid_from_bounds, native_available

GRID = grid_from_bounds([-4, 4, 0.5], [-3, 3, 0.5], [-2, 2, 1.0])  # X 16, Y 12, Z 4
SMALL_GRID = grid_from_bounds([-2, 2, 1.0], [-1.5, 1.5, 1.0], [-2, 2, 2.0])  # X 4, Y 3, Z 2: gradcheck
BACKENDS = ["native", "torch"]


def needs_native(backend: str) -> None:
    """Skip a native-backend test when the extension was not built."""
    if backend == "native" and not native_available():
        pytest.skip("native bev_pool op not built (python setup.py build_ext --inplace)")


def make_case(name: str, dtype: torch.dtype = torch.float64, channels: int = 5
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """(geometry (B, Ncam, D, H, W, 3), features (N, C)) of a named edge case."""
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    shape = {"zero_points": (1, 2, 0, 3, 4), "batch": (3, 2, 4, 3, 5)}.get(name, (2, 2, 4, 3, 5))
    geometry = torch.rand(*shape, 3, generator=g, dtype=torch.float64) * 12 - 6  # ~1/4 inside
    if name == "one_cell":
        geometry = torch.full_like(geometry, 0.1) + torch.rand(geometry.shape, generator=g) * 0.3
    elif name == "all_outside":
        geometry[..., 0] += 100.0
    elif name == "boundaries":  # points exactly on cell edges, NaN and Inf
        geometry = torch.round(geometry * 2) / 2
        geometry.view(-1, 3)[0, 0], geometry.view(-1, 3)[1, 1] = float("nan"), float("inf")
    n = math.prod(geometry.shape[:-1])
    return geometry.to(dtype), torch.randn(n, channels, generator=g, dtype=torch.float64).to(dtype)


CASES = ["random", "one_cell", "all_outside", "zero_points", "batch", "boundaries"]


def gradcheck_case() -> tuple[torch.Tensor, torch.Tensor]:
    """60 points (2 samples), about half inside SMALL_GRID, and (60, 3) float64 features."""
    geometry, features = make_case("random", channels=3)
    geometry = geometry[:, :1, :2] / 2.5
    return geometry, features[: math.prod(geometry.shape[:-1])].clone().requires_grad_()




def depth_context(geometry: torch.Tensor, channels: int = 4, dtype: torch.dtype = torch.float64
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Random depth ``(B, Ncam, D, H, W)`` (a softmax over D, as LSS) and context
    ``(B, Ncam, H, W, C)`` for ``geometry``."""
    g = torch.Generator().manual_seed(7)
    batch, cams, bins, height, width = geometry.shape[:5]
    depth = torch.randn(batch, cams, bins, height, width, generator=g, dtype=torch.float64).softmax(2)
    context = torch.randn(batch, cams, height, width, channels, generator=g, dtype=torch.float64)
    return depth.to(dtype), context.to(dtype)


def lifted(depth: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """The LSS outer product ``(N, C)`` that the fused op never materializes."""
    return (depth[..., None] * context[:, :, None]).reshape(-1, context.shape[-1])
