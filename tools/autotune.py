"""Autotune the sparse conv layers of a config's model (dataflow, parameters, backend).

    python tools/autotune.py configs/sparse_encoder/sparse_encoder_synthetic.py \
        [--samples 2] [--mode inference|training|both] [--force] [--cache-dir work_dirs/autotune]
        [--dataflows gather_gemm_scatter implicit_gemm] [--backends native spconv]
        [--defaults-only] [--repeats 5] [--warmup 1] [--threads N] [--cfg-options k=v ...]

Builds ``cfg.model``, voxelizes a few frames of the val (or ``--split train``) dataset with
``cfg.data_preprocessor`` / ``cfg.voxel_encoder``, tunes per layer group (inference: forward
without grad; training: forward + backward), caches the result as JSON (reused next time
unless ``--force``) and prints each group's choice and time against the default.

A detector config (CenterPoint: ``model.pts_middle_encoder``) tunes its sparse encoder; with
``execution="auto"`` in the encoder's config (the CenterPoint configs' default) `tools/train.py`
and `tools/test.py` then run every layer with the tuned config found in ``work_dirs/autotune``
for this device and layer structure (the training-mode result while training).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from mmengine.config import DictAction

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from perception.config import load_config  # noqa: E402
from perception.engine.autotune import format_table, tune_config  # noqa: E402
from perception_ops.sparse.autotune import HookTimer, SearchSpace  # noqa: E402
from perception_ops.sparse.dataflows import DATAFLOWS  # noqa: E402

MODES = {"inference": ("inference",), "training": ("training",),
         "both": ("inference", "training")}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", type=Path)
    p.add_argument("--samples", type=int, default=2, help="frames to tune on")
    p.add_argument("--mode", choices=sorted(MODES), default="inference")
    p.add_argument("--split", choices=("val", "train"), default="val")
    p.add_argument("--force", action="store_true", help="retune even if a cached result exists")
    p.add_argument("--cache-dir", type=Path, default=REPO_ROOT / "work_dirs" / "autotune")
    p.add_argument("--dataflows", nargs="+", default=None, help="restrict the dataflows")
    p.add_argument("--backends", nargs="+", choices=("native", "spconv"),
                   default=["native", "spconv"])
    p.add_argument("--defaults-only", action="store_true",
                   help="each dataflow with its default parameters only (quick)")
    p.add_argument("--no-greedy", action="store_true", help="skip the end-to-end greedy pass")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="torch threads (part of the key)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--cfg-options", nargs="+", action=DictAction, default=None)
    return p.parse_args(argv)


def make_space(args: argparse.Namespace) -> SearchSpace:
    params = {}
    if args.defaults_only:
        params = {name: {k: (v,) for k, v in spec.defaults().items()}
                  for name, spec in DATAFLOWS.items()}
    return SearchSpace(dataflows=None if args.dataflows is None else tuple(args.dataflows),
                       params=params, backends=tuple(args.backends),
                       dgrad=not args.defaults_only, wgrad=not args.defaults_only,
                       greedy_top_k=1 if args.no_greedy else 2)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.samples < 1:
        raise SystemExit("--samples must be >= 1")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.cfg_options)
    _, result = tune_config(cfg, args.samples, MODES[args.mode], args.split, make_space(args),
                            args.cache_dir, args.force, HookTimer(args.warmup, args.repeats),
                            args.device)
    print(format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
