"""Torch dataset of AV2 motion-forecasting targets (registered in ``DATASETS``) and its collate.

One sample = one target of one scenario at one "now": the AV (a planning target,
``is_ego``) or a focal / scored agent (a prediction target).  ``__getitem__`` returns
``{"inputs": {name: tensor}, "data_samples": MotionSample}`` with the tensors of
:func:`perception.planning.motion_features.encode_target`; ``motion_collate`` (registered in
``FUNCTIONS``) stacks the fixed-size tensors and lists the samples, as mmengine's Runner expects.
Tracks are read once when the dataset is built; map pieces are built on first use and cached
per map-file content (the synthetic scenarios of one town share one map).  Training can add
earlier "now"s of each scenario (``now_offsets``) so one 11 s scenario yields several windows.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..registry import DATASETS, FUNCTIONS
from .motion_data import list_scenarios, load_av2_map_elements, load_av2_scenario, scenario_files
from .motion_features import FeatureConfig, MotionFeatureError, encode_target, map_pieces, to_world_xy
from .scene import PlanningScene


@dataclass
class MotionSample:
    """Identity and ground truth of one target, plus the model's predictions once made.

    ``origin`` is the target frame (world ``x, y, yaw``); ``gt_future`` ``(F, 2)`` world
    frame with ``gt_valid`` ``(F,)``; ``pred_trajectories`` ``(K, F, 2)`` world frame,
    ``pred_yaws`` ``(K, F)``, ``pred_scores`` ``(K,)`` probabilities summing to 1.
    """

    scene_id: str
    track_id: str
    is_ego: bool
    category: str
    now: int
    origin: np.ndarray
    gt_future: np.ndarray
    gt_valid: np.ndarray
    pred_trajectories: np.ndarray | None = None
    pred_yaws: np.ndarray | None = None
    pred_scores: np.ndarray | None = None


def sample_from_features(scene: PlanningScene, track_id: str, now: int, features: dict[str, np.ndarray]
                         ) -> MotionSample:
    """The :class:`MotionSample` of an encoded target (ground truth back in the world frame)."""
    origin = features["origin"].astype(np.float64)
    is_ego = bool(features["is_ego"])
    category = scene.ego.category if is_ego else scene.agent(track_id).category
    return MotionSample(scene.scene_id, track_id, is_ego, category, int(now), origin,
                        to_world_xy(features["future"][:, :2].astype(np.float64), origin),
                        features["future_valid"].astype(bool))


@DATASETS.register_module()
class MotionForecastingDataset(Dataset):
    """Targets of the scenarios under ``data_root/split`` (AV2 motion-forecasting layout).

    ``targets``: ``"ego"`` (the AV, planning), ``"focal"`` (the focal track), ``"scored"``
    (focal + scored tracks) -- any combination.  ``now_offsets`` (steps, <= 0) adds windows
    ending earlier than the scenario's "now"; ``max_scenarios`` caps the scenarios read;
    ``map_radius`` (m around the AV at "now") limits the map, ``None`` keeps all of it.
    ``ego_repeat`` lists every ego target that many times (training): a scenario has one AV but
    dozens of scored agents, so without it the planning targets are ~1.5 % of the samples and the
    ego's behaviour (approach a junction, slow down, turn) is under-fitted.
    """

    def __init__(self, data_root: str, split: str = "train", targets: Sequence[str] = ("ego", "scored"),
                 feature_cfg: dict | None = None, now_offsets: Sequence[int] = (0,), max_scenarios: int = 0,
                 map_radius: float | None = None, ego_repeat: int = 1, test_mode: bool = False,
                 pipeline: list | None = None) -> None:
        unknown = sorted(set(targets) - {"ego", "focal", "scored"})
        if unknown or not targets:
            raise ValueError(f"MotionForecastingDataset: targets must be from ('ego', 'focal', 'scored'), got {targets}")
        if any(int(o) > 0 for o in now_offsets):
            raise ValueError(f"MotionForecastingDataset: now_offsets must be <= 0, got {list(now_offsets)}")
        if int(ego_repeat) < 1:
            raise ValueError(f"MotionForecastingDataset: ego_repeat must be >= 1, got {ego_repeat}")
        self.root = Path(data_root) / split
        self.config = FeatureConfig(**dict(feature_cfg or {}))
        self.targets, self.now_offsets, self.map_radius = tuple(targets), tuple(int(o) for o in now_offsets), map_radius
        self.test_mode, self.ego_repeat = test_mode, int(ego_repeat)
        folders = list_scenarios(self.root)
        if max_scenarios > 0:
            folders = folders[:max_scenarios]
        if not folders:
            raise ValueError(f"MotionForecastingDataset: no scenarios under {self.root}")
        self.folders = folders
        self.scenes = [load_av2_scenario(folder, with_map=False) for folder in folders]
        self._pieces: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._map_keys: dict[int, tuple[str, Path | None]] = {}
        self.index: list[tuple[int, str, int]] = []
        for scene_index, scene in enumerate(self.scenes):
            for now in self._nows(scene):
                for track_id in self._target_ids(scene, now):
                    repeat = self.ego_repeat if track_id == scene.ego.track_id else 1
                    self.index.extend([(scene_index, track_id, now)] * repeat)

    def _nows(self, scene: PlanningScene) -> list[int]:
        first = self.config.history_stride  # at least one step of history
        return [scene.current_index + o for o in self.now_offsets if scene.current_index + o >= first]

    def _target_ids(self, scene: PlanningScene, now: int) -> list[str]:
        ids = []
        if "ego" in self.targets and scene.ego.valid[now]:
            ids.append(scene.ego.track_id)
        focal = scene.focal_track_ids[:1] if "focal" in self.targets else []
        if "scored" in self.targets:
            focal = list(scene.focal_track_ids)
        ids += [tid for tid in focal if scene.agent(tid).valid[now]]
        return ids

    def scene(self, scene_index: int) -> tuple[PlanningScene, tuple[np.ndarray, np.ndarray]]:
        """A scene (tracks only) and its world-frame map pieces (cached per map content)."""
        scene = self.scenes[scene_index]
        if scene_index not in self._map_keys:
            _, map_json = scenario_files(self.folders[scene_index])
            key = "" if map_json is None else hashlib.sha1(map_json.read_bytes()).hexdigest()
            self._map_keys[scene_index] = (key + (f"/{scene_index}" if self.map_radius is not None else ""), map_json)
        key, map_json = self._map_keys[scene_index]
        if map_json is None:
            return scene, map_pieces([], self.config)
        if key not in self._pieces:
            elements = load_av2_map_elements(map_json, scene.ego.states[scene.current_index, :2], self.map_radius)
            self._pieces[key] = map_pieces(elements, self.config)
        return scene, self._pieces[key]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index: int) -> dict[str, Any]:
        scene_index, track_id, now = self.index[index]
        scene, pieces = self.scene(scene_index)
        try:
            features = encode_target(scene, track_id, self.config, now=now, pieces=pieces)
        except MotionFeatureError as error:
            raise MotionFeatureError(f"{self.folders[scene_index]}: {error}") from error
        sample = sample_from_features(scene, track_id, now, features)
        inputs = {k: torch.from_numpy(np.asarray(v)) for k, v in features.items() if k != "origin"}
        return {"inputs": inputs, "data_samples": sample}

    @property
    def metainfo(self) -> dict:
        return {"targets": self.targets, "future_steps": self.config.future_steps}


@FUNCTIONS.register_module()
def motion_collate(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack each input tensor over the batch; keep the samples as a list."""
    if not batch:
        raise ValueError("motion_collate: empty batch")
    keys = batch[0]["inputs"].keys()
    inputs = {k: torch.stack([item["inputs"][k] for item in batch]) for k in keys}
    return {"inputs": inputs, "data_samples": [item["data_samples"] for item in batch]}


def collate_features(features: Sequence[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """A batch of :func:`encode_target` dicts as stacked tensors (for the planner adapters)."""
    return {k: torch.from_numpy(np.stack([np.asarray(f[k]) for f in features]))
            for k in features[0] if k != "origin"}
