"""CenterNet / CenterPoint heatmap helpers: the gaussian radius of a box and its splat.

:func:`gaussian_radius` keeps the formula mmdet3d (and CornerNet before it) uses, including
its well-known quirk (two of the three roots are not divided by ``2a``), so heatmaps match
models trained with mmdet3d.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def gaussian_radius(det_size: tuple[Tensor | float, Tensor | float],
                    min_overlap: float = 0.5) -> Tensor:
    """Radius (in cells) within which a shifted box of ``det_size = (height, width)`` cells
    still has IoU >= ``min_overlap`` with the original; elementwise over tensors."""
    height, width = (torch.as_tensor(v, dtype=torch.float64) for v in det_size)
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + torch.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + torch.sqrt(b2 ** 2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + torch.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return torch.minimum(torch.minimum(r1, r2), r3)


def gaussian_2d(radius: int) -> np.ndarray:
    """``(2r+1, 2r+1)`` unnormalized gaussian with peak 1 and sigma ``(2r+1) / 6``."""
    diameter = 2 * radius + 1
    sigma = diameter / 6
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-(offsets[None, :] ** 2 + offsets[:, None] ** 2) / (2 * sigma * sigma))
    kernel[kernel < np.finfo(kernel.dtype).eps * kernel.max()] = 0
    return kernel


def draw_heatmap_gaussian(heatmap: Tensor, center: tuple[int, int], radius: int,
                          k: float = 1.0) -> Tensor:
    """Splat a gaussian of ``radius`` cells at ``center = (col, row)`` into the ``(H, W)``
    ``heatmap`` in place (elementwise max, clipped at the borders); returns ``heatmap``."""
    if heatmap.dim() != 2:
        raise ValueError(f"heatmap must be (H, W), got shape {tuple(heatmap.shape)}")
    radius = int(radius)
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    col, row = int(center[0]), int(center[1])
    height, width = heatmap.shape
    if not (0 <= col < width and 0 <= row < height):
        raise ValueError(f"centre (col={col}, row={row}) outside the {height}x{width} heatmap")
    left, right = min(col, radius), min(width - col, radius + 1)
    top, bottom = min(row, radius), min(height - row, radius + 1)
    patch = heatmap[row - top:row + bottom, col - left:col + right]
    kernel = gaussian_2d(radius)[radius - top:radius + bottom, radius - left:radius + right]
    kernel_t = torch.from_numpy(kernel).to(device=heatmap.device, dtype=heatmap.dtype)
    torch.maximum(patch, kernel_t * k, out=patch)
    return heatmap
