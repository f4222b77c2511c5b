"""Autotuner of the sparse conv layers' execution configs (dataflow, parameters, backend).

    result = autotune(model, samples, forward_fn, modes=("inference", "training"))
    apply_tuned(model, result)   # or apply_tuned(model, "cache.json")

Model-agnostic: it needs the model, a few real input samples and ``forward_fn(model,
sample)``; layers are grouped (:mod:`.groups`), searched group-wise (:mod:`.tuner`) over
:mod:`.space`, timed by :mod:`.timing`, and cached on disk (:mod:`.cache`).
"""
from .api import DEFAULT_CACHE_DIR, autotune, default_loss
from .cache import TuneResult, apply_tuned, cache_path, device_key, find_cached, model_key, stable_hash
from .groups import Group, GroupKey, conv_modules, discover_groups
from .space import SearchSpace
from .timing import HookTimer, Measurement, Timer, robust_median
from .tuner import ModeResult, search_mode

__all__ = ["DEFAULT_CACHE_DIR", "Group", "GroupKey", "HookTimer", "Measurement", "ModeResult",
           "SearchSpace", "Timer", "TuneResult", "apply_tuned", "autotune", "cache_path", "find_cached",
           "conv_modules", "default_loss", "device_key", "discover_groups", "model_key",
           "robust_median", "search_mode", "stable_hash"]
