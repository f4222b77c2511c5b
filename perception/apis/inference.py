"""Single-frame inference: ``init_model`` (config + checkpoint -> eval model) and
``inference_detector`` (Frame -> predicted :class:`Boxes3D`).

``init_model`` builds ``cfg.model`` with ``cfg.data_preprocessor`` merged in as mmengine's
Runner does, loads the weights with the weights-only checkpoint reader of
:mod:`perception.engine.checkpoint` and keeps the config on ``model.cfg``.
``inference_detector`` runs the config's test pipeline (``cfg.test_dataloader.dataset.pipeline``)
on ``{"frame": frame}``, collates with ``pseudo_collate`` and calls ``model.test_step``.
"""
from __future__ import annotations

import copy
from os import PathLike
from pathlib import Path
from typing import Any, Mapping

import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import _load_checkpoint_to_model
from torch import nn

from ..config import load_config, validate_config
from ..engine.checkpoint import CheckpointError, load_checkpoint_file, state_dict_from_checkpoint
from ..registry import MODELS, TRANSFORMS
from ..structures import Boxes3D, Frame


def _as_config(config: str | PathLike | Config, cfg_options: Mapping[str, Any] | None) -> Config:
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
        if cfg_options:
            cfg.merge_from_dict(dict(cfg_options))
            validate_config(cfg)
        return cfg
    return load_config(Path(config), cfg_options)


def _scope(cfg: Config) -> Any:
    return DefaultScope.overwrite_default_scope(cfg.get("default_scope") or "perception")


def init_model(config: str | PathLike | Config, checkpoint: str | PathLike | None = None,
               device: str | torch.device = "cpu", cfg_options: Mapping[str, Any] | None = None) -> nn.Module:
    """The config's model on ``device`` in eval mode, with the checkpoint's weights if given."""
    cfg = _as_config(config, cfg_options)
    if "model" not in cfg:
        raise ValueError(f"{cfg.filename}: no 'model' entry")
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get("data_preprocessor") is not None:
        model_cfg.setdefault("data_preprocessor", copy.deepcopy(cfg.data_preprocessor))
    with _scope(cfg):
        model = MODELS.build(model_cfg)
    if checkpoint is not None:
        loaded = load_checkpoint_file(checkpoint, map_location="cpu")
        state_dict_from_checkpoint(loaded, str(checkpoint))  # fails clearly on a non-model file
        try:
            _load_checkpoint_to_model(model, loaded, strict=True)
        except RuntimeError as error:
            raise CheckpointError(f"checkpoint {checkpoint} does not match the model of "
                                  f"{cfg.filename}: {error}") from error
        model.checkpoint_meta = loaded.get("meta", {})
    model.cfg = cfg
    return model.to(device).eval()


def build_test_pipeline(cfg: Config) -> Compose:
    """The transforms of ``cfg.test_dataloader.dataset.pipeline`` (built in our registry)."""
    try:
        steps = cfg.test_dataloader.dataset.pipeline
    except AttributeError as error:
        raise ValueError(f"{cfg.filename}: no test_dataloader.dataset.pipeline for inference") from error
    with _scope(cfg):
        return Compose([TRANSFORMS.build(step) for step in steps])


@torch.no_grad()
def inference_detector(model: nn.Module, frame: Frame) -> Boxes3D:
    """Predicted boxes (LiDAR frame, scores set) of one frame."""
    cfg = getattr(model, "cfg", None)
    if cfg is None:
        raise ValueError("inference_detector: the model has no .cfg (build it with init_model)")
    data = build_test_pipeline(cfg)({"frame": frame, "sample_idx": 0})
    if data is None:
        raise ValueError(f"frame {frame.token}: the test pipeline dropped the frame")
    outputs = model.test_step(pseudo_collate([data]))
    pred = getattr(outputs[0], "pred", None)
    if not isinstance(pred, Boxes3D):
        raise TypeError(f"frame {frame.token}: model.test_step returned {type(outputs[0]).__name__} "
                        f"without a Boxes3D .pred")
    return pred
