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
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import torch


def cpu_model() -> str:
    """The CPU's ``model name`` from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


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
    return {"cpu": cpu_model(), "cpus": os.cpu_count(), "threads": threads,
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
    """Write ``text`` to ``path`` through a temporary file in the same folder + rename, so a
    reader never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, figures: Any) -> Path:
    """Strict JSON of ``figures`` written atomically."""
    return write_atomic(path, json.dumps(json_ready(figures), indent=1, allow_nan=False) + "\n")
