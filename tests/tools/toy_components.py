"""A toy model / dataset / transform / metric / hook for testing the training tools.

They follow the detector contract in miniature: the dataset yields ``{"frame": Frame}``, the
pipeline ends with ``ToyPackInputs`` (points tensor + a sample object), the model regresses one
number per frame from the mean of its points and ``predict`` fills ``sample.pred`` with a
:class:`Boxes3D`.  Everything is seeded so two runs give identical losses.

Imported by ``tests/tools/toy_config.py`` through ``custom_imports`` (module name
``toy_components``: put ``tests/tools`` on ``sys.path`` / ``PYTHONPATH``).
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from torch import nn

from perception.datasets.base import FrameDataset
from perception.registry import DATASETS, HOOKS, METRICS, MODELS, TRANSFORMS
from perception.structures import Boxes3D, Frame

TRUE_WEIGHTS = np.array([0.5, -1.0, 2.0, 0.25])
TRUE_BIAS = 0.3
FEATURES = ("x", "y", "z", "intensity")


def make_toy_frame(index: int, seed: int = 0, num_points: int = 32) -> Frame:
    """A deterministic random frame whose regression target is in ``frame.scene``'s token."""
    rng = np.random.default_rng(seed * 100_003 + index)
    points = rng.normal(size=(num_points, len(FEATURES))).astype(np.float32)
    return Frame(token=f"toy-{index}", timestamp=float(index), dataset="toy", points=points,
                 point_features=FEATURES, lidar2ego=np.eye(4), ego2global=np.eye(4),
                 class_names=("thing",))


def toy_target(frame: Frame) -> float:
    """The value the toy model should learn: a fixed linear function of the mean point."""
    return float(frame.points.mean(axis=0).astype(np.float64) @ TRUE_WEIGHTS + TRUE_BIAS)


@dataclass
class ToySample:
    """Per-frame annotation / prediction carrier (a miniature DetSample)."""

    token: str
    target: float
    metainfo: dict = field(default_factory=dict)
    pred: Boxes3D | None = None
    pred_value: float | None = None


@DATASETS.register_module()
class ToyDataset(FrameDataset):
    """``num_samples`` generated frames (no files)."""

    def __init__(self, num_samples: int = 16, seed: int = 0, num_points: int = 32,
                 pipeline: Sequence[dict] = (), test_mode: bool = False) -> None:
        self.num_samples, self.seed, self.num_points = num_samples, seed, num_points
        super().__init__(pipeline=list(pipeline), test_mode=test_mode, serialize_data=False,
                         metainfo=dict(classes=("thing",)))

    def load_data_list(self) -> list[dict[str, Any]]:
        return [dict(index=i) for i in range(self.num_samples)]

    def frame_from_info(self, info: dict[str, Any]) -> Frame:
        return make_toy_frame(info["index"], self.seed, self.num_points)


@TRANSFORMS.register_module()
class ToyPackInputs:
    """``{"frame"}`` -> ``{"inputs": {"points"}, "data_samples": ToySample}``."""

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        frame = results["frame"]
        sample = ToySample(token=frame.token, target=toy_target(frame))
        return {"inputs": {"points": torch.from_numpy(frame.points.copy())}, "data_samples": sample}


@MODELS.register_module()
class ToyRegressor(BaseModel):
    """Linear regression on the mean point; ``step_delay`` (s) slows training for kill tests."""

    def __init__(self, in_channels: int = 4, step_delay: float = 0.0,
                 data_preprocessor: dict | None = None, init_cfg: dict | None = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.linear = nn.Linear(in_channels, 1)
        self.step_delay = step_delay

    def forward(self, inputs: dict[str, Any], data_samples: list[ToySample] | None = None,
                mode: str = "tensor") -> Any:
        feats = torch.stack([p.mean(dim=0) for p in inputs["points"]])
        out = self.linear(feats).squeeze(-1)
        if mode == "tensor":
            return out
        if mode == "loss":
            if self.step_delay:
                time.sleep(self.step_delay)
            target = torch.tensor([s.target for s in data_samples], dtype=out.dtype, device=out.device)
            error = out.float() - target.float()
            return {"loss_mse": (error ** 2).mean(), "loss_l1": 0.1 * error.abs().mean()}
        if mode == "predict":
            results = []
            for points, sample, value in zip(inputs["points"], data_samples, out.float().tolist()):
                centre = points[:, :3].mean(dim=0).double().cpu().numpy()
                box = np.concatenate([centre, [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]])[None]
                pred = Boxes3D(box, np.zeros(1, dtype=np.int64), scores=[1.0 / (1.0 + np.exp(-value))])
                results.append(ToySample(sample.token, sample.target, dict(sample.metainfo), pred, value))
            return results
        raise ValueError(f"ToyRegressor: unknown mode {mode!r}")


@METRICS.register_module()
class ToyMetric(BaseMetric):
    """Mean absolute error of ``pred_value`` against the target."""

    default_prefix = "toy"

    def process(self, data_batch: Any, data_samples: Sequence[ToySample]) -> None:
        for sample in data_samples:
            self.results.append(abs(sample.pred_value - sample.target))

    def compute_metrics(self, results: list[float]) -> dict[str, float]:
        return {"mae": float(np.mean(results)), "count": float(len(results))}


def state_hash(model: nn.Module) -> str:
    """sha256 of a module's parameters and buffers (names and exact bytes)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@HOOKS.register_module()
class ToyStateHashHook(Hook):
    """After training, every rank writes ``state_hash_rank<r>.txt`` into the work dir."""

    def after_train(self, runner: Any) -> None:
        model = runner.model.module if hasattr(runner.model, "module") else runner.model
        Path(runner.work_dir, f"state_hash_rank{get_rank()}.txt").write_text(state_hash(model))
