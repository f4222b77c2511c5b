"""Benchmarks of the stack, run by ``tools/benchmark.py NAME``.

Each benchmark module exposes ``add_arguments(parser)``, ``run(args) -> dict`` (every figure,
JSON-serialisable) and ``markdown(figures) -> str`` (the report).  Shared helpers: robust
timing in :mod:`.timing`, machine description and atomic JSON output here.
"""
from __future__ import annotations

import json
import math
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from perception_ops.sparse.autotune.cache import cpu_name

from ..utils.atomic import atomic_open


def package_version(name: str) -> str | None:
    """Installed version of distribution ``name``, None when absent."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine_info(threads: int) -> dict[str, Any]:
    """CPU model and count, torch threads and library versions, for a report header."""
    spconv = next((f"{n} {v}" for n in ("spconv-cu120", "spconv")
                   if (v := package_version(n)) is not None), None)
    return {"cpu": cpu_name(), "cpus": os.cpu_count(), "threads": threads,
            "python": platform.python_version(), "torch": torch.__version__,
            "spconv": spconv, "platform": platform.platform()}


def json_ready(obj: Any) -> Any:
    """``obj`` with tuples as lists and non-finite floats as None (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    return obj


def write_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :mod:`perception.utils.atomic`)."""
    with atomic_open(path, "w") as stream:
        stream.write(text)
    return Path(path)


def write_json(path: str | Path, figures: Any) -> Path:
    """Strict JSON of ``figures`` written atomically."""
    return write_atomic(path, json.dumps(json_ready(figures), indent=1, allow_nan=False) + "\n")
