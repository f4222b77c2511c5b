"""Flip test-time augmentation for CenterPoint-style BEV maps (CenterPoint's double flip).

The cloud is run four times, as is and mirrored in x, in y and in both; each run's head maps
are mirrored back into the original frame, with the regression channels that change sign or
reference under a mirror fixed up, and the four are averaged (heatmaps as probabilities).
Mirroring in x maps ``x -> -x``, so the BEV grid must be symmetric about the sensor
(``pc_range[0] = -pc_range[3]``, same in y), which :func:`check_symmetric_grid` enforces.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import Tensor

FLIPS: tuple[tuple[bool, bool], ...] = ((False, False), (True, False), (False, True), (True, True))
"""``(flip_x, flip_y)`` of the four runs; the first is the plain cloud."""

_EPS = 1e-6


def flip_points(points: Tensor, flip_x: bool, flip_y: bool) -> Tensor:
    """A copy of ``(N, C)`` points with x and / or y negated (other features untouched)."""
    flipped = points.clone()
    if flip_x:
        flipped[:, 0] = -flipped[:, 0]
    if flip_y:
        flipped[:, 1] = -flipped[:, 1]
    return flipped


def check_symmetric_grid(pc_range: Sequence[float], cell_size: Sequence[float],
                         height: int, width: int) -> None:
    """Raise unless the ``height x width`` map of ``cell_size`` cells starting at
    ``pc_range[:2]`` is centred on the sensor, as mirroring needs."""
    for axis, cells in (("x", width), ("y", height)):
        index = 0 if axis == "x" else 1
        start, size = float(pc_range[index]), float(cell_size[index])
        end = start + cells * size
        if abs(start + end) > 1e-4 * max(1.0, abs(start)):
            raise ValueError(f"flip test-time augmentation needs a BEV grid symmetric about the "
                             f"sensor; along {axis} the map covers [{start}, {end})")


def check_symmetric_range(point_cloud_range: Sequence[float]) -> None:
    """Raise unless the voxelized ``(x0, y0, z0, x1, y1, z1)`` range is centred on the sensor in
    x and y: checked before the four runs, so a bad config fails without wasting them."""
    for axis, index in (("x", 0), ("y", 1)):
        start, end = float(point_cloud_range[index]), float(point_cloud_range[index + 3])
        if abs(start + end) > 1e-4 * max(1.0, abs(start)):
            raise ValueError(f"flip test-time augmentation needs a point_cloud_range symmetric "
                             f"about the sensor; along {axis} it is [{start}, {end})")


def unflip_center_maps(pred: Mapping[str, Tensor], flip_x: bool,
                       flip_y: bool) -> dict[str, Tensor]:
    """Head maps ``(B, C, H, W)`` of a mirrored cloud expressed in the original frame.

    Columns run along +x and rows along +y. Under ``x -> -x`` the in-cell offset ``dx``
    becomes ``1 - dx``, yaw becomes ``pi - yaw`` (cosine flips) and ``vx`` flips; under
    ``y -> -y``, ``dy -> 1 - dy``, yaw -> ``-yaw`` (sine flips) and ``vy`` flips.
    """
    dims = [d for d, flag in ((3, flip_x), (2, flip_y)) if flag]
    out = {key: (value.flip(dims) if dims else value) for key, value in pred.items()}
    # channels negated by each mirror: rot is (sin, cos), vel is (vx, vy)
    negated = {"rot": (flip_y, flip_x), "vel": (flip_x, flip_y)}
    for key, flags in negated.items():
        if key in out and any(flags):
            signs = out[key].new_tensor([-1.0 if flag else 1.0 for flag in flags])
            out[key] = out[key] * signs.view(1, 2, 1, 1)
    if "reg" in out and (flip_x or flip_y):  # in-cell offsets (dx, dy) -> 1 - d along a mirror
        mirrored = out["reg"].new_tensor([float(flip_x), float(flip_y)]).view(1, 2, 1, 1)
        out["reg"] = mirrored + (1.0 - 2.0 * mirrored) * out["reg"]
    return out


def merge_center_maps(runs: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """The mean of several runs' maps; heatmaps are averaged as probabilities and returned
    as logits, since the head's decoder applies the sigmoid."""
    if not runs:
        raise ValueError("merge_center_maps needs at least one run")
    keys = set(runs[0])
    if any(set(run) != keys for run in runs):
        raise ValueError(f"merge_center_maps: runs have different heads: "
                         f"{[sorted(run) for run in runs]}")
    merged = {}
    for key in runs[0]:
        if key == "heatmap":
            prob = torch.stack([run[key].sigmoid() for run in runs]).mean(dim=0)
            prob = prob.clamp(_EPS, 1.0 - _EPS)
            merged[key] = torch.log(prob) - torch.log1p(-prob)
        else:
            merged[key] = torch.stack([run[key] for run in runs]).mean(dim=0)
    return merged
