"""CenterPoint's box coder (mmdet3d's ``CenterPointBBoxCoder`` arguments).

A box ``x y z l w h yaw [vx vy]`` (gravity centre, yaw CCW from +x, LiDAR frame) is encoded
at the BEV cell ``(row, col)`` containing its centre (cols along +x, rows along +y, cell
``(i, j)`` covering ``x in [pc_range[0] + j * s_x, ...)`` with ``s = voxel_size *
out_size_factor``) as the regression vector

    ``dx, dy, z, log l, log w, log h, sin yaw, cos yaw[, vx, vy]``

where ``(dx, dy)`` in ``[0, 1)`` is the offset of the centre inside its cell, in cells.
Decoding takes the top-K cells of a heatmap and inverts that encoding. With
``center_vote_kernel = k > 1`` (meant for heads trained with ``dense_reg``, where every cell
near a centre regresses that centre) the decoded centre is the heatmap-weighted mean of the
centres predicted by the k x k cells around the peak that agree with the peak's own
prediction to within ``center_vote_gate`` cells: several noisy estimates instead of one.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ...registry import MODELS

REGRESSION_CHANNELS = {"reg": 2, "height": 1, "dim": 3, "rot": 2, "vel": 2}
"""Channels of each regression head, in the order they are concatenated in a target."""


@MODELS.register_module()
class CenterPointBBoxCoder:
    """Encode boxes to per-cell regression targets and decode head maps back to boxes.

    ``code_size`` is 9 with velocity and 7 without; ``norm_bbox`` says whether dimensions
    are regressed as logs (mmdet3d's ``CenterHead(norm_bbox=True)``).
    """

    def __init__(self, pc_range: Sequence[float], out_size_factor: int,
                 voxel_size: Sequence[float], post_center_range: Sequence[float] | None = None,
                 max_num: int = 100, score_threshold: float | None = None, code_size: int = 9,
                 norm_bbox: bool = True, center_vote_kernel: int = 1,
                 center_vote_gate: float = 1.0) -> None:
        if len(pc_range) < 2 or len(voxel_size) < 2:
            raise ValueError(f"pc_range and voxel_size need x and y values, got "
                             f"{list(pc_range)} and {list(voxel_size)}")
        if code_size not in (7, 9):
            raise ValueError(f"code_size must be 7 (no velocity) or 9, got {code_size}")
        if post_center_range is not None and len(post_center_range) != 6:
            raise ValueError(f"post_center_range must have 6 values, got {list(post_center_range)}")
        if out_size_factor <= 0 or max_num <= 0:
            raise ValueError(f"out_size_factor and max_num must be positive, got "
                             f"{out_size_factor} and {max_num}")
        if center_vote_kernel < 1 or center_vote_kernel % 2 == 0 or center_vote_gate <= 0:
            raise ValueError(f"center_vote_kernel must be a positive odd number and "
                             f"center_vote_gate positive, got {center_vote_kernel} and "
                             f"{center_vote_gate}")
        self.center_vote_kernel = int(center_vote_kernel)
        self.center_vote_gate = float(center_vote_gate)
        self.pc_range = [float(v) for v in pc_range[:2]]
        self.voxel_size = [float(v) for v in voxel_size[:2]]
        self.out_size_factor = int(out_size_factor)
        self.post_center_range = (None if post_center_range is None
                                  else [float(v) for v in post_center_range])
        self.max_num = int(max_num)
        self.score_threshold = score_threshold
        self.code_size = code_size
        self.norm_bbox = norm_bbox

    @property
    def with_velocity(self) -> bool:
        """Whether boxes carry ``vx, vy``."""
        return self.code_size == 9

    @property
    def cell_size(self) -> tuple[float, float]:
        """Metres per feature-map cell along x (columns) and y (rows)."""
        factor = self.out_size_factor
        return (self.voxel_size[0] * factor, self.voxel_size[1] * factor)

    def encode(self, boxes: Tensor) -> tuple[Tensor, Tensor]:
        """``(M, 7|9)`` boxes -> ``cells (M, 2)`` int64 ``(row, col)`` (possibly outside the
        grid: the caller checks) and ``targets (M, 8|10)``; NaN velocities stay NaN."""
        if boxes.dim() != 2 or boxes.shape[1] < self.code_size:
            raise ValueError(f"boxes must be (M, >={self.code_size}), got {tuple(boxes.shape)}")
        size_x, size_y = self.cell_size
        coords = torch.stack([(boxes[:, 0] - self.pc_range[0]) / size_x,
                              (boxes[:, 1] - self.pc_range[1]) / size_y], dim=1)
        cells_xy = torch.floor(coords)
        dims = boxes[:, 3:6].log() if self.norm_bbox else boxes[:, 3:6]
        parts = [coords - cells_xy, boxes[:, 2:3], dims,
                 torch.sin(boxes[:, 6:7]), torch.cos(boxes[:, 6:7])]
        if self.with_velocity:
            parts.append(boxes[:, 7:9])
        cells = cells_xy.flip(1).to(torch.int64)
        return cells, torch.cat(parts, dim=1)

    def decode(self, heat: Tensor, rot_sine: Tensor, rot_cosine: Tensor, hei: Tensor,
               dim: Tensor, vel: Tensor | None = None, reg: Tensor | None = None,
               task_id: int = -1) -> list[dict[str, Tensor]]:
        """Top-``max_num`` boxes per sample from head maps ``(B, C, H, W)``.

        ``heat`` holds probabilities (after sigmoid); ``dim`` is as regressed (log when
        ``norm_bbox``). Returns one ``dict(bboxes (n, code_size), scores (n,), labels (n,))``
        per sample, labels indexing the heatmap's channels, filtered by ``score_threshold``
        and ``post_center_range``.
        """
        maps = {"rot_sine": (rot_sine, 1), "rot_cosine": (rot_cosine, 1), "hei": (hei, 1),
                "dim": (dim, 3), "vel": (vel, 2), "reg": (reg, 2)}
        if heat.dim() != 4:
            raise ValueError(f"task {task_id}: heat must be (B, C, H, W), got {tuple(heat.shape)}")
        batch, classes, height, width = heat.shape
        for name, (value, channels) in maps.items():
            expected = (batch, channels, height, width)
            if value is not None and tuple(value.shape) != expected:
                raise ValueError(f"task {task_id}: {name} must be {expected}, got "
                                 f"{tuple(value.shape)}")
        if self.with_velocity and vel is None:
            raise ValueError(f"task {task_id}: code_size 9 needs a velocity map")
        count = min(self.max_num, classes * height * width)
        scores, flat = torch.topk(heat.reshape(batch, -1), count)
        labels = flat // (height * width)
        pixel = flat % (height * width)
        rows, cols = (pixel // width).to(heat.dtype), (pixel % width).to(heat.dtype)

        def gather(value: Tensor) -> Tensor:  # (B, ch, H, W) -> (B, K, ch) at the top cells
            flat_map = value.reshape(batch, value.shape[1], -1)
            return torch.gather(flat_map, 2, pixel[:, None].expand(-1, value.shape[1], -1)
                                ).transpose(1, 2)

        offset = gather(reg) if reg is not None else heat.new_full((batch, count, 2), 0.5)
        if reg is not None and self.center_vote_kernel > 1:
            offset = self._voted_offsets(heat, reg, labels, pixel, offset)
        size_x, size_y = self.cell_size
        xs = (cols[..., None] + offset[..., :1]) * size_x + self.pc_range[0]
        ys = (rows[..., None] + offset[..., 1:]) * size_y + self.pc_range[1]
        dims = gather(dim).exp() if self.norm_bbox else gather(dim)
        yaw = torch.atan2(gather(rot_sine), gather(rot_cosine))
        parts = [xs, ys, gather(hei), dims, yaw]
        if self.with_velocity:
            parts.append(gather(vel))
        boxes = torch.cat(parts, dim=2)
        keep = torch.ones_like(scores, dtype=torch.bool)
        if self.score_threshold is not None:
            keep &= scores > self.score_threshold
        if self.post_center_range is not None:
            limits = boxes.new_tensor(self.post_center_range)
            keep &= ((boxes[..., :3] >= limits[:3]) & (boxes[..., :3] <= limits[3:])).all(dim=2)
        return [dict(bboxes=boxes[i][keep[i]], scores=scores[i][keep[i]],
                     labels=labels[i][keep[i]]) for i in range(batch)]

    def _voted_offsets(self, heat: Tensor, reg: Tensor, labels: Tensor, pixel: Tensor,
                       offset: Tensor) -> Tensor:
        """``(B, K, 2)`` offsets of the top cells replaced by the heat-weighted mean of the
        centres their k x k neighbours predict, in cells relative to each top cell; only
        neighbours whose prediction lies within ``center_vote_gate`` cells of the top cell's
        own prediction vote, so a neighbouring object does not pull the centre."""
        batch, _, height, width = heat.shape
        kernel = self.center_vote_kernel
        half = kernel // 2
        count = pixel.shape[1]
        padded_heat = torch.nn.functional.pad(heat, (half, half, half, half))
        padded_reg = torch.nn.functional.pad(reg, (half, half, half, half))
        rows, cols = pixel // width, pixel % width
        steps = torch.arange(-half, half + 1, device=heat.device)
        d_rows, d_cols = torch.meshgrid(steps, steps, indexing="ij")
        d_rows, d_cols = d_rows.reshape(-1), d_cols.reshape(-1)  # (k*k,)
        nb_rows = rows[..., None] + d_rows + half  # (B, K, k*k) in the padded map
        nb_cols = cols[..., None] + d_cols + half
        nb_flat = (nb_rows * (width + 2 * half) + nb_cols).reshape(batch, -1)
        flat_reg = padded_reg.reshape(batch, 2, -1)
        nb_reg = torch.gather(flat_reg, 2, nb_flat[:, None].expand(-1, 2, -1))
        nb_reg = nb_reg.reshape(batch, 2, count, -1).permute(0, 2, 3, 1)  # (B, K, k*k, 2)
        # each top cell's own class channel at its neighbours: one flat (class, cell) index
        padded_cells = padded_heat.shape[2] * padded_heat.shape[3]
        class_flat = labels[:, :, None] * padded_cells + nb_flat.reshape(batch, count, -1)
        nb_heat = torch.gather(padded_heat.reshape(batch, -1), 1, class_flat.reshape(batch, -1)
                               ).reshape(batch, count, -1)  # (B, K, k*k)
        shift = torch.stack([d_cols, d_rows], dim=1).to(reg.dtype)  # (k*k, 2) as (x, y)
        nb_centre = nb_reg + shift  # each neighbour's predicted centre, cells from the top cell
        agree = (nb_centre - offset[:, :, None]).norm(dim=3) <= self.center_vote_gate
        weight = nb_heat * agree.to(nb_heat.dtype)
        total = weight.sum(dim=2, keepdim=True)
        voted = (weight[..., None] * nb_centre).sum(dim=2) / total.clamp_min(1e-12)
        # The top cell always agrees with itself, so the weight is positive unless its heat
        # is exactly 0; keep its own offset then.
        return torch.where(total > 0, voted, offset)
