"""Train a model from a config with mmengine's Runner (perception.engine.PerceptionRunner).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--cfg-options key=value ...] [--launcher none|pytorch|slurm] [--deterministic] [--seed N]

* The config is read with ``perception.config.load_config`` (``_base_`` + ``--cfg-options``,
  then every key is validated: a typo fails here, naming the key and the file).
* ``--work-dir`` defaults to ``work_dirs/<config name>``; it receives the checkpoints,
  ``last_checkpoint``, ``loss_curve.png`` and ``<timestamp>/vis_data`` (scalars.json, TensorBoard).
* ``--resume`` alone resumes from ``<work-dir>/last_checkpoint``; ``--resume CKPT`` from a file.
* ``--amp``: bf16 autocast (CPU, and GPUs with bf16), else fp16 with dynamic loss scaling.
* ``--deterministic`` / ``--seed``: ``randomness`` of the config (deterministic algorithms).

Distributed:

* one machine, N processes: ``tools/dist_train.sh CONFIG N [args]`` (torchrun,
  ``--launcher pytorch``; gloo on CPU, NCCL on GPUs);
* Slurm (GPUs): one task per GPU, ``--launcher slurm`` reads SLURM_PROCID / SLURM_NTASKS /
  SLURM_NODELIST (and MASTER_PORT, default 29500)::

      srun -p PARTITION --job-name=det --gres=gpu:8 --ntasks=16 --ntasks-per-node=8 \\
          --cpus-per-task=5 --kill-on-bad-exit=1 \\
          python -u tools/train.py CONFIG --launcher slurm --work-dir work_dirs/det
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

# OpenMP threads sleep instead of spinning while they wait: on a shared or oversubscribed CPU
# (2 cores, a data-loading worker, other jobs) spinning made training steps 10x slower here.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # must be set before torch loads OpenMP

import torch
from mmengine.config import DictAction

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from perception.config import ConfigError, load_config  # noqa: E402
from perception.engine import build_runner  # noqa: E402

AMP_TYPES = ("AmpOptimWrapper", "AutocastOptimWrapper")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", type=Path)
    p.add_argument("--work-dir", type=Path, default=None, help="default: work_dirs/<config name>")
    p.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CKPT",
                   help="resume from CKPT, or from <work-dir>/last_checkpoint when no file is given")
    p.add_argument("--amp", action="store_true", help="mixed precision (bf16 autocast / fp16 AMP)")
    p.add_argument("--cfg-options", nargs="+", action=DictAction, default=None,
                   help="override config keys, e.g. train_cfg.max_epochs=2")
    p.add_argument("--launcher", choices=("none", "pytorch", "slurm"), default="none")
    p.add_argument("--deterministic", action="store_true", help="deterministic algorithms")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the config's)")
    p.add_argument("--local_rank", "--local-rank", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    return args


def enable_amp(cfg: Any) -> None:
    """Switch ``cfg.optim_wrapper`` to mixed precision for the device this process will use."""
    wrapper = cfg.optim_wrapper
    if wrapper.get("type", "OptimWrapper") in AMP_TYPES:
        return
    if wrapper.get("type", "OptimWrapper") != "OptimWrapper":
        raise ConfigError(f"--amp: cannot combine with optim_wrapper type {wrapper['type']!r}")
    if not torch.cuda.is_available() or torch.cuda.is_bf16_supported():
        wrapper.update(type="AutocastOptimWrapper", dtype="bfloat16")
    else:
        wrapper.update(type="AmpOptimWrapper", dtype="float16", loss_scale="dynamic")


def build_config(args: argparse.Namespace) -> Any:
    """The validated config with the command line applied."""
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    cfg.work_dir = str(args.work_dir or cfg.get("work_dir") or REPO_ROOT / "work_dirs" / args.config.stem)
    if args.resume == "auto":
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if args.amp:
        if "optim_wrapper" not in cfg:
            raise ConfigError(f"{args.config}: --amp needs an optim_wrapper in the config")
        enable_amp(cfg)
    randomness = dict(cfg.get("randomness") or {})
    if args.seed is not None:
        randomness["seed"] = args.seed
    if args.deterministic:
        randomness["deterministic"] = True
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    cfg.randomness = randomness
    return cfg


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = build_config(args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    runner = build_runner(cfg)
    runner.train()
    return 0


if __name__ == "__main__":
    sys.exit(main())
