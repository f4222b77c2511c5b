"""The bridge's planner stage: a planning-layer planner chosen by name, its path in the sensor frame.

Planners (``--planner``): ``none``; ``cv`` = :class:`~perception.planning.baselines.ConstantVelocityPlanner`;
``str`` = :class:`~perception.planning.str_planner.STRPlanner` from an STR config and a trained
checkpoint.  A planner returns the ego path in the world frame; the bridge publishes boxes, map
and path in the LiDAR frame of the cloud (``frame_id``, placed in the world by the TF it
publishes), so :func:`path_in_lidar_frame` moves the path there.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from ..planning.scene import PlanningScene
from ..structures import apply_transform, invert_transform
from ..structures.geometry import wrap_angle, yaw_of_rotation
from .errors import BridgeConfigError

PLANNER_NAMES = ("none", "cv", "str")
STR_TRAIN_HINT = "python tools/train.py configs/str/str_small_synthetic.py"


class Planner(Protocol):
    """The planning contract: ``plan(scene) -> (T, 3)`` world-frame ego x, y, yaw."""

    def plan(self, scene: PlanningScene) -> np.ndarray: ...


def path_in_lidar_frame(plan_world: np.ndarray, lidar2global: np.ndarray) -> np.ndarray:
    """``(T, 3)`` world x, y, yaw -> the same poses in the LiDAR frame (x, y, yaw)."""
    plan = np.asarray(plan_world, dtype=np.float64)
    if plan.ndim != 2 or plan.shape[1] != 3:
        raise ValueError(f"a plan must be (T, 3) x, y, yaw, got shape {plan.shape}")
    lidar2global = np.asarray(lidar2global, dtype=np.float64)
    xyz = np.concatenate([plan[:, :2], np.full((len(plan), 1), lidar2global[2, 3])], axis=1)
    local = apply_transform(invert_transform(lidar2global), xyz)
    yaw = wrap_angle(plan[:, 2] - yaw_of_rotation(lidar2global[:3, :3]))
    return np.concatenate([local[:, :2], np.asarray(yaw).reshape(-1, 1)], axis=1)


def _constant_velocity(num_future: int, **_: Any) -> Planner:
    from ..planning.baselines import ConstantVelocityPlanner

    return ConstantVelocityPlanner(num_future=num_future)


def _str(str_config: str | Path | None = None, str_checkpoint: str | Path | None = None, device: str = "cpu",
         **_: Any) -> Planner:
    from ..planning.str_planner import STRPlanner

    if str_config is None or not Path(str_config).is_file():
        raise BridgeConfigError(f"--planner str: STR config {str_config} not found (pass --str-config PATH)")
    if str_checkpoint is None or not Path(str_checkpoint).is_file():
        raise BridgeConfigError(
            f"--planner str needs a trained STR checkpoint, but {str_checkpoint or 'none was given'}"
            f"{' does not exist' if str_checkpoint else ''}. Train one ({STR_TRAIN_HINT}) and pass "
            "--str-checkpoint PATH, or use --planner cv (constant velocity) / --planner none.")
    return STRPlanner.from_config(str_config, str_checkpoint, device=device)


PLANNER_FACTORIES: dict[str, Callable[..., Planner | None]] = {
    "none": lambda **_: None, "cv": _constant_velocity, "str": _str}


def build_planner(name: str, num_future: int = 30, str_config: str | Path | None = None,
                  str_checkpoint: str | Path | None = None, device: str = "cpu") -> Planner | None:
    """The planner called ``name`` (``none`` gives None); bad names / missing files raise
    :class:`BridgeConfigError` with what to do."""
    if name not in PLANNER_FACTORIES:
        raise BridgeConfigError(f"unknown planner {name!r}; choose one of {', '.join(PLANNER_FACTORIES)}")
    return PLANNER_FACTORIES[name](num_future=num_future, str_config=str_config, str_checkpoint=str_checkpoint,
                                   device=device)
