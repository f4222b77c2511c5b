"""Sparse conv engine: native (default, fixed configs, autotuned) vs spconv, layers and encoder.

    python tools/benchmark.py sparse [--json PATH] [--markdown PATH] [--threads 2] [--quick]

Inputs (``--input``): the real nuScenes keyframe of ../shared/data and a synthetic 10-sweep
frame of data/synthetic (each skipped with a note when absent), or ``random`` voxels for
smoke tests; voxelized as the encoder config says (:mod:`.sparse_inputs`).  Measured side by
side in one run: single layers (:mod:`.sparse_layers`) and the config's SparseEncoder
(:mod:`.sparse_network`), eval forward and training forward+backward, native vs spconv 2.x
(ConvAlgo.Native, same weights; skipped with a note when spconv is not installed), the
issue's targets as explicit ratios with PASS/MISS (:mod:`.sparse_report`).  A benchmark
reports; it never fails on a missed target.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from . import machine_info
from .sparse_configs import fixed_configs
from .sparse_inputs import REPO_ROOT, LOADERS, VoxelSetup, load_inputs
from .sparse_layers import bench_layers, timing_dicts
from .sparse_network import bench_encoder
from .sparse_report import evaluate_targets, markdown  # noqa: F401  (markdown: dispatcher API)
from .sparse_tuning import TUNE_MODES, Tuner
from .timing import machine_load, torch_threads

LIGHT_CONFIGS = 3
DEFAULT_CONFIG = REPO_ROOT / "configs" / "sparse_encoder" / "sparse_encoder_nuscenes.py"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``tools/benchmark.py sparse``."""
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                        help="encoder config: model, voxel_size, point_cloud_range, "
                             "point_features (default: %(default)s)")
    parser.add_argument("--input", default="all", choices=("all", "random", *LOADERS),
                        help="all = every real-data source present (default)")
    parser.add_argument("--voxels", type=int, default=2000, help="voxels of --input random")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed runs per measurement (default 5, --quick 2)")
    parser.add_argument("--max-configs", type=int, default=None,
                        help="fixed configs tried (default 10, --quick 3; each dataflow's "
                             "default first)")
    parser.add_argument("--layer-configs", type=int, default=None,
                        help="fixed configs per single layer (default: all)")
    parser.add_argument("--no-layers", action="store_true", help="encoder only")
    parser.add_argument("--no-spconv", action="store_true", help="native only")
    parser.add_argument("--tune", choices=TUNE_MODES, default="search",
                        help="tuned configs: search (autotuner, cached), cache (--tune-cache "
                             "FILE) or off")
    parser.add_argument("--tune-cache", type=Path, default=None, help="autotune result JSON")
    parser.add_argument("--tune-cache-dir", type=Path,
                        default=REPO_ROOT / "work_dirs" / "autotune")
    parser.add_argument("--retune", action="store_true", help="ignore a cached tune result")
    parser.add_argument("--tune-repeats", type=int, default=3)
    parser.add_argument("--light", nargs="*", default=["synthetic"], metavar="INPUT",
                        help=f"inputs measured with the light protocol: encoder only, "
                             f"{LIGHT_CONFIGS} fixed configs (each dataflow's default), at most "
                             f"3 repeats, tuned on itself with each dataflow's default parameters (default: "
                             f"synthetic, whose 110k voxels make the full protocol take over an "
                             f"hour)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: encoder only, 2 repeats, 3 fixed configs, tuning off")


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    quick = args.quick
    return {"config": str(args.config), "input": args.input, "threads": args.threads,
            "repeats": args.repeats or (2 if quick else 5),
            "max_configs": args.max_configs or (3 if quick else 10),
            "layer_configs": args.layer_configs, "layers": not (quick or args.no_layers),
            "tune": "off" if quick and args.tune == "search" else args.tune, "quick": quick}


def _spconv_note(wanted: bool) -> tuple[bool, str | None]:
    if not wanted:
        return False, "spconv comparison off (--no-spconv): native figures only"
    from perception_ops.sparse.backends import BACKENDS, SPCONV_INSTALL_HINT
    if BACKENDS["spconv"].is_available():
        return True, None
    return False, f"spconv is not installed: native figures only ({SPCONV_INSTALL_HINT})"


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every figure of the benchmark (JSON-ready); see the module doc."""
    from perception.config import load_config

    settings = _settings(args)
    cfg = load_config(args.config)
    setup = VoxelSetup.from_config(cfg, str(args.config))
    with torch_threads(args.threads):
        load_before = machine_load(args.threads)
        notes = [f"machine before the run: {load_before.note()}"]
        inputs, skipped = load_inputs(args.input, args.voxels, setup)
        notes += skipped + [f"input {i.name}: {i.note}" for i in inputs]
        spconv, note = _spconv_note(not args.no_spconv)
        notes += [note] if note else []
        tuner = Tuner(settings["tune"], args.tune_cache_dir, args.tune_cache, args.retune,
                      1, args.tune_repeats, json.dumps({"model": cfg["model"], "setup": asdict(
                          setup)}, sort_keys=True, default=str))
        fixed = fixed_configs(settings["max_configs"])
        layer_fixed = fixed_configs(settings["layer_configs"])
        started = time.perf_counter()
        encoder, layers = {}, {}
        for inp in tqdm(inputs, desc="sparse benchmark", unit="input"):
            light = inp.name in args.light
            if light:
                notes.append(f"input {inp.name}: light protocol (encoder only, "
                             f"{LIGHT_CONFIGS} fixed configs, <= 3 repeats, tuned on itself "
                             f"with each dataflow's default parameters)")
            encoder[inp.name] = timing_dicts(bench_encoder(
                inp, cfg["model"], fixed[:LIGHT_CONFIGS] if light else fixed, tuner, spconv,
                min(3, settings["repeats"]) if light else settings["repeats"],
                cross_check=not args.quick, light_tuning=light))
            if settings["layers"] and not light:
                layers[inp.name] = timing_dicts(bench_layers(
                    inp, layer_fixed, spconv, settings["repeats"]))
        load_after = machine_load(0)
    notes += tuner.notes + [f"machine after the run (includes the benchmark's own "
                            f"{args.threads} threads): {load_after.note()}"]
    figures: dict[str, Any] = {
        "benchmark": "sparse", "command": " ".join(["tools/benchmark.py", *sys.argv[1:]])
        if sys.argv and sys.argv[0].endswith("benchmark.py") else None,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "seconds": time.perf_counter() - started,
        "machine": {**machine_info(args.threads), "load_before": load_before.as_dict(),
                    "load_after": load_after.as_dict()},
        "settings": settings, "voxel_setup": asdict(setup),
        "inputs": [i.describe() for i in inputs], "spconv": spconv, "notes": notes,
        "encoder": encoder, "layers": layers}
    figures["targets"] = evaluate_targets(figures)
    return figures
