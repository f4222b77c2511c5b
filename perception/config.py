"""Loading and checking mmengine Python configs.

mmengine builds ``dict(type=..., **kwargs)`` by calling the class, so a misspelt key only
fails deep inside a constructor, and a key that happens to be accepted by ``**kwargs`` not at
all.  :func:`load_config` reads a config (``_base_`` inheritance included) and
:func:`validate_config` checks every ``type=`` dict against the signature and annotations of
the registered class, raising :class:`ConfigError` that names the key path and the file.
"""
from __future__ import annotations

import difflib
import inspect
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mmengine.config import Config
from mmengine.registry import Registry

from .registry import ALL_REGISTRIES

KNOWN_TOP_LEVEL_KEYS: frozenset[str] = frozenset(
    set(inspect.signature(__import__("mmengine.runner", fromlist=["Runner"]).Runner.__init__).parameters)
    - {"self", "cfg"}
    | {"_base_", "custom_imports", "auto_scale_lr", "train_pipeline", "test_pipeline", "val_pipeline",
       "class_names", "point_cloud_range", "voxel_size", "data_root", "dataset_type", "metainfo",
       "backend_args", "input_modality", "benchmark", "amp"}
)
"""Keys mmengine's Runner reads, plus the usual shared variables of detection configs."""


class ConfigError(ValueError):
    """A config is missing, unreadable or names a key or type that does not exist."""


def load_config(path: str | Path, cfg_options: Mapping[str, Any] | None = None) -> Config:
    """Read a config file (resolving ``_base_``), apply overrides, then validate it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        cfg = Config.fromfile(str(path))
    except FileNotFoundError as error:
        raise ConfigError(f"{path}: a file it refers to is missing: {error}") from error
    except (SyntaxError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"{path}: cannot parse config: {error}") from error
    if cfg_options:
        cfg.merge_from_dict(dict(cfg_options))
    validate_config(cfg, source=str(path))
    return cfg


def validate_config(cfg: Config | Mapping[str, Any], source: str | None = None) -> None:
    """Check top-level keys for misspellings and every ``type=`` dict against its class."""
    source = source or getattr(cfg, "filename", None) or "<config>"
    data = cfg.to_dict() if isinstance(cfg, Config) else dict(cfg)
    for key in data:
        if key in KNOWN_TOP_LEVEL_KEYS:
            continue
        close = difflib.get_close_matches(key, KNOWN_TOP_LEVEL_KEYS, n=1, cutoff=0.8)
        if close:
            raise ConfigError(f"{source}: unknown top-level key {key!r} (did you mean {close[0]!r}?)")
    _walk(data, "", source)


def _walk(node: Any, path: str, source: str) -> None:
    if isinstance(node, Mapping):
        if "type" in node:
            _check_component(node, path or "<root>", source)
        for key, value in node.items():
            _walk(value, f"{path}.{key}" if path else str(key), source)
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            _walk(value, f"{path}[{index}]", source)


def _find_class(type_name: Any) -> type | None:
    if inspect.isclass(type_name):
        return type_name
    if not isinstance(type_name, str):
        return None
    for registry in ALL_REGISTRIES:
        found = _registry_get(registry, type_name)
        if found is not None:
            return found
    return None


def _registry_get(registry: Registry, name: str) -> Any:
    try:
        return registry.get(name)
    except (KeyError, ImportError, ModuleNotFoundError):
        return None


def _accepted_parameters(cls: type) -> tuple[dict[str, inspect.Parameter], dict[str, Any], bool]:
    """Keyword parameters of ``cls.__init__``, following ``**kwargs`` up the MRO.

    Returns the parameters, their resolved annotations, and whether any key is accepted
    (a ``**kwargs`` that reaches ``object``).
    """
    parameters: dict[str, inspect.Parameter] = {}
    hints: dict[str, Any] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        if klass is object:
            return parameters, hints, True
        signature = inspect.signature(init)
        try:
            klass_hints = typing.get_type_hints(init)
        except Exception:  # unresolvable forward references: check names only
            klass_hints = {}
        for name, parameter in signature.parameters.items():
            if name == "self" or parameter.kind in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL):
                continue
            parameters.setdefault(name, parameter)
            if name in klass_hints:
                hints.setdefault(name, klass_hints[name])
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
            return parameters, hints, False
    return parameters, hints, True


def _check_component(node: Mapping[str, Any], path: str, source: str) -> None:
    cls = _find_class(node["type"])
    if cls is None or not inspect.isclass(cls):
        return  # a type from another library; mmengine reports it at build time
    parameters, hints, accepts_any = _accepted_parameters(cls)
    for key, value in node.items():
        if key == "type":
            continue
        if key not in parameters:
            if accepts_any:
                continue
            close = difflib.get_close_matches(key, parameters, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{source}: unknown key {path}.{key} for {cls.__name__}{hint}; "
                f"accepted keys: {sorted(parameters)}"
            )
        expected = hints.get(key)
        if expected is not None and not _matches(value, expected):
            raise ConfigError(
                f"{source}: {path}.{key} of {cls.__name__} should be {_type_name(expected)}, "
                f"got {type(value).__name__} {value!r}"
            )


def _matches(value: Any, expected: Any) -> bool:
    """Loose runtime check of a config value against an annotation (containers by kind only)."""
    if expected is Any or isinstance(value, Mapping) and "type" in value:
        return True
    origin = typing.get_origin(expected)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return any(_matches(value, arg) for arg in typing.get_args(expected))
    if expected is type(None):
        return value is None
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected in (bool, str):
        return isinstance(value, expected)
    if origin in (list, tuple, Sequence) or expected in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin in (dict, Mapping) or expected is dict:
        return isinstance(value, Mapping)
    return True


def _type_name(expected: Any) -> str:
    return getattr(expected, "__name__", None) or str(expected).replace("typing.", "")
