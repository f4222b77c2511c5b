"""How a model's native sparse conv layers run: a fixed execution config, a tuned cache, or "auto".

``execution`` (a config value of :class:`~.sparse_encoder.SparseEncoder`):

* ``None``: the engine's default config (``perception_ops.sparse.execution.DEFAULT_EXECUTION``,
  the autotuner's untuned baseline);
* a dict: one :class:`~perception_ops.sparse.execution.ExecutionConfig` for every layer, e.g.
  ``dict(dataflow="native_implicit_gemm")``;
* a path to a ``tools/autotune.py`` result (JSON): its per-layer configs;
* ``"auto"``: the newest autotune result in ``execution_cache_dir`` made for this layer
  structure on this device (so `tools/train.py` / `tools/test.py` pick up what
  `tools/autotune.py` found), else :data:`AUTO_FALLBACK`, the fastest CPU dataflow (which runs
  its Triton counterpart on CUDA and a torch path for bf16 / fp16).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from perception_ops.sparse.autotune import apply_tuned, find_cached
from perception_ops.sparse.autotune.groups import conv_modules
from perception_ops.sparse.execution import ExecutionConfig

AUTO_FALLBACK: Mapping[str, Any] = {"dataflow": "native_implicit_gemm"}
DEFAULT_CACHE_DIR = "work_dirs/autotune"
LOGGER = logging.getLogger(__name__)


def check_execution(spec: Any) -> None:
    """Raise a clear error for an ``execution`` value that can never apply (at build time)."""
    if spec is None or spec == "auto":
        return
    if isinstance(spec, Mapping):
        ExecutionConfig.from_dict(dict(spec))
        return
    if isinstance(spec, (str, Path)):
        if not Path(spec).expanduser().is_file():
            raise FileNotFoundError(f"execution: no autotune result at {spec} (run tools/autotune.py "
                                    f"CONFIG, or use execution='auto')")
        return
    raise TypeError(f"execution must be None, 'auto', a dict (ExecutionConfig) or a path to an autotune "
                    f"JSON, got {type(spec).__name__}")


def apply_execution(model: nn.Module, spec: Any, device: torch.device,
                    cache_dir: str | Path = DEFAULT_CACHE_DIR) -> str:
    """Set the execution configs of ``model``'s native sparse conv layers; returns what was applied."""
    if spec is None:
        return "default"
    if not conv_modules(model):
        return "none (no native sparse conv layers)"
    if isinstance(spec, Mapping):
        _apply_everywhere(model, ExecutionConfig.from_dict(dict(spec)))
        return ExecutionConfig.from_dict(dict(spec)).describe()
    if spec == "auto":
        cached = find_cached(cache_dir, model, device)
        if cached is not None:
            apply_tuned(model, cached)
            LOGGER.info("sparse execution: tuned configs from %s", cached.path)
            return f"tuned ({cached.path})"
        _apply_everywhere(model, ExecutionConfig.from_dict(dict(AUTO_FALLBACK)))
        return f"auto fallback {AUTO_FALLBACK['dataflow']}"
    apply_tuned(model, Path(spec).expanduser())
    return f"tuned ({spec})"


def _apply_everywhere(model: nn.Module, config: ExecutionConfig) -> None:
    for layer in conv_modules(model).values():
        layer.set_execution(config, "both")
