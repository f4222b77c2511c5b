"""STR behind the planning contract: ``plan(scene)`` and ``predict(scene, track_ids)``.

:class:`STRPlanner` wraps a trained :class:`~perception.models.planning.STR` so the closed-loop
simulator, the baselines' benchmark and the end-to-end pipeline can use it like any planner:

* ``plan(scene) -> (F, 3)`` world-frame ``x, y, yaw`` of the ego at ``dt`` steps after now
  (the top-scored mode);
* ``predict(scene, track_ids) -> ((N, K, F, 2) world-frame modes, (N, K) probabilities)``.

Scenes are encoded with the same :class:`~perception.planning.motion_features.FeatureConfig`
as in training; map pieces are rebuilt only when the scene's map content changes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .motion_features import FeatureConfig, encode_target, map_pieces, to_world_xy
from .scene import PlanningScene


class STRPlanner:
    """Planner / predictor adapter of an STR model (module doc)."""

    def __init__(self, model: Any, feature_cfg: FeatureConfig | dict | None = None,
                 device: str | torch.device = "cpu") -> None:
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.config = feature_cfg if isinstance(feature_cfg, FeatureConfig) else FeatureConfig(**dict(feature_cfg or {}))
        if self.config.future_steps != model.future_steps or self.config.history_frames != model.history_frames:
            raise ValueError(f"STRPlanner: features have {self.config.history_frames} history frames / "
                             f"{self.config.future_steps} future steps, the model {model.history_frames} / "
                             f"{model.future_steps}")
        self._map_key: tuple | None = None
        self._pieces: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def from_config(cls, config: str | Path, checkpoint: str | Path | None = None, device: str | torch.device = "cpu",
                    cfg_options: dict | None = None) -> "STRPlanner":
        """From an STR config (model + the train dataset's ``feature_cfg``) and a checkpoint."""
        from ..config import load_config
        from ..engine.checkpoint import load_checkpoint_file
        from ..registry import MODELS

        cfg = load_config(config, cfg_options)
        model = MODELS.build(cfg.model)
        if checkpoint is not None:
            state = load_checkpoint_file(str(checkpoint), map_location="cpu")
            model.load_state_dict(state.get("state_dict", state))
        return cls(model, dict(cfg.train_dataloader.dataset.get("feature_cfg") or {}), device)

    def _scene_pieces(self, scene: PlanningScene) -> tuple[np.ndarray, np.ndarray]:
        # keyed by content: the end-to-end pipeline hands over a new list (same elements) every frame
        key = tuple((e.category, e.element_id, e.points.shape, float(np.asarray(e.points[:, :2]).sum()))
                    for e in scene.map_elements)
        if key != self._map_key or self._pieces is None:
            self._pieces, self._map_key = map_pieces(scene.map_elements, self.config), key
        return self._pieces

    def _modes(self, scene: PlanningScene, track_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World-frame modes ``(N, K, F, 2)``, yaws ``(N, K, F)`` and scores ``(N, K)``."""
        pieces = self._scene_pieces(scene)
        features = [encode_target(scene, tid, self.config, pieces=pieces) for tid in track_ids]
        inputs = {k: torch.from_numpy(np.stack([np.asarray(f[k]) for f in features])).to(self.device)
                  for k in features[0] if k != "origin"}
        traj, scores = self.model.predict_local(inputs)
        traj = traj.float().cpu().numpy().astype(np.float64)
        xy = np.stack([to_world_xy(t[..., :2], f["origin"].astype(np.float64)) for t, f in zip(traj, features)])
        yaw = np.stack([(t[..., 2] + float(f["origin"][2]) + np.pi) % (2 * np.pi) - np.pi
                        for t, f in zip(traj, features)])
        return xy, yaw, scores.float().cpu().numpy().astype(np.float64)

    def plan(self, scene: PlanningScene) -> np.ndarray:
        """``(F, 3)`` world ``x, y, yaw`` of the ego's top-scored mode."""
        xy, yaw, scores = self._modes(scene, [scene.ego.track_id])
        top = int(np.argmax(scores[0]))
        return np.concatenate([xy[0, top], yaw[0, top, :, None]], axis=1)

    def predict(self, scene: PlanningScene, track_ids: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(N, K, F, 2)`` world-frame modes and ``(N, K)`` probabilities of ``track_ids``
        (default: the scene's focal tracks)."""
        track_ids = list(scene.focal_track_ids if track_ids is None else track_ids)
        if not track_ids:
            k, f = self.model.num_modes, self.model.future_steps
            return np.zeros((0, k, f, 2)), np.zeros((0, k))
        xy, _, scores = self._modes(scene, track_ids)
        return xy, scores
