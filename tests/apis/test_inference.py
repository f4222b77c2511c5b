"""init_model / inference_detector with the toy regressor: weights from a checkpoint, the
config's test pipeline on a Frame, boxes out; bad checkpoints fail naming the file."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from toy_components import make_toy_frame  # noqa: E402
from toy_runs import TOY_CONFIG  # noqa: E402

from perception.apis import inference_detector, init_model  # noqa: E402
from perception.config import ConfigError  # noqa: E402
from perception.engine import CheckpointError  # noqa: E402
from perception.structures import Boxes3D  # noqa: E402

WEIGHT = [1.0, 0.0, 0.0, 0.0]
BIAS = 0.5


@pytest.fixture()
def checkpoint(tmp_path: Path) -> Path:
    """An mmengine-style checkpoint saved from a DDP-wrapped model ("module." prefixes)."""
    path = tmp_path / "toy.pth"
    torch.save({"meta": {"iter": 3, "eta": np.float64(1.5)},
                "state_dict": {"module.linear.weight": torch.tensor([WEIGHT]),
                               "module.linear.bias": torch.tensor([BIAS])}}, path)
    return path


def test_init_model_loads_weights(checkpoint: Path) -> None:
    model = init_model(TOY_CONFIG, checkpoint, device="cpu", cfg_options={"model.step_delay": 0.25})
    assert not model.training
    assert model.linear.weight.tolist() == [WEIGHT] and model.linear.bias.item() == BIAS
    assert model.cfg.model.step_delay == 0.25 and model.step_delay == 0.25
    assert model.checkpoint_meta["iter"] == 3
    assert type(model.data_preprocessor).__name__ == "BaseDataPreprocessor"


def test_inference_detector_runs_the_test_pipeline(checkpoint: Path) -> None:
    model = init_model(TOY_CONFIG, checkpoint)
    frame = make_toy_frame(5, seed=2)
    pred = inference_detector(model, frame)
    assert isinstance(pred, Boxes3D) and len(pred) == 1
    mean = frame.points.mean(axis=0).astype(np.float64)
    expected_score = 1.0 / (1.0 + np.exp(-(mean[0] * WEIGHT[0] + BIAS)))
    assert pred.scores[0] == pytest.approx(expected_score, rel=1e-5)
    np.testing.assert_allclose(pred.centers[0], mean[:3], rtol=1e-5, atol=1e-6)
    assert pred.labels.tolist() == [0]


def test_init_model_without_checkpoint_and_from_config_object(checkpoint: Path) -> None:
    first = init_model(TOY_CONFIG)
    again = init_model(first.cfg, checkpoint, cfg_options={"model.in_channels": 4})
    assert again.linear.weight.tolist() == [WEIGHT]
    with pytest.raises(ConfigError, match="in_chanels"):
        init_model(first.cfg, cfg_options={"model.in_chanels": 4})


def test_mismatched_or_damaged_checkpoint_names_the_file(checkpoint: Path, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.pth"
    torch.save({"state_dict": {"linear.weight": torch.zeros(1, 7), "linear.bias": torch.zeros(1)}}, wrong)
    with pytest.raises(CheckpointError, match=rf"checkpoint {wrong} does not match"):
        init_model(TOY_CONFIG, wrong)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(checkpoint.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=rf"checkpoint {truncated} is truncated or corrupt"):
        init_model(TOY_CONFIG, truncated)


def test_model_without_config_is_refused() -> None:
    model = init_model(TOY_CONFIG)
    del model.cfg
    with pytest.raises(ValueError, match="init_model"):
        inference_detector(model, make_toy_frame(0))

