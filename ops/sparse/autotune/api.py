"""``autotune``: group, search, cache and apply the execution configs of a model."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import Tensor, nn
from tqdm import tqdm

from ..backends import BACKENDS
from ..execution import MODES
from .cache import TuneResult, apply_tuned, cache_path, device_key, model_key
from .groups import Group, discover_groups
from .space import SearchSpace
from .timing import HookTimer, Timer
from .tuner import ModeResult, search_mode

DEFAULT_CACHE_DIR = "~/.cache/perception/autotune"


def default_loss(output: Any) -> Tensor:
    """Sum of the means of every floating tensor (or sparse tensor's features) in ``output``."""
    if isinstance(output, Tensor):
        return output.float().mean() if output.is_floating_point() else output.new_zeros(())
    if hasattr(output, "features") and isinstance(output.features, Tensor):
        return default_loss(output.features)
    items = output.values() if isinstance(output, dict) else output
    if isinstance(items, (list, tuple, type({}.values()))):
        losses = [default_loss(v) for v in items]
        if losses:
            return torch.stack([l.float() for l in losses]).sum()
    raise ValueError(f"default_loss: no tensor in the model output ({type(output).__name__}); "
                     f"pass loss_fn")


def _runner(model: nn.Module, samples: Sequence[Any], forward_fn: Callable[[nn.Module, Any], Any],
            loss_fn: Callable[[Any], Tensor], mode: str) -> Callable[[], None]:
    def inference() -> None:
        with torch.no_grad():
            for sample in samples:
                forward_fn(model, sample)

    def training() -> None:
        with torch.enable_grad():
            for sample in samples:
                loss_fn(forward_fn(model, sample)).backward()
        for p in model.parameters():
            p.grad = None
    return inference if mode == "inference" else training


def _mode_json(res: ModeResult, groups: Sequence[Group]) -> dict[str, Any]:
    return {"groups": [{"key": g.key.to_dict(), "label": g.key.label(), "modules": g.modules,
                        "config": res.assignment[g.key].to_dict(),
                        "describe": res.assignment[g.key].describe(),
                        "time_default": res.group_default.get(g.key),
                        "time_tuned": res.group_tuned.get(g.key)} for g in groups],
            "time_default": res.time_default, "time_best_fixed": res.time_best_fixed,
            "best_fixed": res.best_fixed.to_dict(), "time_tuned": res.time_tuned,
            "measurements": res.measurements}


def autotune(model: nn.Module, samples: Iterable[Any],
             forward_fn: Callable[[nn.Module, Any], Any], *,
             modes: Sequence[str] = ("inference",), space: SearchSpace | None = None,
             timer: Timer | None = None, cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
             config_hash: str = "", force: bool = False,
             loss_fn: Callable[[Any], Tensor] = default_loss,
             progress: bool = True) -> TuneResult:
    """Tune ``modes`` ('inference', 'training') of ``model`` on ``samples`` and apply the
    result.  A cached result for this device / model / ``config_hash`` is loaded and applied
    instead unless ``force``; ``cache_dir=None`` disables the cache.  The model's parameters,
    buffers (batch-norm statistics) and train/eval state are restored afterwards."""
    samples = list(samples)
    if not samples:
        raise ValueError("autotune needs at least one input sample")
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"autotune: mode must be one of {MODES}, got {mode!r}")
    space = space or SearchSpace()
    timer = timer or HookTimer()
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    result = TuneResult(device_key(device), model_key(model), config_hash)
    path = None if cache_dir is None else cache_path(cache_dir, result.device, result.model,
                                                     config_hash)
    if path is not None and path.is_file() and not force:
        cached = TuneResult.load(path)
        if all(m in cached.modes for m in modes):
            apply_tuned(model, cached)
            return cached
        result.modes.update(cached.modes)
    was_training = model.training
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.eval()
    groups = discover_groups(model, _runner(model, samples, forward_fn, loss_fn, "inference"))
    if not groups:
        raise ValueError(f"autotune: {type(model).__name__} ran no native sparse conv layer "
                         f"(perception_ops.sparse modules) on the samples; nothing to tune")
    spconv_available = "spconv" in space.backends and BACKENDS["spconv"].is_available()
    try:
        for mode in modes:
            model.train(mode == "training")
            bar = tqdm(desc=f"autotune {mode}", unit="run", disable=not progress)

            def report(what: str, bar: tqdm = bar) -> None:
                bar.update(1)
                bar.set_postfix_str(what)
            res = search_mode(model, groups, _runner(model, samples, forward_fn, loss_fn, mode),
                              timer, mode, space, device.type, spconv_available, report)
            bar.close()
            result.modes[mode] = _mode_json(res, groups)
    finally:
        model.load_state_dict(state)
        model.train(was_training)
        for p in model.parameters():
            p.grad = None
    if path is not None:
        result.save(path)
    apply_tuned(model, result)
    return result
