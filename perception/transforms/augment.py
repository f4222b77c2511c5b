"""Global geometric augmentations of a frame's points and boxes (registered in ``TRANSFORMS``).

Each transform replaces ``results["frame"]`` by a modified copy (the cached frame is never
touched) and records what it drew in ``results["aug"]`` so ``PackDetInputs`` can put it in
``DetSample.metainfo``:

* ``rotation`` (rad, CCW about +z), ``scale``, ``translation`` (3,) from
  :class:`GlobalRotScaleTrans`; ``flip_horizontal`` (y mirrored) and ``flip_vertical``
  (x mirrored) from :class:`RandomFlip3D`;
* ``lidar_aug_matrix``: the 4x4 affine map from the original LiDAR frame to the augmented
  one, composed over all transforms (``p_aug = lidar_aug_matrix @ p_orig``), and ``flow``,
  the order they ran in (mmdet3d's ``transformation_3d_flow`` letters R, S, T, HF, VF).

Randomness comes from numpy's global RNG, which mmengine seeds per dataloader worker.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..registry import TRANSFORMS
from ..structures import Boxes3D, Frame, wrap_angle


def apply_affine(frame: Frame, matrix: np.ndarray, size_scale: float = 1.0) -> Frame:
    """A copy of ``frame`` with points and boxes mapped by the 4x4 affine ``matrix``.

    ``matrix[:3, :3]`` must be a rotation about z times ``size_scale``, possibly composed
    with a mirror of x or y.  Centres and points take the full map, sizes are multiplied by
    ``size_scale``, velocities take the linear part and yaws follow the mapped heading vector
    (so a mirror gives ``-yaw`` or ``pi - yaw``).  Columns other than x, y, z are kept.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    linear, offset = matrix[:3, :3], matrix[:3, 3]
    points = frame.points.copy()
    points[:, :3] = (frame.points[:, :3].astype(np.float64) @ linear.T + offset).astype(np.float32)
    boxes = frame.boxes
    data = boxes.data.copy()
    data[:, :3] = boxes.centers @ linear.T + offset
    data[:, 3:6] = boxes.sizes * size_scale
    heading = np.stack([np.cos(boxes.yaws), np.sin(boxes.yaws)], axis=1) @ linear[:2, :2].T
    data[:, 6] = wrap_angle(np.arctan2(heading[:, 1], heading[:, 0]))
    data[:, 7:9] = boxes.velocities @ linear[:2, :2].T  # NaN (unknown) stays NaN
    new_boxes = Boxes3D(data, boxes.labels.copy(), list(boxes.track_ids), boxes.num_lidar_pts.copy(),
                        None if boxes.scores is None else boxes.scores.copy())
    return dataclasses.replace(frame, points=points, boxes=new_boxes)


def _record(results: dict[str, Any], matrix: np.ndarray, steps: list[str], **params: Any) -> None:
    """Merge ``params`` into ``results["aug"]``, compose ``matrix`` into its aug matrix and
    append ``steps`` to its flow."""
    aug = dict(results.get("aug") or {})
    previous = np.asarray(aug.get("lidar_aug_matrix", np.eye(4)), dtype=np.float64)
    aug.update(params)
    aug["lidar_aug_matrix"] = matrix @ previous
    aug["flow"] = [*aug.get("flow", []), *steps]
    results["aug"] = aug


def _pair(values: float | Sequence[float], name: str, owner: str) -> tuple[float, float]:
    if np.isscalar(values):
        values = (-abs(float(values)), abs(float(values)))
    pair = tuple(float(v) for v in values)
    if len(pair) != 2 or pair[0] > pair[1]:
        raise ValueError(f"{owner}: {name} must be [min, max] with min <= max, got {values}")
    return pair  # type: ignore[return-value]


@TRANSFORMS.register_module()
class GlobalRotScaleTrans:
    """Rotate the scene about the LiDAR z axis, scale it, then translate it (mmdet3d's order).

    Args:
        rot_range: ``[min, max]`` of the uniform rotation angle (rad, CCW); a scalar ``r``
            means ``[-r, r]``.
        scale_ratio_range: ``[min, max]`` of the uniform scale factor (> 0).
        translation_std: per-axis standard deviation (m) of the normal translation.
    """

    def __init__(
        self,
        rot_range: float | Sequence[float] = (-0.78539816, 0.78539816),
        scale_ratio_range: Sequence[float] = (0.95, 1.05),
        translation_std: float | Sequence[float] = (0.0, 0.0, 0.0),
    ) -> None:
        owner = type(self).__name__
        self.rot_range = _pair(rot_range, "rot_range", owner)
        self.scale_ratio_range = _pair(scale_ratio_range, "scale_ratio_range", owner)
        if self.scale_ratio_range[0] <= 0:
            raise ValueError(f"{owner}: scale_ratio_range must be positive, got {scale_ratio_range}")
        std = np.broadcast_to(np.asarray(translation_std, dtype=np.float64), (3,)).copy()
        if (std < 0).any():
            raise ValueError(f"{owner}: translation_std must be >= 0, got {translation_std}")
        self.translation_std = std

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        angle = float(np.random.uniform(*self.rot_range))
        scale = float(np.random.uniform(*self.scale_ratio_range))
        translation = np.random.normal(scale=self.translation_std, size=3)
        cos, sin = np.cos(angle), np.sin(angle)
        matrix = np.eye(4)
        matrix[:3, :3] = scale * np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
        matrix[:3, 3] = translation
        results["frame"] = apply_affine(results["frame"], matrix, size_scale=scale)
        _record(results, matrix, ["R", "S", "T"], rotation=angle, scale=scale, translation=translation.tolist())
        return results


@TRANSFORMS.register_module()
class RandomFlip3D:
    """Mirror the scene in bird's-eye view.

    A *horizontal* flip (probability ``flip_ratio_bev_horizontal``) mirrors y (``y -> -y``,
    ``yaw -> -yaw``, ``vy -> -vy``); a *vertical* flip mirrors x (``x -> -x``,
    ``yaw -> pi - yaw``, ``vx -> -vx``).  Horizontal is drawn first, as in mmdet3d.
    """

    def __init__(self, flip_ratio_bev_horizontal: float = 0.5, flip_ratio_bev_vertical: float = 0.5) -> None:
        for name, value in (("flip_ratio_bev_horizontal", flip_ratio_bev_horizontal),
                            ("flip_ratio_bev_vertical", flip_ratio_bev_vertical)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"RandomFlip3D: {name} must be in [0, 1], got {value}")
        self.flip_ratio_bev_horizontal = float(flip_ratio_bev_horizontal)
        self.flip_ratio_bev_vertical = float(flip_ratio_bev_vertical)

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        horizontal = bool(np.random.rand() < self.flip_ratio_bev_horizontal)
        vertical = bool(np.random.rand() < self.flip_ratio_bev_vertical)
        matrix = np.diag([-1.0 if vertical else 1.0, -1.0 if horizontal else 1.0, 1.0, 1.0])
        if horizontal or vertical:
            results["frame"] = apply_affine(results["frame"], matrix)
        steps = [step for step, done in (("HF", horizontal), ("VF", vertical)) if done]
        _record(results, matrix, steps, flip_horizontal=horizontal, flip_vertical=vertical)
        return results


@TRANSFORMS.register_module()
class PointShuffle:
    """Shuffle the order of the points (voxelizers that keep the first points per voxel then
    see a random subset rather than the first sweep's)."""

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        frame = results["frame"]
        order = np.random.permutation(len(frame.points))
        results["frame"] = dataclasses.replace(frame, points=frame.points[order])
        return results
