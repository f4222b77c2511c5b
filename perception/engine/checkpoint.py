"""Safe checkpoint loading: ``torch.load(weights_only=True)`` with exactly what mmengine needs.

An mmengine 0.10.7 checkpoint (``Runner.save_checkpoint``) holds, besides tensors and plain
containers, these pickled globals (found with ``torch.serialization.get_unsafe_globals_in_checkpoint``
on checkpoints of this repo's runs):

* ``mmengine.logging.history_buffer.HistoryBuffer`` -- the message hub's log scalars;
* ``numpy.ndarray`` / ``numpy.dtype`` / ``numpy.core.multiarray._reconstruct`` -- their history
  arrays; ``numpy.core.multiarray.scalar`` -- numpy scalars in the runtime info (``eta``);
* ``builtins.getattr`` -- ``HistoryBuffer.__getstate__`` pickles its class-level statistics
  methods as ``getattr(HistoryBuffer, "mean")``, and mmengine's ``OneCycleLR`` state holds its
  anneal function as ``getattr(OneCycleParamScheduler, "_annealing_cos")``.

The real ``getattr`` is never allowlisted: the name ``builtins.getattr`` maps to
:func:`_checkpoint_getattr`, which resolves only those attributes.  The allowlist is applied
with the ``torch.serialization.safe_globals`` context (only during the load, not process-wide).
"""
from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.logging import HistoryBuffer
from mmengine.optim.scheduler.param_scheduler import OneCycleParamScheduler

try:  # numpy >= 2 pickles as numpy._core, numpy 1.x as numpy.core
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, corrupt or holds objects that are not allowed."""


_ALLOWED_ATTRIBUTES: dict[type, frozenset[str]] = {
    HistoryBuffer: frozenset({"min", "max", "current", "mean"}),
    OneCycleParamScheduler: frozenset({"_annealing_cos", "_annealing_linear"}),
}


def _checkpoint_getattr(obj: Any, name: str) -> Any:
    """``getattr`` restricted to the class attributes mmengine checkpoints refer to."""
    allowed = _ALLOWED_ATTRIBUTES.get(obj) if isinstance(obj, type) else None
    if obj is HistoryBuffer:  # custom statistics registered with HistoryBuffer.statistics
        allowed = allowed | frozenset(HistoryBuffer._statistics_methods)
    if allowed is None or name not in allowed:
        raise pickle.UnpicklingError(f"attribute {name!r} of {obj!r} is not allowed in a checkpoint")
    return getattr(obj, name)


def _numpy_globals() -> list[Callable | tuple[Callable, str]]:
    globals_: list[Callable | tuple[Callable, str]] = [np.ndarray, np.dtype]
    for package in ("numpy.core", "numpy._core"):
        globals_.append((_multiarray._reconstruct, f"{package}.multiarray._reconstruct"))
        globals_.append((_multiarray.scalar, f"{package}.multiarray.scalar"))
    # numpy >= 1.25 may pickle dtypes through their classes (numpy.dtypes.Float64DType, ...)
    for dtype in (np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
                  np.uint8, np.bool_):
        kind = type(np.dtype(dtype))
        if kind is not np.dtype:
            globals_.append((kind, f"numpy.dtypes.{kind.__name__}"))
    return globals_


def checkpoint_safe_globals() -> list[Callable | tuple[Callable, str]]:
    """The allowlist for ``torch.serialization.safe_globals`` when loading mmengine checkpoints."""
    return [HistoryBuffer, OneCycleParamScheduler, (_checkpoint_getattr, "builtins.getattr"),
            *_numpy_globals()]


def load_checkpoint_file(filename: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; errors name the file and say what is wrong.

    Local paths are read directly; other URIs (``http://``, ``s3://``) are fetched with
    mmengine's file backends and loaded from memory.
    """
    filename = os.fspath(filename)
    if not filename:
        raise CheckpointError("empty checkpoint path (is the work dir's 'last_checkpoint' file empty?)")
    backend = get_file_backend(filename)
    local = isinstance(backend, LocalBackend)
    if local:
        filename = os.path.expanduser(filename)
        if not os.path.isfile(filename):
            raise FileNotFoundError(f"checkpoint not found: {filename}")
        if os.path.getsize(filename) == 0:
            raise CheckpointError(f"checkpoint {filename} is truncated or corrupt (the file is empty)")
    source: Any = filename if local else io.BytesIO(backend.get(filename))
    try:
        with torch.serialization.safe_globals(checkpoint_safe_globals()):
            checkpoint = torch.load(source, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        unsafe = _unsafe_globals(filename) if local else []
        if unsafe:
            raise CheckpointError(
                f"checkpoint {filename} holds objects outside the weights-only allowlist: {unsafe} "
                "(add them to perception.engine.checkpoint only if they are plain data)") from error
        raise _corrupt(filename, error) from error
    except (RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile, KeyError) as error:
        raise _corrupt(filename, error) from error
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"checkpoint {filename} holds a {type(checkpoint).__name__}, not a dict")
    return checkpoint


def _unsafe_globals(filename: str) -> list[str]:
    allowed = {name if isinstance(name, str) else f"{name.__module__}.{name.__qualname__}"
               for entry in checkpoint_safe_globals()
               for name in ([entry[1]] if isinstance(entry, tuple) else [entry])}
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
    except Exception:  # unreadable: the caller reports corruption
        return []
    return sorted(set(found) - allowed)


def _corrupt(filename: str, error: BaseException) -> CheckpointError:
    text = str(error)
    if "WeightsUnpickler error:" in text:  # skip torch's advice to retry with weights_only=False
        text = text.split("WeightsUnpickler error:", 1)[1]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    reason = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    return CheckpointError(f"checkpoint {filename} is truncated or corrupt ({reason})")


def state_dict_from_checkpoint(checkpoint: dict[str, Any], filename: str) -> dict[str, torch.Tensor]:
    """The model weights of a checkpoint (mmengine ``state_dict`` key or a bare state dict)."""
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"checkpoint {filename} has no model state_dict")
    return state
