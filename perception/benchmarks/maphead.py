"""Vector-map heads on this CPU: frames per second of the MapTR- and MapQR-style heads.

    python tools/benchmark.py maphead [--setting tiny|full|both] [--threads 2] [--repeats 7]
        [--train] [--json PATH] [--markdown PATH] [--quick]

Each head is built from its config (``--setting tiny``: configs/{maptr,mapqr}/*_tiny_synthetic.py;
``full``: the nuScenes configs) and run on the same fixed random BEV map of the config's
shape (the encoder's channels, the LiDAR BEV grid of the config: BEV features are the input,
the encoder is not timed).  Variants: MapTR with full self-attention over the ``Q x P`` point
queries (MapTR) and with MapTRv2's decoupled self-attention, MapQR with the concat and mean
gathers.  Inference is ``eval()`` + ``no_grad`` at batch 1, timed interleaved round by round
(:mod:`.timing`), reported as median ms and FPS = 1000 / median ms; ``--train`` adds a
training step (forward, Hungarian losses on a fixed synthetic ground truth, backward).
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from mmengine.registry import DefaultScope

from . import machine_info
from .timing import machine_load, measure_interleaved, torch_threads

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIGS = {"tiny": {"maptr": "configs/maptr/maptr_tiny_synthetic.py",
                    "mapqr": "configs/mapqr/mapqr_tiny_synthetic.py"},
           "full": {"maptr": "configs/maptr/maptr_lidar_second_secfpn_24e_nuscenes.py",
                    "mapqr": "configs/mapqr/mapqr_lidar_second_secfpn_24e_nuscenes.py"}}
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "MapTR (full self-attn)": ("maptr", {"self_attn": "full"}),
    "MapTR (decoupled self-attn)": ("maptr", {"self_attn": "decoupled"}),
    "MapQR (concat gather)": ("mapqr", {"gather": "concat"}),
    "MapQR (mean gather)": ("mapqr", {"gather": "mean"}),
}
"""Row name -> (config family, head overrides)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``tools/benchmark.py maphead``."""
    parser.add_argument("--setting", choices=("tiny", "full", "both"), default="both",
                        help="head configs to time (default both)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 7, --quick 2)")
    parser.add_argument("--train", action="store_true", help="also time a training step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny setting, 2 rounds")


def _head_config(setting: str, family: str, overrides: dict[str, Any]) -> tuple[dict, tuple[int, int]]:
    """The head's config and the ``(H, W)`` of the BEV its detector gives it."""
    from perception.config import load_config

    cfg = load_config(str(REPO_ROOT / CONFIGS[setting][family])).model
    layer = cfg.data_preprocessor.voxel_layer
    pcr, size = np.asarray(layer.point_cloud_range), np.asarray(layer.voxel_size)
    width, height = np.round((pcr[3:5] - pcr[:2]) / size[:2]).astype(int)
    strides = cfg.pts_middle_encoder.get("encoder_channels")
    stride = 2 ** (len(strides) - 1)  # sparse encoder downsampling; SECOND + FPN return to it
    stride *= int(cfg.pts_backbone.layer_strides[0]) // int(cfg.pts_neck.upsample_strides[0])
    head = copy.deepcopy(dict(cfg.map_head))
    head.update(overrides)
    return head, (int(height // stride), int(width // stride))


def _sample(num_points: int, seed: int) -> Any:
    """A fixed synthetic ground truth for the training step: 12 lines and 3 crossings."""
    from perception.structures.det_sample import DetSample
    from perception.structures.map_instances import MapInstances

    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, num_points)[:, None]
    starts, ends = rng.uniform([-14, -29], [14, 29], (15, 2)), rng.uniform([-14, -29], [14, 29], (15, 2))
    points = starts[:, None] + (ends - starts)[:, None] * t[None]
    labels = np.r_[np.zeros(8), np.full(3, 1), np.full(4, 2)].astype(int)
    gt = MapInstances(points, labels, ("divider", "ped_crossing", "boundary"), labels == 1)
    return DetSample("bench", ("car",), np.eye(4), np.zeros((0, 9)), np.zeros(0), gt_map=gt)


def _timed_functions(setting: str, seed: int, train: bool) -> tuple[dict[str, Callable[[], Any]], dict]:
    from perception.registry import MODELS

    fns: dict[str, Callable[[], Any]] = {}
    info: dict[str, Any] = {}
    gen = torch.Generator().manual_seed(seed)
    for name, (family, overrides) in VARIANTS.items():
        head_cfg, (height, width) = _head_config(setting, family, overrides)
        torch.manual_seed(seed)
        with DefaultScope.overwrite_default_scope("perception"):
            head = MODELS.build(head_cfg)
        bev = torch.randn(1, head.in_channels, height, width, generator=gen)
        info[name] = {"params": sum(p.numel() for p in head.parameters()), "bev": [1, head.in_channels, height, width],
                      "queries": head.num_queries, "points": head.num_points, "layers": head.num_layers,
                      "embed_dims": head.embed_dims, "one_to_many": head.one_to_many}

        def infer(head: Any = head, bev: torch.Tensor = bev) -> Any:
            head.eval()
            with torch.no_grad():
                return head(bev)
        fns[f"{name}|infer"] = infer
        if train:
            sample = _sample(head.num_points, seed)

            def step(head: Any = head, bev: torch.Tensor = bev, sample: Any = sample) -> None:
                head.train()
                sum(head.loss(bev, [sample]).values()).backward()
                head.zero_grad(set_to_none=True)
            fns[f"{name}|train"] = step
    return fns, info


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every figure of the benchmark (JSON-ready); see the module doc."""
    settings = ["tiny"] if args.quick else (["tiny", "full"] if args.setting == "both" else [args.setting])
    repeats = (2 if args.quick else 7) if args.repeats is None else args.repeats
    if repeats < 1:
        raise ValueError("--repeats must be >= 1")
    started = time.perf_counter()
    results: dict[str, Any] = {}
    with torch_threads(args.threads):
        load_before = machine_load(args.threads)
        for setting in settings:
            fns, info = _timed_functions(setting, args.seed, args.train)
            timings = measure_interleaved(fns, repeats=repeats, warmup=1)
            rows = {}
            for key, timing in timings.items():
                name, mode = key.split("|")
                row = rows.setdefault(name, dict(info[name]))
                row[mode] = {**timing.as_dict(), "fps": 1.0 / timing.median}
            results[setting] = rows
        load_after = machine_load(0)
    return {"benchmark": "maphead",
            "command": " ".join(["tools/benchmark.py", *sys.argv[1:]]) if sys.argv and sys.argv[0].endswith(
                "benchmark.py") else None,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "seconds": time.perf_counter() - started,
            "machine": {**machine_info(args.threads), "load_before": load_before.as_dict(),
                        "load_after": load_after.as_dict()},
            "settings": {"setting": settings, "repeats": repeats, "train": args.train, "seed": args.seed,
                         "configs": {s: CONFIGS[s] for s in settings}},
            "results": results,
            "notes": [f"machine before the run: {load_before.note()}",
                      f"machine after the run (includes the benchmark's own threads): {load_after.note()}"]}


def markdown(figures: dict[str, Any]) -> str:
    """The report: machine, one table per setting (params, ms, FPS; MapQR / MapTR speed-up)."""
    m = figures["machine"]
    lines = [f"Date: {figures['date']}; machine: {m['cpu']} ({m['cpus']} CPUs), {m['threads']} torch threads; "
             f"torch {m['torch']}; {figures['seconds']:.0f} s; {figures['settings']['repeats']} interleaved "
             f"rounds, medians; input: a fixed random BEV map, batch 1.", ""]
    for setting, rows in figures["results"].items():
        first = next(iter(rows.values()))
        lines += [f"### {setting} heads ({figures['settings']['configs'][setting]['maptr']} / mapqr): BEV "
                  f"{'x'.join(map(str, first['bev']))}, {first['queries']} queries x {first['points']} points, "
                  f"{first['layers']} layers, {first['embed_dims']} channels", "",
                  "| head | params | infer ms | infer FPS | IQR ms | train step ms |", "|---|---|---|---|---|---|"]
        for name, row in rows.items():
            train = f"{row['train']['median_ms']:.1f}" if "train" in row else "-"
            lines.append(f"| {name} | {row['params']:,} | {row['infer']['median_ms']:.1f} | "
                         f"{row['infer']['fps']:.1f} | {row['infer']['iqr_ms']:.1f} | {train} |")
        maptr, mapqr = rows.get("MapTR (full self-attn)"), rows.get("MapQR (concat gather)")
        if maptr and mapqr:
            lines += ["", f"MapQR (concat) / MapTR (full) inference speed: "
                          f"{maptr['infer']['median_ms'] / mapqr['infer']['median_ms']:.2f}x"]
        lines.append("")
    lines += ["### Notes", ""] + [f"- {n}" for n in figures["notes"]]
    return "\n".join(lines) + "\n"
