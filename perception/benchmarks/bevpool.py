"""BEV pooling: the interval method (native, cached plan) vs the LSS cumsum trick vs index_add_.

    python tools/benchmark.py bevpool [--json PATH] [--markdown PATH] [--threads 2] [--quick]

Geometry: the real nuScenes keyframe's six cameras from ../shared/data (a synthetic
six-camera rig when absent, with a note), BEVFusion's nuScenes camera setting: 256x704 input,
feature stride 8 (32x88 maps), depth bins [1, 60) m by 0.5 m (118), 80 channels, grid
xbound = ybound = [-54, 54, 0.3], zbound = [-10, 10, 20] (360 x 360 x 1).  Features and output
gradients are random (the op's cost does not depend on values).

Measured, interleaved round by round (:mod:`.bevpool_measure`), forward, backward alone and
forward+backward, with the plan's ranks and sort given to every method:

* group ``features``: pooling given the ``(N, C)`` features: ``interval`` (native),
  ``interval_torch`` (the torch fallback), ``index_add`` and ``cumsum`` (the references of
  :mod:`perception_ops.bev_pool.reference`);
* group ``depth_context``: the LSS step itself, pooling given the depth distribution and the
  image features: ``fused`` (:func:`~perception_ops.bev_pool.bev_pool_depth`, native) vs
  lifting the outer product and then ``interval`` / ``index_add`` / ``cumsum``;

and the cached path (plan from the cache) vs recomputing geometry, ranks and sort every
frame.  Targets (:mod:`.bevpool_report`) are reported PASS/MISS; a benchmark never fails on a
miss.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from perception_ops.bev_pool import (BEVPoolPlan, BEVPoolPlanCache, bev_pool, bev_pool_depth, cells_to_bev,
                                     frustum_geometry, frustum_points, grid_from_bounds, native_available)
from perception_ops.bev_pool.reference import pool_cumsum, pool_index_add

from . import machine_info
from .bevpool_measure import Pool, accuracy, measure_group, timings
from .bevpool_report import evaluate_targets, markdown  # noqa: F401  (markdown: dispatcher API)
from .bevpool_rig import NUSCENES_KEYFRAME, load_rig
from .timing import machine_load, torch_threads


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``tools/benchmark.py bevpool``."""
    parser.add_argument("--source", choices=("auto", "nuscenes", "synthetic"), default="auto",
                        help="camera rig: auto = the real keyframe when present (default)")
    parser.add_argument("--data-root", type=Path, default=NUSCENES_KEYFRAME,
                        help="nuScenes keyframe folder (default: %(default)s)")
    parser.add_argument("--channels", type=int, default=None, help="feature channels (default 80)")
    parser.add_argument("--image-size", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="network input (default 256 704)")
    parser.add_argument("--stride", type=int, default=8, help="feature map stride (default 8)")
    parser.add_argument("--dbound", type=float, nargs=3, default=None, metavar=("MIN", "MAX", "STEP"),
                        help="depth bins (default 1 60 0.5)")
    for axis, default in (("x", "-54 54 0.3"), ("y", "-54 54 0.3"), ("z", "-10 10 20")):
        parser.add_argument(f"--{axis}bound", type=float, nargs=3, default=[float(v) for v in default.split()],
                            metavar=("MIN", "MAX", "STEP"), help=f"BEV {axis} cells (default {default})")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 5, --quick 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 64x176 input, depth step 2 m, 16 channels, 2 rounds")


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    quick = args.quick
    image = tuple(args.image_size or ((64, 176) if quick else (256, 704)))
    if image[0] % args.stride or image[1] % args.stride:
        raise ValueError(f"--image-size {list(image)} is not a multiple of --stride {args.stride}")
    settings = {"source": args.source, "threads": args.threads, "quick": quick, "seed": args.seed,
                "repeats": (2 if quick else 5) if args.repeats is None else args.repeats,
                "channels": (16 if quick else 80) if args.channels is None else args.channels,
                "image_size": list(image), "feature_size": [image[0] // args.stride, image[1] // args.stride],
                "dbound": list(args.dbound or ((1.0, 60.0, 2.0) if quick else (1.0, 60.0, 0.5))),
                "xbound": list(args.xbound), "ybound": list(args.ybound), "zbound": list(args.zbound)}
    if settings["channels"] < 1 or settings["repeats"] < 1:
        raise ValueError("--channels and --repeats must be >= 1")
    return settings


def _lift(depth: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """The LSS outer product ``(N, C)`` (what the unfused methods pool)."""
    return (depth[..., None] * context[:, :, None]).reshape(-1, context.shape[-1])


def _groups(plan: BEVPoolPlan) -> dict[str, dict[str, Pool]]:
    """The two groups of methods: pooling given features, pooling given depth and context."""
    def index_add(f: torch.Tensor) -> torch.Tensor:
        return cells_to_bev(pool_index_add(f, plan.ranks, plan.num_rows), plan)

    def cumsum(f: torch.Tensor) -> torch.Tensor:
        return cells_to_bev(pool_cumsum(f, plan.ranks, plan.num_rows, plan.order), plan)

    return {
        "features": {"interval": lambda f: bev_pool(f, plan),
                     "interval_torch": lambda f: bev_pool(f, plan, backend="torch"),
                     "index_add": index_add, "cumsum": cumsum},
        "depth_context": {"fused": lambda d, c: bev_pool_depth(d, c, plan),
                          "lift+interval": lambda d, c: bev_pool(_lift(d, c), plan),
                          "lift+index_add": lambda d, c: index_add(_lift(d, c)),
                          "lift+cumsum": lambda d, c: cumsum(_lift(d, c))},
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every figure of the benchmark (JSON-ready); see the module doc."""
    settings = _settings(args)
    started = time.perf_counter()
    with torch_threads(args.threads):
        load_before = machine_load(args.threads)
        notes = [f"machine before the run: {load_before.note()}"]
        rig, rig_notes = load_rig(args.source, args.data_root, tuple(settings["image_size"]))
        notes += rig_notes + [rig.note]
        if not native_available():
            notes.append("native bev_pool ops not built: 'interval' and 'fused' ran the torch path")
        grid = grid_from_bounds(settings["xbound"], settings["ybound"], settings["zbound"])
        frustum = frustum_points(settings["image_size"], settings["feature_size"], settings["dbound"])

        def geometry() -> torch.Tensor:
            return frustum_geometry(frustum, rig.cam2img, rig.cam2lidar, rig.img_aug)

        extra = (tuple(settings["image_size"]), tuple(settings["feature_size"]), tuple(settings["dbound"]))
        cache = BEVPoolPlanCache()
        plan = cache.get(rig.calibration(), grid, geometry, extra)
        gen = torch.Generator().manual_seed(args.seed)
        channels, (batch, cams, bins, height, width) = settings["channels"], plan.point_shape
        features = torch.randn(plan.num_points, channels, generator=gen)
        depth = torch.randn(batch, cams, bins, height, width, generator=gen).softmax(2)
        context = torch.randn(batch, cams, height, width, channels, generator=gen)
        grad_bev = cells_to_bev(torch.randn(plan.num_rows, channels, generator=gen), plan)
        groups = _groups(plan)
        inputs = {"features": (features,), "depth_context": (depth, context)}
        references = {"features": groups["features"]["index_add"],
                      "depth_context": groups["depth_context"]["lift+index_add"]}
        figures_groups = {}
        for name, pools in groups.items():
            figures_groups[name] = {
                "accuracy": accuracy(pools, inputs[name], grad_bev, references[name]),
                **measure_group(pools, inputs[name], grad_bev, settings["repeats"], name)}
        with torch.no_grad():
            cached = timings(
                {"cached": lambda: bev_pool(features, cache.get(rig.calibration(), grid, geometry, extra)),
                 "recompute": lambda: bev_pool(features, BEVPoolPlan.build(geometry(), grid)),
                 "plan_cached": lambda: cache.get(rig.calibration(), grid, geometry, extra),
                 "plan_recompute": lambda: BEVPoolPlan.build(geometry(), grid),
                 "geometry": geometry}, settings["repeats"], "cached vs recompute")
        load_after = machine_load(0)
    notes.append(f"machine after the run (includes the benchmark's own {args.threads} threads): "
                 f"{load_after.note()}")
    notes.append(f"plan cache: {cache.hits} hits, {cache.misses} miss(es) (the first call builds the plan)")
    figures: dict[str, Any] = {
        "benchmark": "bevpool",
        "command": " ".join(["tools/benchmark.py", *sys.argv[1:]]) if sys.argv and sys.argv[0].endswith(
            "benchmark.py") else None,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "seconds": time.perf_counter() - started,
        "machine": {**machine_info(args.threads), "load_before": load_before.as_dict(),
                    "load_after": load_after.as_dict()},
        "settings": settings, "rig": {"name": rig.name, "cameras": list(rig.cameras),
                                      "image_sizes": [list(s) for s in rig.image_sizes]},
        "plan": plan.describe(), "native": native_available(), "groups": figures_groups, "cached": cached,
        "cache": {"hits": cache.hits, "misses": cache.misses}, "notes": notes}
    figures["targets"] = evaluate_targets(figures)
    return figures
