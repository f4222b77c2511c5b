"""On-disk autotune results (JSON) and applying them to a model.

A result is keyed by the device (CPU model name or CUDA device name, torch version, torch
thread count, and the engine: the dataflows with their parameter spaces, so a result tuned
before a dataflow was added or changed is not reused), the model (class and a hash of its layer structure, execution configs
excluded) and a caller-given config hash (e.g. of the model config and voxel settings);
the file is ``<cache_dir>/<ModelClass>-<hash of the three>.json``.
"""
from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..dataflows import DATAFLOWS, WGRAD_PARAMS
from ..execution import MODES, ExecutionConfig
from ..modules import _SparseConvNd
from .groups import GroupKey, conv_modules

FORMAT = 1


def cpu_name() -> str:
    """The CPU's ``model name`` from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def engine_key() -> str:
    """Hash of the engine's search space: dataflow names, their parameter candidates and the
    weight-gradient parameters."""
    space = {name: {k: list(p.candidates) for k, p in spec.params.items()}
             for name, spec in DATAFLOWS.items()}
    return stable_hash({"dataflows": space, "wgrad": sorted(WGRAD_PARAMS)})


def device_key(device: torch.device) -> dict[str, Any]:
    """What makes timings on this machine comparable (the engine's kernels included)."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    return {"type": device.type, "name": name, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "engine": engine_key()}


def _layer_text(name: str, m: nn.Module) -> str:
    if isinstance(m, _SparseConvNd):
        desc = (m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation,
                m.subm, m.inverse, m.indice_key)
        return f"{name}:{type(m).__name__}:{desc}"
    return f"{name}:{type(m).__name__}:{m.extra_repr()}"


def model_key(model: nn.Module) -> dict[str, str]:
    """Model class and a hash of its module tree (names, types, geometry)."""
    text = "\n".join(_layer_text(n, m) for n, m in model.named_modules())
    return {"class": type(model).__name__,
            "structure": hashlib.sha1(text.encode()).hexdigest()[:16]}


def stable_hash(data: Any) -> str:
    """Short hash of JSON-able data (key order independent)."""
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cache_path(cache_dir: str | Path, device: dict[str, Any], model: dict[str, str],
               config_hash: str) -> Path:
    key = stable_hash({"device": device, "model": model, "config": config_hash})
    return Path(cache_dir).expanduser() / f"{model['class']}-{key}.json"


@dataclass
class TuneResult:
    """Tuned configs per mode: per group its key, layers, config and times (seconds)."""

    device: dict[str, Any]
    model: dict[str, str]
    config_hash: str
    modes: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: Path | None = None
    from_cache: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "device": self.device, "model": self.model,
                "config_hash": self.config_hash, "modes": self.modes}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1))
        tmp.replace(path)
        self.path = path
        return path

    @classmethod
    def load(cls, path: str | Path) -> "TuneResult":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: unreadable autotune cache ({e})") from e
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"{path}: not an autotune cache of format {FORMAT}")
        for mode, entry in data["modes"].items():
            if mode not in MODES or not isinstance(entry.get("groups"), list):
                raise ValueError(f"{path}: bad autotune mode entry {mode!r}")
        return cls(data["device"], data["model"], data["config_hash"], data["modes"], path, True)

    def configs(self, mode: str) -> list[tuple[GroupKey, list[str], ExecutionConfig]]:
        """(group key, layer names, config) of ``mode``."""
        return [(GroupKey.from_dict(g["key"]), list(g["modules"]),
                 ExecutionConfig.from_dict(g["config"]))
                for g in self.modes.get(mode, {}).get("groups", [])]


def apply_tuned(model: nn.Module, result: TuneResult | str | Path) -> int:
    """Set the execution configs of ``model``'s layers from a result (or its JSON file);
    returns the number of (layer, mode) configs set.  Unknown layer names raise."""
    if not isinstance(result, TuneResult):
        result = TuneResult.load(result)
    convs = conv_modules(model)
    count = 0
    for mode in result.modes:
        for key, names, config in result.configs(mode):
            for name in names:
                if name not in convs:
                    raise ValueError(f"apply_tuned: model {type(model).__name__} has no sparse "
                                     f"conv layer {name!r} (group {key.label()}); the cache "
                                     f"belongs to another model")
                convs[name].set_execution(config, mode)
                count += 1
    return count


def find_cached(cache_dir: str | Path, model: nn.Module, device: torch.device) -> TuneResult | None:
    """The newest cached result in ``cache_dir`` tuned for this model structure on this device
    (any config hash: the voxel settings only shift which config wins), or None.

    Unreadable or foreign files are ignored: a cache is an optimisation, never a reason to fail.
    """
    folder = Path(cache_dir).expanduser()
    if not folder.is_dir():
        return None
    wanted_model, wanted_device = model_key(model), device_key(device)
    candidates = sorted(folder.glob(f"{wanted_model['class']}-*.json"),
                        key=lambda path: path.stat().st_mtime, reverse=True)
    for path in candidates:
        try:
            result = TuneResult.load(path)
        except ValueError:
            continue
        if result.model == wanted_model and result.device == wanted_device:
            return result
    return None
