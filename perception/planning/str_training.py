"""A plain PyTorch training loop for STR on in-memory targets (scaling studies, quick proofs).

``tools/train.py`` trains STR through mmengine's Runner like every model; this module is the
lean path used by ``tools/str_scaling.py``, where several sizes must see exactly the same data
and the same number of training tokens:

* :class:`FeatureBank` -- the scenes (tracks only), their map pieces and the target index of a
  :class:`~perception.planning.motion_dataset.MotionForecastingDataset`; it pickles small
  (world-frame arrays) and encodes to stacked tensors anywhere numpy runs, in parallel;
* :func:`tokens_per_sample`, :func:`train_for_tokens`, :func:`evaluate_loss`,
  :func:`predict_tensors`.
"""
from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from tqdm import tqdm

from .motion_features import FeatureConfig, encode_target
from .scene import PlanningScene


@dataclass
class FeatureBank:
    """Scenes, per-scene world-frame map pieces and ``(scene, track_id, now)`` targets."""

    scenes: list[PlanningScene]
    pieces: list[tuple[np.ndarray, np.ndarray]]
    index: list[tuple[int, str, int]]
    config: FeatureConfig

    @classmethod
    def from_dataset(cls, dataset: Any) -> "FeatureBank":
        """From a ``MotionForecastingDataset`` (loads each scene's map once)."""
        loaded = [dataset.scene(i) for i in range(len(dataset.scenes))]
        return cls([s for s, _ in loaded], [p for _, p in loaded], list(dataset.index), dataset.config)

    def _encode_range(self, rows: Sequence[int]) -> list[dict[str, np.ndarray]]:
        out = []
        for row in rows:
            scene_index, track_id, now = self.index[row]
            out.append(encode_target(self.scenes[scene_index], track_id, self.config, now=now,
                                     pieces=self.pieces[scene_index]))
        return out

    def encode(self, workers: int = 1, progress: bool = False) -> dict[str, torch.Tensor]:
        """All targets as stacked tensors (``origin`` included), in index order."""
        rows = list(range(len(self.index)))
        chunks = [rows[i:i + 256] for i in range(0, len(rows), 256)]
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                parts = list(tqdm(pool.map(self._encode_range, chunks), total=len(chunks), disable=not progress,
                                  desc="encode targets"))
        else:
            parts = [self._encode_range(c) for c in tqdm(chunks, disable=not progress, desc="encode targets")]
        features = [f for part in parts for f in part]
        if not features:
            raise ValueError("FeatureBank.encode: no targets")
        return {k: torch.from_numpy(np.stack([np.asarray(f[k]) for f in features])) for k in features[0]}


def tokens_per_sample(model: Any, tensors: dict[str, torch.Tensor]) -> int:
    """Sequence length STR processes per target (context + info + states/actions + key-point slots)."""
    sample = {k: v[:1] for k, v in tensors.items()}
    with torch.no_grad():
        prefix, _ = model.encode_prefix({k: v.to(next(model.parameters()).device) for k, v in sample.items()})
    return int(prefix.shape[1]) + len(model.kp_index) + 1


def _batch(tensors: dict[str, torch.Tensor], rows: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v[rows].to(device, non_blocking=True) for k, v in tensors.items() if k != "origin"}


def train_for_tokens(model: Any, tensors: dict[str, torch.Tensor], token_budget: int, batch_size: int = 64,
                     lr: float = 1e-3, weight_decay: float = 0.01, warmup_fraction: float = 0.05, seed: int = 0,
                     device: str | torch.device = "cpu", progress: bool = False, ego_fraction: float = 0.0
                     ) -> dict[str, Any]:
    """Train with AdamW (linear warm-up, cosine decay) until ``token_budget`` tokens were seen.

    Batches are epochs of a random permutation; with ``ego_fraction`` > 0 each batch instead
    draws that share of its rows from the ego (planning) targets and the rest from all targets,
    uniformly with replacement -- one AV per scenario against dozens of scored agents leaves the
    planning targets ~1.5 % of the data otherwise.
    Returns the step count, tokens per sample, the seen tokens and the per-step training loss."""
    if not 0.0 <= ego_fraction < 1.0:
        raise ValueError(f"train_for_tokens: ego_fraction must be in [0, 1), got {ego_fraction}")
    device = torch.device(device)
    model.to(device).train()
    per_sample = tokens_per_sample(model, tensors)
    steps = max(1, token_budget // (per_sample * batch_size))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=weight_decay)
    warmup = max(1, int(steps * warmup_fraction))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    generator = torch.Generator().manual_seed(seed)
    count = len(next(iter(tensors.values())))
    ego_rows = torch.nonzero(tensors["is_ego"] > 0.5)[:, 0]
    num_ego = int(round(batch_size * ego_fraction))
    if num_ego and not len(ego_rows):
        raise ValueError("train_for_tokens: ego_fraction > 0 but no target is the ego")
    order, cursor, history = (None, 0, []) if num_ego else (torch.randperm(count, generator=generator), 0, [])
    for _ in tqdm(range(steps), disable=not progress, desc=f"train {sum(p.numel() for p in model.parameters()):,} params"):
        if num_ego:
            rows = torch.cat([torch.randint(0, count, (batch_size - num_ego,), generator=generator),
                              ego_rows[torch.randint(0, len(ego_rows), (num_ego,), generator=generator)]])
        else:
            if cursor + batch_size > count:
                order, cursor = torch.randperm(count, generator=generator), 0
            rows = order[cursor:cursor + batch_size]
            cursor += batch_size
        losses = model.loss(_batch(tensors, rows, device))
        loss = sum(losses.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        history.append(float(loss.detach()))
    model.eval()
    return dict(steps=steps, tokens_per_sample=per_sample, tokens_seen=steps * batch_size * per_sample,
                train_loss=history)


@torch.no_grad()
def evaluate_loss(model: Any, tensors: dict[str, torch.Tensor], batch_size: int = 256,
                  device: str | torch.device = "cpu", seed: int = 0) -> dict[str, float]:
    """Sample-weighted mean of each (teacher-forced) loss term and their total over ``tensors``."""
    device = torch.device(device)
    model.to(device).eval()
    torch.manual_seed(seed)  # the diffusion loss draws noise
    count = len(next(iter(tensors.values())))
    sums: dict[str, float] = {}
    for start in range(0, count, batch_size):
        rows = torch.arange(start, min(count, start + batch_size))
        for key, value in model.loss(_batch(tensors, rows, device)).items():
            sums[key] = sums.get(key, 0.0) + float(value) * len(rows)
    out = {k: v / count for k, v in sums.items()}
    out["loss"] = sum(out.values())
    return out


@torch.no_grad()
def predict_tensors(model: Any, tensors: dict[str, torch.Tensor], batch_size: int = 128,
                    device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Local-frame modes ``(N, K, F, 3)`` and scores ``(N, K)`` of every target."""
    device = torch.device(device)
    model.to(device).eval()
    count = len(next(iter(tensors.values())))
    trajs, scores = [], []
    for start in range(0, count, batch_size):
        rows = torch.arange(start, min(count, start + batch_size))
        traj, score = model.predict_local(_batch(tensors, rows, device))
        trajs.append(traj.float().cpu().numpy())
        scores.append(score.float().cpu().numpy())
    return np.concatenate(trajs), np.concatenate(scores)
