"""BEVFusion full-model frames per second: camera-only, LiDAR-only and camera + LiDAR.

    python tools/benchmark.py bevfusion [--device cuda] [--threads 2] [--repeats 5] [--quick]

Input: the real nuScenes keyframe of ../shared/data (six 1600x900 images, its LiDAR cloud and
calibration) through each config's own test pipeline once (image resize/crop to 256x704,
normalization, range filter); the timed part is ``model.test_step`` on that collated batch
(data preprocessor with voxelization, image backbone/neck/view transform, LiDAR encoder, fuser,
decoder, head decoding and NMS), random weights (seeded), eval mode, no_grad; on CUDA the
device is synchronized after each frame.  The three models are timed interleaved round by
round (:func:`~perception.benchmarks.timing.measure_interleaved`), so machine load hits them
alike; FPS = 1 / median frame time.  ``--quick`` (a smoke run): 1 round, the tiny synthetic
configs on the same keyframe.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch
from mmengine.dataset import pseudo_collate

from ..apis import init_model
from ..apis.inference import build_test_pipeline
from ..structures import CAMERA_NAMES_NUSCENES, Frame
from . import machine_info
from .sparse_inputs import REPO_ROOT, SHARED_KEYFRAME
from .timing import machine_load, measure_interleaved, torch_threads

CONFIG_DIR = REPO_ROOT / "configs" / "bevfusion"
MODALITIES: tuple[str, ...] = ("camera", "lidar", "fusion")
FULL_CONFIGS = {m: CONFIG_DIR / f"bevfusion_det_{m}_nuscenes.py" for m in MODALITIES}
QUICK_CONFIGS = {m: CONFIG_DIR / f"bevfusion_det_{m}_tiny_synthetic.py" for m in MODALITIES}


def keyframe_with_cameras(root: Path = SHARED_KEYFRAME, sweeps: int = 9) -> Frame:
    """The real nuScenes keyframe (files side by side in ``root``) with its six cameras."""
    from ..datasets import NuScenesDataset

    pickles = sorted(root.glob("*.pkl")) if root.is_dir() else []
    if not pickles:
        raise FileNotFoundError(f"no nuScenes keyframe info pickle in {root} (see ../shared/data/README.md)")
    flat = {key: "" for key in ("pts", "sweeps", *CAMERA_NAMES_NUSCENES)}
    dataset = NuScenesDataset(ann_file=str(pickles[0].resolve()), data_root=str(root.resolve()), data_prefix=flat,
                              load_sweeps=sweeps, with_cameras=True)
    return dataset.get_frame(0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``tools/benchmark.py bevfusion``."""
    parser.add_argument("--data-root", type=Path, default=SHARED_KEYFRAME,
                        help="nuScenes keyframe folder (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 5, --quick 1)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    parser.add_argument("--modalities", nargs="+", choices=MODALITIES, default=list(MODALITIES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny synthetic configs, 1 round")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _frame_fn(model: torch.nn.Module, batch: dict, device: torch.device):
    def run_once() -> Any:
        with torch.no_grad():
            out = model.test_step(batch)
        _sync(device)
        return out
    return run_once


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every figure of the benchmark (JSON-ready); see the module doc."""
    configs = QUICK_CONFIGS if args.quick else FULL_CONFIGS
    repeats = (1 if args.quick else 5) if args.repeats is None else args.repeats
    device = torch.device(args.device)
    started = time.perf_counter()
    with torch_threads(args.threads):
        load = machine_load(args.threads)
        frame = keyframe_with_cameras(args.data_root)
        fns, models = {}, {}
        for modality in args.modalities:
            torch.manual_seed(args.seed)
            model = init_model(configs[modality], device=device)
            data = build_test_pipeline(model.cfg)({"frame": frame, "sample_idx": 0})
            batch = pseudo_collate([data])
            fns[modality] = _frame_fn(model, batch, device)
            models[modality] = {"config": str(configs[modality].relative_to(REPO_ROOT)),
                                "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
                                "images": list(data["inputs"]["imgs"].shape) if "imgs" in data["inputs"] else None,
                                "points": int(len(data["inputs"]["points"])),
                                "boxes": int(len(fns[modality]()[0].pred))}
        timings = measure_interleaved(fns, repeats=repeats, warmup=args.warmup)
    results = {m: {**models[m], **t.as_dict(), "fps": 1.0 / t.median} for m, t in timings.items()}
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine_info(args.threads),
            "device": str(device), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "settings": {"repeats": repeats, "warmup": args.warmup, "quick": args.quick, "seed": args.seed},
            "input": {"token": frame.token, "points": int(len(frame.points)), "cameras": len(frame.cameras)},
            "results": results, "notes": [f"machine before the run: {load.note()}"],
            "seconds": time.perf_counter() - started}


def markdown(figures: dict[str, Any]) -> str:
    """The report: machine, input, one row per modality."""
    m = figures["machine"]
    where = figures["gpu"] or f"{m['cpu']} ({m['cpus']} CPUs, {m['threads']} torch threads)"
    lines = [f"Date: {figures['date']}; device {figures['device']}: {where}; torch {m['torch']}; "
             f"{figures['seconds']:.0f} s.", "",
             f"Input: nuScenes keyframe `{figures['input']['token']}`, {figures['input']['points']:,} points, "
             f"{figures['input']['cameras']} cameras; random weights, eval mode, no_grad; "
             f"{figures['settings']['warmup']} warm-up + {figures['settings']['repeats']} timed rounds, interleaved; "
             "FPS = 1 / median frame time of `model.test_step` (preprocessing, voxelization, encoders, fuser, "
             "decoder, head decoding + NMS; the data pipeline runs once beforehand).", "",
             "| modality | config | params (M) | input | median ms (IQR) | FPS |", "|---|---|---|---|---|---|"]
    for name, r in figures["results"].items():
        imgs = r["images"]
        inp = f"{r['points']:,} pts" + (f" + {imgs[0]}x{imgs[2]}x{imgs[3]} imgs" if imgs else "")
        lines.append(f"| {name} | `{r['config']}` | {r['params_m']:.1f} | {inp} | {r['median_ms']:.0f} "
                     f"({r['iqr_ms']:.0f}) | {r['fps']:.2f} |")
    lines += ["", "### Notes", ""] + [f"- {n}" for n in figures["notes"]]
    return "\n".join(lines) + "\n"
