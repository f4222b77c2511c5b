"""FlatFormer vs SST padded windows vs the sparse-conv encoder: backbone latency and memory.

    python tools/benchmark.py flatformer [--json PATH] [--markdown PATH] [--threads 2] [--quick]

Inputs (``--input``): the real nuScenes keyframe of ../shared/data and a synthetic frame
(the generated data set's middle validation keyframe when ``data/synthetic`` has one, else a
frame simulated with the synthetic world's LiDAR, :mod:`.flatformer_support`), or ``random``
voxels (smoke tests); all voxelized as the encoder config says (:mod:`.sparse_inputs`).

Measured interleaved in one run, eval forward under ``no_grad`` on this CPU: FlatFormer
(``--depth`` blocks of 4 group-attention layers), the SST-style padded-window baseline with
the same number of layers, width, heads and windows (``2 * depth`` blocks of 2 layers) in
two forms: ``sst``, every window padded to the fullest window's count, and ``sst_buckets``,
windows padded per size bucket (``--sst-buckets``, SST's inference drop levels), and the
config's SparseEncoder (CenterPoint's, native engine).  Each call is timed on the wall clock
(the figure the targets use) and on the process' CPU clock (robust to a loaded machine: time
spent waiting for a CPU is not counted).  Memory per model: the growth of
the process' peak RSS over one forward and the peak of live tensors it creates.  Targets
(issue 6): FlatFormer >= 3x faster than padded windows, and no slower than sparse conv.
A benchmark reports; it never fails on a missed target.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from tqdm import tqdm

from . import machine_info
from .flatformer_support import peak_memory, simulated_frame
from .sparse_inputs import REPO_ROOT, SparseInput, VoxelSetup, load_inputs
from .timing import Timing, machine_load, summarize, torch_threads

DEFAULT_CONFIG = REPO_ROOT / "configs" / "sparse_encoder" / "sparse_encoder_nuscenes.py"
TARGETS = (("flatformer vs padded windows (SST)", "sst", 3.0),
           ("flatformer vs SST windows padded per size bucket", "sst_buckets", 3.0),
           ("flatformer vs sparse conv encoder", "sparse_encoder", 1.0))
"""(name, model compared, minimum speed-up of FlatFormer over it)."""
MODELS_ORDER = ("flatformer", "sst", "sst_buckets", "sparse_encoder")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``tools/benchmark.py flatformer``."""
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                        help="sparse encoder config: its model, voxel_size, point_cloud_range "
                             "and point_features set the voxelization (default: %(default)s)")
    parser.add_argument("--input", default="all",
                        choices=("all", "random", "nuscenes-keyframe", "synthetic"))
    parser.add_argument("--voxels", type=int, default=2000, help="voxels of --input random")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (default 7, "
                                                                  "--quick 2)")
    parser.add_argument("--bev-stride", type=int, default=8,
                        help="pillar size in voxels (8: the encoder's 180 x 180 BEV)")
    parser.add_argument("--group-size", type=int, default=69)
    parser.add_argument("--window", type=int, nargs=2, default=(9, 9), metavar=("WX", "WY"))
    parser.add_argument("--depth", type=int, default=2, help="FlatFormer blocks (4 layers each)")
    parser.add_argument("--width", type=int, default=128, help="embedding channels")
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--out-channels", type=int, default=256,
                        help="BEV channels (256: the CenterPoint encoder's)")
    parser.add_argument("--sst-buckets", type=int, nargs="*", default=[30, 60], metavar="N",
                        help="size bounds of the sst_buckets baseline (SST's drop levels; "
                             "default 30 60; none given: no sst_buckets model)")
    parser.add_argument("--no-sparse", action="store_true", help="skip the sparse encoder")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory figures")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 2 repeats, one 1-sweep synthetic frame at 256 "
                             "azimuth steps (unless --input is given explicitly)")


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    return {"config": str(args.config), "input": args.input, "threads": args.threads,
            "repeats": args.repeats or (2 if args.quick else 7), "quick": args.quick,
            "backbone": backbone_kwargs(args), "sparse": not args.no_sparse,
            "sst_buckets": list(args.sst_buckets),
            "memory": not args.no_memory}


def backbone_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Arguments shared by FlatFormer and the SST baseline."""
    return {"bev_stride": args.bev_stride, "embed_dims": args.width, "num_heads": args.heads,
            "window_shape": tuple(args.window), "out_channels": args.out_channels}


def build_models(cfg: dict[str, Any], setup: VoxelSetup, args: argparse.Namespace
                 ) -> dict[str, nn.Module]:
    """FlatFormer, the SST baseline with as many layers, and the config's SparseEncoder."""
    from perception.models.backbones.flatformer import FlatFormer, SSTWindowBackbone
    from perception.registry import MODELS

    torch.manual_seed(0)
    common = dict(in_channels=len(setup.features), sparse_shape=setup.sparse_shape,
                  **backbone_kwargs(args))
    models: dict[str, nn.Module] = {
        "flatformer": FlatFormer(group_size=args.group_size, depth=args.depth, **common),
        "sst": SSTWindowBackbone(depth=2 * args.depth, **common)}
    if args.sst_buckets:
        models["sst_buckets"] = SSTWindowBackbone(depth=2 * args.depth,
                                                  buckets=tuple(args.sst_buckets), **common)
        models["sst_buckets"].load_state_dict(models["sst"].state_dict())
    if not args.no_sparse:
        models["sparse_encoder"] = MODELS.build(dict(cfg["model"]))
    return {name: model.eval() for name, model in models.items()}


def _inputs(args: argparse.Namespace, setup: VoxelSetup) -> tuple[list[SparseInput], list[str]]:
    """The frames to measure and notes on the sources skipped."""
    if args.quick and args.input == "all":
        return [simulated_frame(setup, sweeps=1, azimuth_steps=256)], [
            "quick: one simulated 1-sweep synthetic frame at 256 azimuth steps"]
    names = ["nuscenes-keyframe", "synthetic"] if args.input == "all" else [args.input]
    inputs, notes = [], []
    for name in names:
        try:
            inputs += load_inputs(name, args.voxels, setup)[0]
        except FileNotFoundError as error:
            if name != "synthetic":
                notes.append(f"input {name} skipped: {error}")
                continue
            notes.append(f"generated data set not used ({error}): simulated frame instead")
            inputs.append(simulated_frame(setup))
    if not inputs:
        raise FileNotFoundError("; ".join(notes))
    return inputs, notes


def layout_stats(models: dict[str, nn.Module], inp: SparseInput) -> dict[str, Any]:
    """Pillars, groups / windows and padded slots of the two transformers on ``inp``."""
    ff, sst = models["flatformer"], models["sst"]
    with torch.no_grad():
        _, coords = ff.embed(inp.features, inp.coords.long())
        ff_layout = ff.layouts(coords, 1)[0]
        sst_layout = sst.layouts(coords, 1)[0]
    pillars = int(coords.shape[0])
    if "sst_buckets" in models:
        buckets = models["sst_buckets"].layouts(coords, 1)[0]
        extra = {"sst_bucket_sizes": [b.group_size for b in buckets.buckets],
                 "sst_bucket_windows": [b.num_groups for b in buckets.buckets],
                 "sst_buckets_slots_per_pillar": buckets.num_slots / max(pillars, 1)}
    else:
        extra = {}
    return {**extra, "pillars": pillars, "bev_shape": list(ff.bev_shape),
            "flatformer_groups": ff_layout.num_groups, "group_size": ff_layout.group_size,
            "flatformer_slots_per_pillar": ff_layout.num_slots / max(pillars, 1),
            "sst_windows": sst_layout.num_groups, "sst_max_window_count": sst_layout.group_size,
            "sst_slots_per_pillar": sst_layout.num_slots / max(pillars, 1)}


def bench_input(models: dict[str, nn.Module], inp: SparseInput, repeats: int,
                memory: bool) -> dict[str, Any]:
    """Interleaved eval-forward timings (and memory) of every model on one frame."""
    def forward(model: nn.Module) -> Callable[[], torch.Tensor]:
        def call() -> torch.Tensor:
            with torch.no_grad():
                return model(inp.features, inp.coords, 1)
        return call

    fns = {name: forward(model) for name, model in models.items()}
    shapes = {name: list(fn().shape) for name, fn in fns.items()}
    timings, cpu = measure_two_clocks(fns, repeats=repeats, warmup=1)
    rows = {name: {**timings[name].as_dict(), "cpu_median_ms": cpu[name].ms,
                   "bev_shape": shapes[name]} for name in fns}
    if memory:
        for name, fn in fns.items():
            rows[name].update(peak_memory(fn))
    ff = rows["flatformer"]["median_ms"]
    targets = []
    for label, other, minimum in TARGETS:
        if other in rows:
            ratio = rows[other]["median_ms"] / ff
            targets.append({"target": label, "speedup": ratio, "minimum": minimum,
                            "cpu_speedup": rows[other]["cpu_median_ms"]
                            / rows["flatformer"]["cpu_median_ms"],
                            "status": "PASS" if ratio >= minimum else "MISS"})
    return {"input": inp.describe(), "layout": layout_stats(models, inp), "rows": rows,
            "targets": targets}


def measure_two_clocks(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1
                       ) -> tuple[dict[str, Timing], dict[str, Timing]]:
    """:func:`measure_interleaved` on the wall clock and the process CPU clock at once (the
    same calls): ``(wall, cpu)`` timings per name."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return ({name: summarize(s) for name, s in wall.items()},
            {name: summarize(s) for name, s in cpu.items()})


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every figure of the benchmark (JSON-ready); see the module doc."""
    from perception.config import load_config

    settings = _settings(args)
    cfg = load_config(args.config)
    setup = VoxelSetup.from_config(cfg, str(args.config))
    started = time.perf_counter()
    with torch_threads(args.threads):
        load_before = machine_load(args.threads)
        inputs, notes = _inputs(args, setup)
        notes = [f"machine before the run: {load_before.note()}"] + notes
        notes += [f"input {i.name}: {i.note}" for i in inputs]
        models = build_models(cfg, setup, args)
        results = [bench_input(models, inp, settings["repeats"], settings["memory"])
                   for inp in tqdm(inputs, desc="flatformer benchmark", unit="input")]
        load_after = machine_load(0)
    notes.append(f"machine after the run (includes the benchmark's own {args.threads} "
                 f"threads): {load_after.note()}")
    notes.append("CPU run: the attention is torch scaled_dot_product_attention (the fused "
                 "Triton kernel serves CUDA tensors)")
    command = (" ".join(["tools/benchmark.py", *sys.argv[1:]])
               if sys.argv and sys.argv[0].endswith("benchmark.py") else None)
    return {"benchmark": "flatformer", "command": command,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "seconds": time.perf_counter() - started,
            "machine": {**machine_info(args.threads), "load_before": load_before.as_dict(),
                        "load_after": load_after.as_dict()},
            "settings": settings, "voxel_setup": {"voxel_size": list(setup.voxel_size),
                                                  "point_cloud_range": list(setup.point_cloud_range),
                                                  "sparse_shape": list(setup.sparse_shape)},
            "results": results, "notes": notes}


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _buckets_text(lay: dict[str, Any]) -> str:
    if "sst_bucket_sizes" not in lay:
        return ""
    parts = ", ".join(f"{w} to {size}" for w, size in zip(lay["sst_bucket_windows"],
                                                             lay["sst_bucket_sizes"]))
    return (f"; SST with size buckets: windows padded {parts} "
            f"({lay['sst_buckets_slots_per_pillar']:.2f} slots per pillar)")


def markdown(figures: dict[str, Any]) -> str:
    """The report: per input a latency / memory table and the targets, then the notes."""
    m, s = figures["machine"], figures["settings"]
    lines = ["# FlatFormer benchmark", "",
             f"{m['cpu']} ({m['cpus']} CPUs), {s['threads']} torch threads, torch {m['torch']}; "
             f"{figures['date']}; {s['repeats']} timed runs per model, interleaved, median "
             f"(wall clock; CPU ms: the process' CPU time of the same calls).",
             f"Backbones: {s['backbone']}; FlatFormer group size from the run's layout below.",
             ""]
    for res in figures["results"]:
        inp, lay = res["input"], res["layout"]
        lines += [f"## {inp['name']}: {inp['points']} points, {inp['voxels']} voxels, "
                  f"{lay['pillars']} pillars ({lay['bev_shape'][0]} x {lay['bev_shape'][1]} BEV)",
                  "",
                  f"FlatFormer: {lay['flatformer_groups']} groups of {lay['group_size']} "
                  f"({lay['flatformer_slots_per_pillar']:.2f} slots per pillar); SST: "
                  f"{lay['sst_windows']} windows padded to {lay['sst_max_window_count']} "
                  f"({lay['sst_slots_per_pillar']:.2f} slots per pillar)"
                  + _buckets_text(lay) + ".", "",
                  "| model | median ms | IQR ms | CPU ms | peak RSS growth MB | peak tensors MB "
                  "| BEV |", "|---|---:|---:|---:|---:|---:|---|"]
        for name in MODELS_ORDER:
            if name in res["rows"]:
                row = res["rows"][name]
                lines.append(f"| {name} | {row['median_ms']:.1f} | {row['iqr_ms']:.1f} | "
                             f"{_fmt(row.get('cpu_median_ms'))} | {_fmt(row.get('rss_mb'))} | "
                             f"{_fmt(row.get('tensor_mb'))} | "
                             f"{' x '.join(map(str, row['bev_shape']))} |")
        lines += ["", "| target | FlatFormer speed-up (wall) | (CPU) | needed | status |",
                  "|---|---:|---:|---:|---|"]
        lines += [f"| {t['target']} | {t['speedup']:.2f}x | "
                  f"{_fmt(t.get('cpu_speedup'), 2)}{'x' if 'cpu_speedup' in t else ''} | "
                  f">= {t['minimum']:g}x | {t['status']} |" for t in res["targets"]]
        lines.append("")
    lines += ["## Notes", ""] + [f"- {note}" for note in figures["notes"]]
    return "\n".join(lines) + "\n"
