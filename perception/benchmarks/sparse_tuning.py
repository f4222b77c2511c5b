"""The autotuned configs of the sparse benchmark, through the autotuner's public API.

``--tune search`` runs :func:`perception_ops.sparse.autotune.autotune` on the benchmark's own
input (inference and training modes, native backend only, so that "tuned" stays comparable
with spconv) with its on-disk cache (reused by the next run unless ``--retune``);
``--tune-cache FILE`` applies a saved result (e.g. from ``tools/autotune.py``);
``--tune off`` skips it.  Inputs run with the light protocol are tuned on themselves too
(the tuner is meant to run per dataset: configs tuned on one point density lose on
another), with a light search space: every dataflow with its default parameters, no
separate input/weight-gradient search.  The benchmark re-times the tuned model itself, interleaved with
the other configs; the tuner's own times are kept in the figures as ``tuning``.  The tuner
times every fixed candidate end to end, so its best fixed config of each mode joins the
benchmark's fixed list (which ``--max-configs`` may cut short).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from torch import nn

from perception_ops.sparse.dataflows import DATAFLOWS
from perception_ops.sparse.execution import ExecutionConfig

from .sparse_configs import apply_config
from .sparse_inputs import SparseInput

TUNE_MODES = ("search", "cache", "off")


@dataclass
class Tuned:
    """How to apply the tuned configs to the model, and what the tuner reported."""

    apply: Callable[[nn.Module], Any]
    info: dict[str, Any] = field(default_factory=dict)
    best_fixed: list[ExecutionConfig] = field(default_factory=list)
    """The tuner's best fixed config of each mode (it timed every fixed candidate)."""


def _summary(result: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"cache": str(result.path) if result.path else None,
                           "from_cache": bool(result.from_cache)}
    for mode, data in result.modes.items():
        out[mode] = {"time_default_s": data["time_default"],
                     "time_best_fixed_s": data["time_best_fixed"],
                     "best_fixed": ExecutionConfig.from_dict(data["best_fixed"]).describe(),
                     "time_tuned_s": data["time_tuned"],
                     "groups": {g["label"]: g["describe"] for g in data["groups"]}}
    return out


def _canonical(config: ExecutionConfig) -> ExecutionConfig:
    """Native CPU config with its default parameters spelt out (as :mod:`.sparse_configs`)."""
    if config.backend != "native" or config.dataflow not in DATAFLOWS:
        return config
    return config.replace(params=DATAFLOWS[config.dataflow].resolve(dict(config.params)))


@dataclass
class Tuner:
    """Callable ``(model, input) -> Tuned | None`` for ``mode`` (module doc)."""

    mode: str = "search"
    cache_dir: Path | None = None
    cache_file: Path | None = None
    force: bool = False
    warmup: int = 1
    repeats: int = 3
    config_hash: str = ""
    notes: list[str] = field(default_factory=list)
    last: tuple[str, Any] | None = None  # (input name, TuneResult) of the last tuning

    def __post_init__(self) -> None:
        if self.mode not in TUNE_MODES:
            raise ValueError(f"--tune must be one of {TUNE_MODES}, got {self.mode!r}")
        if self.mode == "cache" and (self.cache_file is None or not self.cache_file.is_file()):
            raise FileNotFoundError(f"--tune cache needs --tune-cache FILE; not found: "
                                    f"{self.cache_file}")

    def __call__(self, model: nn.Module, inp: SparseInput, light: bool = False) -> Tuned | None:
        """Tune ``model`` on ``inp`` (``light``: each dataflow with its default parameters only)."""
        if self.mode == "off":
            return None
        try:
            from perception_ops.sparse.autotune import (HookTimer, SearchSpace, TuneResult,
                                                        apply_tuned, autotune, stable_hash)
        except ImportError as error:  # the autotuner is optional for this benchmark
            self.notes.append(f"tuned configs skipped: autotuner not importable ({error})")
            return None
        if self.mode == "cache":
            result = TuneResult.load(self.cache_file)
            apply_tuned(model, result)
        else:
            key = stable_hash({"benchmark": "sparse", "config": self.config_hash,
                               "input": inp.name, "voxels": inp.num_voxels, "light": light})
            space = SearchSpace(backends=("native",))
            if light:
                space = SearchSpace(backends=("native",), dgrad=False, wgrad=False,
                                    params={name: {k: (v,) for k, v in spec.defaults().items()}
                                            for name, spec in DATAFLOWS.items()})
            result = autotune(model, [(inp.features, inp.coords, 1)],
                              lambda m, sample: m(*sample), modes=("inference", "training"),
                              space=space,
                              timer=HookTimer(self.warmup, self.repeats),
                              cache_dir=self.cache_dir, config_hash=key, force=self.force)

        self.last = (inp.name, result)

        def apply(m: nn.Module) -> None:
            apply_config(m, None)  # layers outside the tuned groups run the default
            apply_tuned(m, result)
        best = []
        for data in result.modes.values():
            config = _canonical(ExecutionConfig.from_dict(data["best_fixed"]))
            if config not in best:
                best.append(config)
        info = _summary(result)
        info["search"] = "light (each dataflow's default parameters)" if light else "full"
        return Tuned(apply, info, best)
