"""Training targets of :class:`~.centerpoint_head.CenterHead` and the class bookkeeping
between its tasks and a data sample's ``class_names``.

Per task and sample: a gaussian heatmap ``(C_task, H, W)`` (peak 1 at each box's centre
cell, radius from :func:`gaussian_radius` with ``train_cfg.gaussian_overlap`` and at least
``train_cfg.min_radius``), and for up to ``max_objs`` boxes the regression target of
:meth:`CenterPointBBoxCoder.encode`, the flat index ``row * W + col`` of the centre cell and a
mask (0 for padding, boxes whose centre is outside the grid, and degenerate boxes).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from ..task_modules import CenterPointBBoxCoder, draw_heatmap_gaussian, gaussian_radius


@dataclass(frozen=True)
class TaskTargets:
    """Targets of one task for a batch: ``heatmap (B, C, H, W)``, ``anno_box (B, K, code)``
    (NaN where a velocity is unknown), ``ind (B, K)`` int64 and ``mask (B, K)`` bool."""

    heatmap: Tensor
    anno_box: Tensor
    ind: Tensor
    mask: Tensor


class TaskClassMap:
    """Maps between the head's tasks (``task_class_names[t][c]``) and the labels of a data
    sample, which index its ``class_names``."""

    def __init__(self, task_class_names: Sequence[Sequence[str]], class_names: Sequence[str],
                 device: torch.device) -> None:
        class_names = list(class_names)
        self.to_sample: list[Tensor] = []
        self.task_of = torch.full((len(class_names),), -1, dtype=torch.int64, device=device)
        self.class_in_task = torch.full_like(self.task_of, -1)
        for task, names in enumerate(task_class_names):
            indices = []
            for local, name in enumerate(names):
                if name not in class_names:
                    raise ValueError(f"CenterHead task {task} class {name!r} is not in the data "
                                     f"sample's class_names {tuple(class_names)}")
                indices.append(class_names.index(name))
                self.task_of[indices[-1]] = task
                self.class_in_task[indices[-1]] = local
            self.to_sample.append(torch.tensor(indices, dtype=torch.int64, device=device))


def feature_size_from_cfg(train_cfg: Mapping[str, Any]) -> tuple[int, int]:
    """``(H, W)`` of the head's feature map: ``grid_size[:2] // out_size_factor`` (mmdet3d),
    with ``grid_size`` derived from ``point_cloud_range`` / ``voxel_size`` when absent."""
    needed = ["out_size_factor"] + ([] if "grid_size" in train_cfg
                                    else ["point_cloud_range", "voxel_size"])
    missing = [key for key in needed if train_cfg.get(key) is None]
    if missing:
        raise ValueError(f"CenterHead train_cfg lacks {missing}: it needs out_size_factor and "
                         f"grid_size (or point_cloud_range and voxel_size)")
    factor = int(train_cfg["out_size_factor"])
    if "grid_size" in train_cfg:
        grid = [int(v) for v in train_cfg["grid_size"][:2]]
    else:
        pc_range, voxel = train_cfg["point_cloud_range"], train_cfg["voxel_size"]
        grid = [round((pc_range[i + 3] - pc_range[i]) / voxel[i]) for i in range(2)]
    return grid[1] // factor, grid[0] // factor


def check_geometry(cfg: Mapping[str, Any], coder: CenterPointBBoxCoder, name: str) -> None:
    """Raise if ``cfg`` (train_cfg / test_cfg) disagrees with the coder's BEV geometry."""
    pairs = {"out_size_factor": ([cfg.get("out_size_factor")], [coder.out_size_factor]),
             "voxel_size": (cfg.get("voxel_size"), coder.voxel_size),
             "point_cloud_range": (cfg.get("point_cloud_range"), coder.pc_range),
             "pc_range": (cfg.get("pc_range"), coder.pc_range)}
    for key, (value, expected) in pairs.items():
        if value is None or value[0] is None:
            continue
        mine = [float(v) for v in list(value)[:len(expected)]]
        if any(abs(a - b) > 1e-6 for a, b in zip(mine, expected)):
            raise ValueError(f"CenterHead {name}.{key}={list(value)} disagrees with bbox_coder "
                             f"({expected}); the BEV geometry must be the same")
    if name == "train_cfg" and "grid_size" in cfg and "point_cloud_range" in cfg:
        pc_range, voxel = cfg["point_cloud_range"], cfg["voxel_size"]
        derived = [round((pc_range[i + 3] - pc_range[i]) / voxel[i]) for i in range(2)]
        if [int(v) for v in cfg["grid_size"][:2]] != derived:
            raise ValueError(f"CenterHead train_cfg.grid_size={list(cfg['grid_size'])} does not "
                             f"match point_cloud_range / voxel_size ({derived})")


def check_gt(boxes: Tensor, labels: Tensor, code_size: int, sample: str) -> None:
    """Clear errors for malformed ground truth of one data sample."""
    if boxes.dim() != 2 or boxes.shape[1] < code_size:
        raise ValueError(f"data sample {sample}: gt_boxes must be (M, >={code_size}), got "
                         f"{tuple(boxes.shape)}")
    if labels.shape != (boxes.shape[0],):
        raise ValueError(f"data sample {sample}: gt_labels must be ({boxes.shape[0]},), got "
                         f"{tuple(labels.shape)}")
    if not torch.isfinite(boxes[:, :7]).all():
        raise ValueError(f"data sample {sample}: gt_boxes has non-finite x/y/z/l/w/h/yaw")


def neighbourhood(dense_reg: int) -> list[tuple[int, int]]:
    """Cell offsets ``(d_row, d_col)`` whose regression is supervised per object, centre first:
    ``dense_reg`` = 1 (the centre cell, CenterPoint) or k * k for odd k (the k x k block)."""
    side = round(dense_reg ** 0.5)
    if dense_reg < 1 or side * side != dense_reg or side % 2 == 0:
        raise ValueError(f"CenterHead train_cfg.dense_reg must be 1, 9, 25, ... (an odd square), got {dense_reg}")
    half = side // 2
    offsets = [(dr, dc) for dr in range(-half, half + 1) for dc in range(-half, half + 1)]
    return sorted(offsets, key=lambda d: (abs(d[0]) + abs(d[1]), d))


def sample_targets(coder: CenterPointBBoxCoder, boxes: Tensor, labels: Tensor,
                   classes: TaskClassMap, task_sizes: Sequence[int],
                   feature_size: tuple[int, int], train_cfg: Mapping[str, Any]
                   ) -> list[tuple[Tensor, Tensor, Tensor, Tensor]]:
    """``(heatmap, anno_box, ind, mask)`` per task for one sample (boxes of classes no task
    predicts are ignored).

    With ``dense_reg`` > 1 the box regression is also supervised at the cells around each
    centre, their offsets pointing at the true centre, so a heatmap peak one cell off still
    decodes the right box; a cell that is some object's centre, or already claimed by an
    earlier object's neighbourhood, keeps its first target.
    """
    height, width = feature_size
    dense_reg = int(train_cfg.get("dense_reg", 1))
    offsets = neighbourhood(dense_reg)
    max_objs = int(train_cfg.get("max_objs", 500)) * dense_reg
    code = coder.code_size + 1
    boxes = boxes[:, :coder.code_size].float()
    cells, regression = coder.encode(boxes)
    size_x, size_y = coder.cell_size
    radii = gaussian_radius((boxes[:, 4] / size_y, boxes[:, 3] / size_x),
                            float(train_cfg.get("gaussian_overlap", 0.1)))
    radii = torch.nan_to_num(radii, nan=0.0).clamp(min=0).to(torch.int64)
    radii = radii.clamp(min=int(train_cfg.get("min_radius", 2))).tolist()
    usable = ((boxes[:, 3] > 0) & (boxes[:, 4] > 0) & (cells[:, 0] >= 0) & (cells[:, 0] < height)
              & (cells[:, 1] >= 0) & (cells[:, 1] < width)).tolist()
    task_of = classes.task_of[labels].tolist()
    local = classes.class_in_task[labels].tolist()
    rows, cols = cells[:, 0].tolist(), cells[:, 1].tolist()
    out = []
    for task, num_classes in enumerate(task_sizes):
        heatmap = boxes.new_zeros((num_classes, height, width))
        anno_box = boxes.new_zeros((max_objs, code))
        ind = torch.zeros(max_objs, dtype=torch.int64, device=boxes.device)
        mask = torch.zeros(max_objs, dtype=torch.bool, device=boxes.device)
        members = [i for i, t in enumerate(task_of) if t == task][:max_objs // dense_reg]
        claimed = {rows[box] * width + cols[box] for box in members if usable[box]}
        for position, box in enumerate(members):  # slots position * dense_reg + k (mmdet3d's layout for 1)
            if not usable[box]:
                continue
            draw_heatmap_gaussian(heatmap[local[box]], (cols[box], rows[box]), radii[box])
            for k, (d_row, d_col) in enumerate(offsets):
                slot = position * dense_reg + k
                row, col = rows[box] + d_row, cols[box] + d_col
                cell = row * width + col
                centre = d_row == 0 and d_col == 0
                if not centre and (not (0 <= row < height and 0 <= col < width) or cell in claimed):
                    continue
                claimed.add(cell)
                ind[slot] = cell
                mask[slot] = True
                anno_box[slot] = regression[box]
                anno_box[slot, 0] -= d_col  # offsets are relative to the supervised cell
                anno_box[slot, 1] -= d_row
        out.append((heatmap, anno_box, ind, mask))
    return out


def batch_targets(per_sample: list[list[tuple[Tensor, Tensor, Tensor, Tensor]]]
                  ) -> list[TaskTargets]:
    """Stack :func:`sample_targets` of every sample into one :class:`TaskTargets` per task."""
    return [TaskTargets(*(torch.stack([sample[task][i] for sample in per_sample])
                          for i in range(4)))
            for task in range(len(per_sample[0]))]
