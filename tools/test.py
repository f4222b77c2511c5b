"""Evaluate a checkpoint on a config's test set (``test_dataloader`` + ``test_evaluator``).

    python tools/test.py CONFIG CKPT [--out results.json] [--work-dir DIR]
        [--cfg-options key=value ...] [--launcher none|pytorch|slurm]

Runs ``runner.test()`` of perception.engine.PerceptionRunner (weights-only checkpoint load; a
truncated or corrupt file fails naming it), prints the metrics as a table and, with ``--out``,
writes them as JSON (atomically, on the main process).  Distributed: ``torchrun
--nproc_per_node N tools/test.py CONFIG CKPT --launcher pytorch``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# OpenMP threads sleep instead of spinning while they wait (see tools/train.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # must be set before torch loads OpenMP

from mmengine.config import DictAction

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from perception.config import ConfigError, load_config  # noqa: E402
from perception.engine import build_runner  # noqa: E402
from perception.utils.atomic import atomic_open  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", type=Path)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--out", type=Path, default=None, help="write the metrics to this JSON file")
    p.add_argument("--work-dir", type=Path, default=None, help="default: work_dirs/<config name>")
    p.add_argument("--cfg-options", nargs="+", action=DictAction, default=None)
    p.add_argument("--launcher", choices=("none", "pytorch", "slurm"), default="none")
    p.add_argument("--local_rank", "--local-rank", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    return args


def to_builtin(value: Any) -> Any:
    """Metrics as JSON-safe Python values (numpy/torch scalars -> float/int, NaN -> None)."""
    if isinstance(value, Mapping):
        return {str(k): to_builtin(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_builtin(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if hasattr(value, "tolist"):
        return to_builtin(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def format_metrics(metrics: Mapping[str, Any]) -> str:
    """A two-column text table of the metrics."""
    if not metrics:
        return "(no metrics)"
    rows = [(str(k), f"{v:.4f}" if isinstance(v, float) else str(v)) for k, v in metrics.items()]
    width = max(len("metric"), *(len(k) for k, _ in rows))
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  {'-' * 10}"]
    lines += [f"{k:<{width}}  {v}" for k, v in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.checkpoint.is_file():
        print(f"error: checkpoint not found: {args.checkpoint}", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config, args.cfg_options)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    cfg.launcher = args.launcher
    cfg.work_dir = str(args.work_dir or cfg.get("work_dir") or REPO_ROOT / "work_dirs" / args.config.stem)
    cfg.load_from, cfg.resume = str(args.checkpoint), False
    runner = build_runner(cfg)
    metrics = to_builtin(runner.test())
    if runner.rank == 0:
        print(format_metrics(metrics))
        if args.out is not None:
            with atomic_open(args.out, "w") as stream:
                json.dump(metrics, stream, indent=2, sort_keys=True)
            print(f"metrics written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
