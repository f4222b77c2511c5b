"""The lean STR training loop used by the scaling study (perception/planning/str_training.py)."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from perception.planning.motion_features import FeatureConfig, map_pieces
from perception.planning.motion_toy import make_toy_scene
from perception.planning.str_training import (FeatureBank, evaluate_loss, predict_tensors, tokens_per_sample,
                                              train_for_tokens)
from perception.registry import MODELS

CFG = FeatureConfig(history_frames=4, history_stride=2, future_steps=20, max_agents=6, max_polylines=10,
                    points_per_polyline=5)


def bank() -> FeatureBank:
    scenes = [make_toy_scene(seed=s, braking=s % 2 == 0) for s in range(3)]
    index = [(i, t, 49 + o) for i in range(3) for t in ("AV", "agent_0", "agent_1") for o in (0, -10)]
    return FeatureBank(scenes, [map_pieces(s.map_elements, CFG) for s in scenes], index, CFG)


def test_bank_pickles_and_encodes() -> None:
    restored = pickle.loads(pickle.dumps(bank()))
    tensors = restored.encode()
    assert tensors["agents"].shape == (18, 6, 5, 7) and tensors["origin"].shape == (18, 3)
    np.testing.assert_allclose(tensors["future"][1], bank().encode()["future"][1])


@pytest.mark.slow
def test_token_budget_sets_the_steps_and_losses_drop() -> None:
    torch.manual_seed(0)
    model = MODELS.build(dict(type="STR", backbone=dict(preset="tiny", max_tokens=64), future_steps=20,
                              history_frames=4, keypoint_times=(2.0, 1.0, 0.5), num_modes=3,
                              context_encoder=dict(type="STRVectorEncoder", hidden_dim=16)))
    tensors = bank().encode()
    per_sample = tokens_per_sample(model, tensors)
    assert per_sample == 10 + 6 + 1 + 9 + 4  # pieces + agents + info + states/actions + key-point slots
    before = evaluate_loss(model, tensors)["loss"]
    fit = train_for_tokens(model, tensors, token_budget=per_sample * 6 * 40, batch_size=6, lr=3e-3)
    assert fit["steps"] == 40 and fit["tokens_seen"] == per_sample * 6 * 40
    after = evaluate_loss(model, tensors)
    assert after["loss"] < 0.6 * before and set(after) >= {"loss_traj", "loss_cls", "loss"}
    traj, scores = predict_tensors(model, tensors, batch_size=7)
    assert traj.shape == (18, 3, 20, 3) and scores.shape == (18, 3)


def test_ego_fraction_draws_that_share_of_each_batch_from_the_planning_targets(monkeypatch) -> None:
    torch.manual_seed(0)
    model = MODELS.build(dict(type="STR", backbone=dict(preset="tiny", max_tokens=64), future_steps=20,
                              history_frames=4, keypoint_times=(2.0, 1.0, 0.5), num_modes=3,
                              context_encoder=dict(type="STRVectorEncoder", hidden_dim=16)))
    tensors = bank().encode()
    seen: list[float] = []
    loss = model.loss

    def spy(inputs):
        seen.append(float(inputs["is_ego"].mean()))
        return loss(inputs)

    monkeypatch.setattr(model, "loss", spy)
    per_sample = tokens_per_sample(model, tensors)
    fit = train_for_tokens(model, tensors, token_budget=per_sample * 8 * 3, batch_size=8, ego_fraction=0.5)
    assert fit["steps"] == 3 and len(seen) == 3
    assert all(share >= 0.5 for share in seen)  # 4 of 8 rows are ego targets (6 of 18 overall)
    with pytest.raises(ValueError, match="ego_fraction"):
        train_for_tokens(model, tensors, token_budget=per_sample * 8, batch_size=8, ego_fraction=1.0)
    no_ego = {**tensors, "is_ego": torch.zeros_like(tensors["is_ego"])}
    with pytest.raises(ValueError, match="no target is the ego"):
        train_for_tokens(model, no_ego, token_budget=per_sample * 8, batch_size=8, ego_fraction=0.25)
