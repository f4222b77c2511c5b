"""Helpers shared by the training-tool tests: toy configs in-process and tools/*.py subprocesses."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TOOLS_TESTS = Path(__file__).resolve().parent
TOY_CONFIG = TOOLS_TESTS / "toy_config.py"
if str(TOOLS_TESTS) not in sys.path:  # custom_imports of the toy config: "toy_components"
    sys.path.insert(0, str(TOOLS_TESTS))


def toy_cfg(work_dir: Path, options: dict[str, Any] | None = None) -> Any:
    """The toy config for an in-process runner: non-deterministic (no global torch flag),
    LocalVisBackend only, a unique experiment name (mmengine keys its message hub by it)."""
    from perception.config import load_config

    cfg = load_config(TOY_CONFIG, {"randomness.deterministic": False, **(options or {})})
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f"toy-{uuid.uuid4().hex[:8]}"
    cfg.visualizer = dict(type="Visualizer", vis_backends=[dict(type="LocalVisBackend")])
    return cfg


def tool_env() -> dict[str, str]:
    """Environment for tool subprocesses: the toy components importable, one thread each."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TOOLS_TESTS), str(REPO), env.get("PYTHONPATH")) if p)
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def train_command(*args: str) -> list[str]:
    return [sys.executable, str(REPO / "tools" / "train.py"), str(TOY_CONFIG), *args]


def run_train(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """tools/train.py on the toy config; raises with the output if it fails."""
    result = subprocess.run(train_command(*args), env=tool_env(), cwd=REPO, capture_output=True,
                            text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"train.py failed ({result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def train_scalars(work_dir: Path) -> dict[int, dict[str, float]]:
    """``{iteration: logged training scalars}`` from every run's vis_data/scalars.json in
    ``work_dir`` (later runs win, so a resumed run overrides the killed one)."""
    rows: dict[int, dict[str, float]] = {}
    for path in sorted(Path(work_dir).glob("*/vis_data/scalars.json")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if "loss" in row:
                rows[int(row["step"])] = row
    return rows


def scalars_of_run(run_dir: Path) -> dict[int, dict[str, float]]:
    """``{iteration: training scalars}`` of one ``<work_dir>/<timestamp>`` run folder."""
    rows = {}
    for line in (Path(run_dir) / "vis_data" / "scalars.json").read_text().splitlines():
        row = json.loads(line)
        if "loss" in row:
            rows[int(row["step"])] = row
    return rows
