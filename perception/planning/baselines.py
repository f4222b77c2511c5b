"""Baselines for prediction and planning: constant velocity, and a plain MLP planner.

* :class:`ConstantVelocityPredictor` / :class:`ConstantVelocityPlanner`: extrapolate the last
  valid position with the last velocity (the state's ``vx, vy`` when finite, else the
  displacement between the last two valid steps); the planner's yaw is the heading of
  travel (the current yaw when nearly stopped).
* :class:`MLPPlanner`: a small torch MLP on the flattened ego history plus the nearest agents'
  current states, all in the ego frame at "now", regressing the future ego positions.
  :meth:`MLPPlanner.fit` trains it on :class:`PlanningScene`\\ s with a ground-truth future.

All follow the planning contract: ``plan(scene) -> (T_future, 3)`` world-frame ``x, y, yaw`` at
``dt`` steps after now; ``predict(scene, track_ids) -> ((N, K, T_future, 2), (N, K))``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..registry import MODELS
from ..structures.map_elements import AgentHistory
from .scene import PlanningScene

STOPPED_SPEED = 0.5
"""m/s below which the heading of travel is unreliable and the current yaw is kept."""


def last_motion(track: AgentHistory, index: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Position, velocity and yaw of ``track`` at its last valid step at or before ``index``."""
    valid = np.flatnonzero(track.valid[: index + 1])
    if not len(valid):
        raise ValueError(f"track {track.track_id} has no valid state at or before step {index}")
    last = valid[-1]
    position, velocity = track.states[last, :2].copy(), track.states[last, 3:5].copy()
    if not np.isfinite(velocity).all():
        if len(valid) > 1:
            prev = valid[-2]
            velocity = (position - track.states[prev, :2]) / (track.timestamps[last] - track.timestamps[prev])
        else:
            velocity = np.zeros(2)
    return position, velocity, float(track.states[last, 2])


def _future_times(scene: PlanningScene, steps: int, dt: float) -> np.ndarray:
    step = scene.dt if scene.dt > 0 else dt
    return step * np.arange(1, steps + 1)


class ConstantVelocityPredictor:
    """One mode per agent: straight-line extrapolation at the last velocity."""

    def __init__(self, num_future: int = 60, dt: float = 0.1) -> None:
        self.num_future, self.dt = num_future, dt

    def predict(self, scene: PlanningScene, track_ids: Sequence[str] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        track_ids = list(scene.focal_track_ids if track_ids is None else track_ids)
        times = _future_times(scene, self.num_future, self.dt)
        trajectories = np.zeros((len(track_ids), 1, self.num_future, 2))
        for n, track_id in enumerate(track_ids):
            position, velocity, _ = last_motion(scene.agent(track_id), scene.current_index)
            trajectories[n, 0] = position + times[:, None] * velocity
        return trajectories, np.ones((len(track_ids), 1))


class ConstantVelocityPlanner:
    """The ego keeps its current velocity."""

    def __init__(self, num_future: int = 30, dt: float = 0.1) -> None:
        self.num_future, self.dt = num_future, dt

    def plan(self, scene: PlanningScene) -> np.ndarray:
        position, velocity, yaw = last_motion(scene.ego, scene.current_index)
        times = _future_times(scene, self.num_future, self.dt)
        heading = float(np.arctan2(velocity[1], velocity[0])) if np.linalg.norm(velocity) > STOPPED_SPEED else yaw
        xy = position + times[:, None] * velocity
        return np.concatenate([xy, np.full((self.num_future, 1), heading)], axis=1)


def to_ego_frame(xy: np.ndarray, origin: np.ndarray, yaw: float) -> np.ndarray:
    """World points ``(..., 2)`` into the frame at ``origin`` with heading ``yaw`` (x forward)."""
    cos, sin = np.cos(yaw), np.sin(yaw)
    rel = np.asarray(xy) - origin
    return np.stack([rel[..., 0] * cos + rel[..., 1] * sin, -rel[..., 0] * sin + rel[..., 1] * cos], axis=-1)


def from_ego_frame(xy: np.ndarray, origin: np.ndarray, yaw: float) -> np.ndarray:
    """Inverse of :func:`to_ego_frame`."""
    cos, sin = np.cos(yaw), np.sin(yaw)
    xy = np.asarray(xy)
    return np.stack([xy[..., 0] * cos - xy[..., 1] * sin, xy[..., 0] * sin + xy[..., 1] * cos], axis=-1) + origin


def _rotate(vectors: np.ndarray, yaw: float) -> np.ndarray:
    return to_ego_frame(vectors, np.zeros(2), yaw)


def planning_features(scene: PlanningScene, history_steps: int, num_agents: int, scale: float = 10.0) -> np.ndarray:
    """Flat features of a scene in the ego frame at now (positions and speeds divided by ``scale``).

    Ego: ``history_steps`` rows of ``x, y, cos, sin, vx, vy, valid`` (oldest first, zero where
    missing); agents: the ``num_agents`` nearest valid now, ``x, y, cos, sin, vx, vy, l, w, 1``
    (zero rows when fewer)."""
    now = scene.current_index
    origin, _, yaw = last_motion(scene.ego, now)
    ego_rows = np.zeros((history_steps, 7))
    for k in range(history_steps):
        index = now - (history_steps - 1 - k)
        if index < 0 or not scene.ego.valid[index]:
            continue
        state = scene.ego.states[index]
        xy = to_ego_frame(state[:2], origin, yaw) / scale
        velocity = _rotate(np.nan_to_num(state[3:5]), yaw) / scale
        ego_rows[k] = [*xy, np.cos(state[2] - yaw), np.sin(state[2] - yaw), *velocity, 1.0]
    agent_rows = np.zeros((num_agents, 9))
    present = [a for a in scene.agents if a.valid[now]]
    if present:
        xy = np.array([a.states[now, :2] for a in present])
        order = np.argsort(np.linalg.norm(xy - origin, axis=1))[:num_agents]
        for row, i in enumerate(order):
            state = present[i].states[now]
            local = to_ego_frame(state[:2], origin, yaw) / scale
            velocity = _rotate(np.nan_to_num(state[3:5]), yaw) / scale
            size = present[i].size
            agent_rows[row] = [*local, np.cos(state[2] - yaw), np.sin(state[2] - yaw), *velocity,
                               size[0] / scale, size[1] / scale, 1.0]
    return np.concatenate([ego_rows.ravel(), agent_rows.ravel()]).astype(np.float32)


def future_targets(scene: PlanningScene, num_future: int, scale: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth future ego positions in the ego frame at now ``(num_future, 2)`` and validity."""
    origin, _, yaw = last_motion(scene.ego, scene.current_index)
    start = scene.current_index + 1
    future = scene.ego.states[start:start + num_future, :2]
    valid = scene.ego.valid[start:start + num_future].copy()
    targets, mask = np.zeros((num_future, 2), np.float32), np.zeros(num_future, dtype=bool)
    targets[: len(future)] = to_ego_frame(future, origin, yaw) / scale
    mask[: len(future)] = valid
    return targets, mask


@MODELS.register_module()
class MLPPlanner(nn.Module):
    """Plain MLP planner: flattened ego history + nearest agents -> ``num_future`` ego positions."""

    def __init__(self, history_steps: int = 10, num_agents: int = 8, num_future: int = 30,
                 hidden: int = 256, layers: int = 3, dt: float = 0.1, scale: float = 10.0) -> None:
        super().__init__()
        if history_steps < 2 or num_future < 1 or layers < 1:
            raise ValueError(f"MLPPlanner: history_steps >= 2, num_future >= 1, layers >= 1 needed, got "
                             f"{history_steps}, {num_future}, {layers}")
        self.history_steps, self.num_agents, self.num_future = history_steps, num_agents, num_future
        self.dt, self.scale = dt, scale
        width = history_steps * 7 + num_agents * 9
        blocks: list[nn.Module] = []
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        blocks.append(nn.Linear(width, num_future * 2))
        self.mlp = nn.Sequential(*blocks)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, F)`` features -> ``(B, num_future, 2)`` scaled ego-frame positions."""
        return self.mlp(features).view(-1, self.num_future, 2)

    def features(self, scene: PlanningScene) -> np.ndarray:
        return planning_features(scene, self.history_steps, self.num_agents, self.scale)

    @torch.no_grad()
    def plan(self, scene: PlanningScene) -> np.ndarray:
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        local = self(torch.from_numpy(self.features(scene))[None].to(device))[0].cpu().double().numpy() * self.scale
        self.train(was_training)
        origin, _, yaw = last_motion(scene.ego, scene.current_index)
        xy = from_ego_frame(local, origin, yaw)
        steps = np.diff(np.concatenate([origin[None], xy]), axis=0)
        heading = np.arctan2(steps[:, 1], steps[:, 0]) + 0.0
        slow = np.linalg.norm(steps, axis=1) < STOPPED_SPEED * (scene.dt or self.dt)
        heading[slow] = yaw  # nearly stopped: keep the current heading
        return np.concatenate([xy, heading[:, None]], axis=1)

    def fit(self, scenes: Sequence[PlanningScene], epochs: int = 50, lr: float = 1e-3, batch_size: int = 64,
            seed: int = 0, progress: bool = False) -> list[float]:
        """Train on scenes with a ground-truth future (L1 on valid steps); returns the epoch losses."""
        data = [(self.features(s), *future_targets(s, self.num_future, self.scale)) for s in scenes]
        data = [d for d in data if d[2].any()]
        if not data:
            raise ValueError("MLPPlanner.fit: no scene has a valid future ego trajectory")
        features = torch.from_numpy(np.stack([d[0] for d in data]))
        targets = torch.from_numpy(np.stack([d[1] for d in data]))
        masks = torch.from_numpy(np.stack([d[2] for d in data]))
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=1e-4)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(epochs, 1))
        losses = []
        self.train()
        for _ in tqdm(range(epochs), desc="MLPPlanner.fit", disable=not progress):
            order = torch.randperm(len(features), generator=generator)
            total = 0.0
            for start in range(0, len(order), batch_size):
                batch = order[start:start + batch_size]
                error = (self(features[batch]) - targets[batch]).abs().sum(-1)
                loss = (error * masks[batch]).sum() / masks[batch].sum().clamp(min=1)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(batch)
            schedule.step()
            losses.append(total / len(features))
        self.eval()
        return losses
