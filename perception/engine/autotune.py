"""Config / dataset glue of the sparse-conv autotuner (:mod:`perception_ops.sparse.autotune`).

From a config it builds the model (``cfg.model``), the dataset (``cfg.val_dataloader`` or
``cfg.train_dataloader``), the voxelizer (``cfg.data_preprocessor``) and voxel encoder
(``cfg.voxel_encoder``), turns a few frames into ``(voxel_features, coors, batch_size)``
samples (point columns ``cfg.point_features``, by name) and tunes the model on them.  For a
detector config (``cfg.model.pts_middle_encoder``) the tuned model is that sparse encoder and
the voxelizer / voxel encoder come from ``cfg.model.data_preprocessor.voxel_layer`` and
``cfg.model.pts_voxel_encoder``; the encoder's ``execution="auto"`` then picks the result up
in training and testing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from torch import Tensor, nn

from perception_ops.sparse.autotune import (DEFAULT_CACHE_DIR, SearchSpace, Timer, TuneResult,
                                            autotune, stable_hash)
from perception_ops.sparse.execution import ExecutionConfig

from ..registry import DATASETS, MODELS

Sample = tuple[Tensor, Tensor, int]
TUNING_KEYS = ("model", "data_preprocessor", "voxel_encoder", "point_features")


def _require(cfg: Config, key: str) -> Any:
    if key not in cfg:
        raise ValueError(f"{cfg.filename}: the autotuner needs a top-level {key!r} entry")
    return cfg[key]


def tuning_parts(cfg: Config) -> dict[str, Any]:
    """The configs of what is tuned and what feeds it: model, voxelizer, voxel encoder, columns."""
    model = _require(cfg, "model")
    if "pts_middle_encoder" in model:  # a detector: tune its sparse encoder
        preprocessor = model.get("data_preprocessor") or {}
        if "voxel_layer" not in preprocessor or "pts_voxel_encoder" not in model:
            raise ValueError(f"{cfg.filename}: a detector config needs model.data_preprocessor.voxel_layer "
                             f"and model.pts_voxel_encoder for the autotuner")
        return {"model": model["pts_middle_encoder"], "data_preprocessor": preprocessor["voxel_layer"],
                "voxel_encoder": model["pts_voxel_encoder"], "point_features": _require(cfg, "point_features")}
    return {key: _require(cfg, key) for key in TUNING_KEYS}


def config_hash(cfg: Config) -> str:
    """Hash of what changes the tuned layers' work: model, voxelization, point columns."""
    return stable_hash(tuning_parts(cfg))


def build_dataset(cfg: Config, split: str = "val") -> Any:
    """The dataset of ``cfg.<split>_dataloader`` ('val' or 'train')."""
    key = f"{split}_dataloader"
    if split not in ("val", "train") or key not in cfg:
        raise ValueError(f"{cfg.filename}: no {key!r} (split must be 'val' or 'train')")
    # the pipeline's transforms are looked up in mmengine's root registry unless our scope is on
    with DefaultScope.overwrite_default_scope(cfg.get("default_scope") or "perception"):
        return DATASETS.build(cfg[key]["dataset"])


def frame_points(frame: Any, names: Sequence[str]) -> Tensor:
    """(N, len(names)) float32 points of a Frame, columns picked by name."""
    missing = [n for n in names if n not in frame.point_features]
    if missing:
        raise ValueError(f"frame {frame.token} ({frame.lidar_path}) has no point feature(s) "
                         f"{missing}; it has {frame.point_features}")
    idx = [frame.point_features.index(n) for n in names]
    return torch.from_numpy(frame.points[:, idx].copy())


def voxelize_samples(cfg: Config, num_samples: int, split: str = "val",
                     device: torch.device | str = "cpu") -> list[Sample]:
    """``num_samples`` frames spread over the dataset, voxelized with the config's settings."""
    dataset = build_dataset(cfg, split)
    if len(dataset) == 0:
        raise ValueError(f"{cfg.filename}: the {split} dataset is empty")
    parts = tuning_parts(cfg)
    voxelizer = MODELS.build(parts["data_preprocessor"]).eval()
    vfe = MODELS.build(parts["voxel_encoder"]).eval()
    names = list(parts["point_features"])
    count = min(num_samples, len(dataset))
    indices = sorted({round(i * (len(dataset) - 1) / max(count - 1, 1)) for i in range(count)})
    samples = []
    with torch.no_grad():
        for i in indices:
            points = frame_points(dataset.get_frame(i), names).to(device)
            out = voxelizer([points])
            if "voxels" in out:
                feats, coors = vfe(out["voxels"], out["num_points"], out["coors"]), out["coors"]
            else:
                feats, coors = vfe(out["points"], out["coors"])
            samples.append((feats, coors.to(torch.int32), 1))
    return samples


def forward_sample(model: nn.Module, sample: Sample) -> Any:
    """``model(voxel_features, coors, batch_size)`` (the SparseEncoder signature)."""
    return model(*sample)


def tune_config(cfg: Config, num_samples: int = 2, modes: Sequence[str] = ("inference",),
                split: str = "val", space: SearchSpace | None = None,
                cache_dir: str | Path = DEFAULT_CACHE_DIR, force: bool = False,
                timer: Timer | None = None, device: str = "cpu",
                progress: bool = True) -> tuple[nn.Module, TuneResult]:
    """Build ``cfg.model``, tune it on voxelized samples; returns (tuned model, result)."""
    model = MODELS.build(tuning_parts(cfg)["model"]).to(device)
    samples = voxelize_samples(cfg, num_samples, split, device)
    result = autotune(model, samples, forward_sample, modes=modes, space=space, timer=timer,
                      cache_dir=cache_dir, config_hash=config_hash(cfg), force=force,
                      progress=progress)
    return model, result


def format_table(result: TuneResult) -> str:
    """Per mode: each group's chosen config and time vs default, then the model totals."""
    lines = []
    for mode, data in result.modes.items():
        lines.append(f"== {mode} ({result.device['name']}, torch {result.device['torch']}, "
                     f"{result.device['threads']} threads)")
        lines.append(f"{'group':<42} {'layers':>6} {'chosen':<52} {'default ms':>10} "
                     f"{'tuned ms':>9}")
        for g in data["groups"]:
            d, t = g.get("time_default"), g.get("time_tuned")
            lines.append(f"{g['label']:<42} {len(g['modules']):>6} {g['describe']:<52} "
                         f"{_ms(d):>10} {_ms(t):>9}")
        lines.append(f"model: default {_ms(data['time_default'])} ms, best fixed "
                     f"{_ms(data['time_best_fixed'])} ms ({_describe(data['best_fixed'])}), "
                     f"tuned {_ms(data['time_tuned'])} ms "
                     f"(x{data['time_default'] / max(data['time_tuned'], 1e-12):.2f} vs default)")
    if result.path is not None:
        lines.append(f"cache: {result.path}{' (reused)' if result.from_cache else ''}")
    return "\n".join(lines)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.1f}"


def _describe(config: dict[str, Any]) -> str:
    return ExecutionConfig.from_dict(config).describe()
