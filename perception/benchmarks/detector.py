"""Detector frames per second: the full nuScenes CenterPoint, native vs spconv sparse backend.

    python tools/benchmark.py detector [--json PATH] [--markdown PATH] [--threads 2] [--quick]
    python tools/benchmark.py detector --config configs/centerpoint/OTHER.py --input av2-sweep

The config (default: ``configs/centerpoint/centerpoint_voxel0075_second_secfpn_10sweeps_
nuscenes.py``) is built once per sparse backend (``model.pts_middle_encoder.
sparseconv_backend``; spconv skipped with a note when not importable) with the same random
weights, in eval mode, and run by ``perception.apis.inference_detector`` (test pipeline +
``test_step`` under ``no_grad``) on one real frame (:mod:`.detector_inputs`): interleaved
rounds after a warm-up, median and IQR of the frame time and of each stage
(:mod:`.detector_stages`: pipeline, voxelize, encoder, backbone+neck, head, decode/NMS).
Before timing, the head outputs of every backend are compared with the first's (same weights,
same voxels: they must agree to float32 rounding).  ``--quick`` (smoke test) takes the tiny
synthetic config and 2 rounds.  Random weights: figures of speed, not of accuracy.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch
from mmengine.config import DictAction
from mmengine.dataset import pseudo_collate
from torch import Tensor, nn

from . import machine_info
from .detector_inputs import INPUTS, BenchFrame, load_frame
from .detector_report import markdown  # noqa: F401  (markdown: dispatcher API)
from .detector_stages import REPORT_STAGES, time_models
from .sparse_inputs import REPO_ROOT
from .timing import machine_load, torch_threads

CONFIGS = REPO_ROOT / "configs" / "centerpoint"
DEFAULT_CONFIG = CONFIGS / "centerpoint_voxel0075_second_secfpn_10sweeps_nuscenes.py"
QUICK_CONFIG = CONFIGS / "centerpoint_tiny_synthetic.py"
BACKEND_KEY = "model.pts_middle_encoder.sparseconv_backend"
BACKENDS = ("native", "spconv")
CHECK_TOLERANCE = 1e-3
"""Largest head-output difference between backends, relative to the outputs' largest value."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``tools/benchmark.py detector``."""
    parser.add_argument("--config", type=Path, default=None,
                        help=f"detector config (default {DEFAULT_CONFIG.relative_to(REPO_ROOT)}; "
                             f"--quick: {QUICK_CONFIG.relative_to(REPO_ROOT)})")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default=None,
                        metavar="KEY=VALUE", help="config overrides (mmengine syntax)")
    parser.add_argument("--input", default="nuscenes-keyframe",
                        choices=(*INPUTS, "random"), help="frame (default %(default)s)")
    parser.add_argument("--points", type=int, default=20000, help="points of --input random")
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS,
                        help="sparse backends compared (default: both)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="timed interleaved rounds (default 7, --quick 2)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--no-check", action="store_true",
                        help="skip the backend cross-check of the head outputs")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: the tiny synthetic config (unless --config), 2 rounds")


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    config = Path(args.config or (QUICK_CONFIG if args.quick else DEFAULT_CONFIG)).resolve()
    if config.is_relative_to(REPO_ROOT):
        config = config.relative_to(REPO_ROOT)  # reports name repo configs as in the README
    return {"config": str(config), "cfg_options": dict(args.cfg_options or {}),
            "input": args.input, "points": args.points if args.input == "random" else None,
            "backends": list(dict.fromkeys(args.backends)), "threads": args.threads,
            "rounds": args.rounds or (2 if args.quick else 7), "warmup": args.warmup,
            "seed": args.seed, "device": args.device, "check": not args.no_check,
            "quick": args.quick}


def available_backends(cfg: Any, wanted: Iterable[str]) -> tuple[dict[str, dict], list[str]]:
    """Config overrides per backend to measure, and notes on the ones left out."""
    encoder = cfg.get("model", {}).get("pts_middle_encoder") or {}
    if "sparseconv_backend" not in encoder:
        return {"as configured": {}}, [f"{cfg.filename}: model.pts_middle_encoder has no "
                                       f"sparseconv_backend; measured as configured"]
    from perception_ops.sparse.backends import BACKENDS as REGISTRY, SPCONV_INSTALL_HINT
    chosen, notes = {}, []
    for name in wanted:
        if REGISTRY[name].is_available():
            chosen[name] = {BACKEND_KEY: name}
        else:
            notes.append(f"backend {name} is not importable, left out ({SPCONV_INSTALL_HINT})")
    if not chosen:
        raise ValueError(f"none of the backends {list(wanted)} is available")
    return chosen, notes


def build_models(config: str, overrides: Mapping[str, dict], cfg_options: Mapping[str, Any],
                 device: str, seed: int) -> dict[str, nn.Module]:
    """One eval model per backend, all with the first one's random weights (state dicts
    move between backends: both store conv weights KRSC)."""
    from ..apis import init_model

    torch.manual_seed(seed)
    models: dict[str, nn.Module] = {}
    for name, override in overrides.items():
        model = init_model(config, device=device, cfg_options={**cfg_options, **override})
        if models:
            model.load_state_dict(next(iter(models.values())).state_dict())
        models[name] = model
    return models


def head_class_names(model: nn.Module) -> tuple[str, ...]:
    """The classes the model's head predicts (flattened over tasks), or () when unknown."""
    names = getattr(getattr(model, "pts_bbox_head", None), "class_names", None) or ()
    return tuple(n for group in names for n in ([group] if isinstance(group, str) else group))


def frame_for(frame: BenchFrame, classes: tuple[str, ...]) -> tuple[BenchFrame, str | None]:
    """``frame`` relabelled with the model's classes (ground truth dropped) when its own
    class list lacks some of them (e.g. the AV2 config on the nuScenes keyframe)."""
    if not classes or set(classes) <= set(frame.frame.class_names):
        return frame, None
    from ..structures import Boxes3D

    relabelled = dataclasses.replace(frame.frame, class_names=classes, boxes=Boxes3D.empty())
    return (dataclasses.replace(frame, frame=relabelled),
            f"input {frame.name}: its class list lacks the model's classes; relabelled with "
            f"the model's {len(classes)} classes (ground truth dropped: not used for timing)")


def _head_tensors(output: Any) -> list[Tensor]:
    if isinstance(output, Tensor):
        return [output]
    if isinstance(output, Mapping):
        return [t for key in sorted(output) for t in _head_tensors(output[key])]
    if isinstance(output, (list, tuple)):
        return [t for item in output for t in _head_tensors(item)]
    return []


def count_voxels(voxels: Mapping[str, Tensor]) -> int:
    """Voxels of a preprocessor output: rows of hard voxels, distinct cells of dynamic ones."""
    coors = voxels.get("coors")
    if coors is None:
        return 0
    return int(coors.shape[0]) if "voxels" in voxels else int(torch.unique(coors, dim=0).shape[0])


@torch.no_grad()
def compare_backends(models: Mapping[str, nn.Module], frame: BenchFrame) -> dict[str, Any]:
    """Voxel count and, against the first model, the largest difference of the raw head
    outputs (``mode="tensor"``) of every other model on the same frame."""
    from ..apis.inference import build_test_pipeline

    outputs: dict[str, list[Tensor]] = {}
    voxels = points = 0
    for name, model in models.items():
        batch = pseudo_collate([build_test_pipeline(model.cfg)(
            {"frame": frame.frame, "sample_idx": 0})])
        data = model.data_preprocessor(batch, False)
        outputs[name] = [t.float().cpu() for t in _head_tensors(model(**data, mode="tensor"))]
        voxels = count_voxels(data["inputs"].get("voxels") or {})
        points = int(data["inputs"]["points"][0].shape[0])
    reference, *others = outputs
    scale = max(float(t.abs().max()) for t in outputs[reference])
    pairs = {}
    for name in others:
        diff = max(float((a - b).abs().max()) for a, b in zip(outputs[reference], outputs[name]))
        pairs[name] = {"max_abs": diff, "relative": diff / max(scale, 1e-12),
                       "ok": diff <= CHECK_TOLERANCE * max(scale, 1e-12)}
    return {"reference": reference, "points": points, "voxels": voxels, "scale": scale,
            "tolerance": CHECK_TOLERANCE, "pairs": pairs}


def _sync_for(device: str) -> Callable[[], None]:
    dev = torch.device(device)
    if dev.type == "cuda":
        return lambda: torch.cuda.synchronize(dev)
    return lambda: None


def _model_info(model: nn.Module, cfg: Any) -> dict[str, Any]:
    layer = (cfg.model.get("data_preprocessor") or {}).get("voxel_layer") or {}
    return {"type": type(model).__name__, "params": sum(p.numel() for p in model.parameters()),
            "voxel_size": layer.get("voxel_size", cfg.get("voxel_size")),
            "point_cloud_range": layer.get("point_cloud_range", cfg.get("point_cloud_range")),
            "sparse_shape": (cfg.model.get("pts_middle_encoder") or {}).get("sparse_shape"),
            "classes": list(head_class_names(model))}


def _command() -> str | None:
    argv = sys.argv
    return " ".join(["tools/benchmark.py", *argv[1:]]) if argv and argv[0].endswith(
        "benchmark.py") else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every figure of the benchmark (JSON-ready); see the module doc."""
    from ..apis import inference_detector
    from ..config import load_config

    settings = _settings(args)
    config = REPO_ROOT / settings["config"]  # absolute paths stay as they are
    cfg = load_config(config, settings["cfg_options"])
    started = time.perf_counter()
    with torch_threads(args.threads):
        load_before = machine_load(args.threads)
        notes = [f"machine before the run: {load_before.note()}"]
        threads = {"intra_op": torch.get_num_threads(),
                   "inter_op": torch.get_num_interop_threads()}
        frame = load_frame(settings["input"], args.points, cfg.get("point_cloud_range"))
        overrides, skipped = available_backends(cfg, settings["backends"])
        notes += skipped
        models = build_models(str(config), overrides, settings["cfg_options"],
                              settings["device"], settings["seed"])
        first = next(iter(models.values()))
        frame, note = frame_for(frame, head_class_names(first))
        notes += [note] if note else []
        check = compare_backends(models, frame) if settings["check"] else None
        results = time_models(models, frame.frame, inference_detector, settings["rounds"],
                              settings["warmup"], sync=_sync_for(settings["device"]))
        load_after = machine_load(0)
    notes.append(f"machine after the run (includes the benchmark's own {args.threads} "
                 f"threads): {load_after.note()}")
    if args.threads > 1 and (load_before.high or load_after.high):
        notes.append(f"{args.threads} torch threads on a loaded machine: every OpenMP parallel "
                     f"region waits for its slowest thread, which another job may have "
                     f"descheduled; compare with a --threads 1 run")
    figures: dict[str, Any] = {
        "benchmark": "detector", "command": _command(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "seconds": time.perf_counter() - started,
        "machine": {**machine_info(args.threads), "torch_threads": threads,
                    "load_before": load_before.as_dict(), "load_after": load_after.as_dict()},
        "settings": settings, "model": _model_info(first, cfg), "input": frame.describe(),
        "stages": [s for s in REPORT_STAGES if s in next(iter(results.values()))["stages"]],
        "check": check, "results": results, "notes": notes}
    figures["ratios"] = ratios(results)
    return figures


def ratios(results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """spconv / native median times (total and per stage): > 1 means native is faster."""
    if "native" not in results or "spconv" not in results:
        return {}
    native, spconv = results["native"], results["spconv"]
    out = {"total": spconv["total"]["median_ms"] / native["total"]["median_ms"]}
    for stage, timing in native["stages"].items():
        if timing["median_ms"] > 0 and stage in spconv["stages"]:
            out[stage] = spconv["stages"][stage]["median_ms"] / timing["median_ms"]
    return out
