"""Planner latency: ``plan(scene)`` per frame on this CPU, for every STR size and the baselines.

    python tools/benchmark.py planner [--json PATH] [--markdown PATH] [--sizes tiny,small] [--quick]

Scenes: ``--scenes`` planning scenes cut from a simulated synthetic world
(:mod:`perception.planning.closed_loop_world`: 2 s of history at 10 Hz, every agent within
80 m, the map), the input a planner gets each frame in the closed loop and the end-to-end
path.  Planners: the constant-velocity baseline, the MLP planner and the STR model at each
size preset of :data:`perception.models.planning.PRESETS` behind its ``plan(scene)`` adapter
:class:`perception.planning.str_planner.STRPlanner` (weights are random: latency does not
depend on them).  Every planner plans every scene once per round, the planners interleaved round by
round (:func:`.timing.measure_interleaved`); the figure is the median round time divided by
the number of scenes, so the per-frame latency includes feature building.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Callable

import torch

from . import machine_info
from .timing import machine_load, measure_interleaved, torch_threads

STR_KEYPOINT_TIMES = (6.0, 4.0, 2.0, 1.0, 0.5)
"""Key points of the benchmarked STR (within the default 6 s feature horizon)."""
PLAN_STEPS = 60
"""Horizon of every benchmarked planner: 6 s at 0.1 s, STR's (the default FeatureConfig) and the baselines'."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``tools/benchmark.py planner``."""
    parser.add_argument("--sizes", default=None, help="comma-separated STR size presets (default: all)")
    parser.add_argument("--planners", default="cv,mlp,str", help="subset of cv,mlp,str (default: all)")
    parser.add_argument("--scenes", type=int, default=None, help="scenes per round (default 20, --quick 4)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 5, --quick 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke test: 4 scenes, 2 rounds, sizes tiny and small")


def _str_factory() -> tuple[Callable[[str], Any] | None, str]:
    """``size -> STRPlanner`` with a random-weight STR of that backbone preset, and a note."""
    try:
        from ..models.planning import STR  # noqa: F401  (registers the model)
        from ..planning.motion_features import FeatureConfig
        from ..planning.str_planner import STRPlanner
    except ModuleNotFoundError as error:
        return None, f"STR not importable ({error}): STR sizes not measured"
    from ..registry import MODELS

    features = FeatureConfig()

    def build(size: str) -> Any:
        model = MODELS.build(dict(type="STR", backbone=dict(preset=size), future_steps=features.future_steps,
                                  history_frames=features.history_frames, keypoint_times=STR_KEYPOINT_TIMES))
        return STRPlanner(model, features)

    return build, (f"STR: perception.planning.str_planner.STRPlanner on a random-weight STR per backbone preset, "
                   f"default FeatureConfig ({features.history_frames} history frames, {features.future_steps} "
                   f"future steps, up to {features.max_agents} agents and {features.max_polylines} map pieces)")


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    from ..models.planning import PRESETS

    planners = [p.strip() for p in args.planners.split(",") if p.strip()]
    unknown = sorted(set(planners) - {"cv", "mlp", "str"})
    if unknown or not planners:
        raise ValueError(f"--planners must be a subset of cv,mlp,str; got {args.planners!r}")
    sizes = [s.strip() for s in (args.sizes or ("tiny,small" if args.quick else ",".join(PRESETS))).split(",")
             if s.strip()]
    bad = sorted(set(sizes) - set(PRESETS))
    if bad:
        raise ValueError(f"--sizes {bad} are not STR presets {sorted(PRESETS)}")
    scenes = args.scenes if args.scenes is not None else (4 if args.quick else 20)
    repeats = args.repeats if args.repeats is not None else (2 if args.quick else 5)
    if scenes < 1 or repeats < 1 or args.threads < 1:
        raise ValueError("--scenes, --repeats and --threads must be >= 1")
    return {"planners": planners, "sizes": sizes, "scenes": scenes, "repeats": repeats, "threads": args.threads,
            "seed": args.seed, "quick": bool(args.quick)}


def _scenes(count: int, seed: int) -> list[Any]:
    from ..planning.closed_loop_world import scene_at, synthetic_world

    world = synthetic_world("planner-benchmark", seed, duration_s=max(2.0, 0.1 * count + 0.5))
    indices = [world.start_index + k for k in range(count)]
    return [scene_at(world, index, history_steps=20) for index in indices]


def _parameters(planner: Any) -> int | None:
    module = planner if isinstance(planner, torch.nn.Module) else getattr(planner, "model", None)
    return sum(p.numel() for p in module.parameters()) if isinstance(module, torch.nn.Module) else None


def _planners(settings: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    from ..planning.baselines import ConstantVelocityPlanner, MLPPlanner

    planners: dict[str, Any] = {}
    if "cv" in settings["planners"]:
        planners["constant_velocity"] = ConstantVelocityPlanner(num_future=PLAN_STEPS)
    if "mlp" in settings["planners"]:
        torch.manual_seed(settings["seed"])
        planners["mlp"] = MLPPlanner(num_future=PLAN_STEPS).eval()
    if "str" in settings["planners"]:
        factory, note = _str_factory()
        notes.append(note)
        if factory is not None:
            for size in settings["sizes"]:
                torch.manual_seed(settings["seed"])
                planners[f"str_{size}"] = factory(size)
    return planners


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every figure of the benchmark (JSON-ready); see the module doc."""
    settings = _settings(args)
    started = time.perf_counter()
    notes: list[str] = []
    with torch_threads(settings["threads"]), torch.inference_mode():
        load_before = machine_load(settings["threads"])
        scenes = _scenes(settings["scenes"], settings["seed"])
        planners = _planners(settings, notes)

        def plan_all(planner: Any) -> Callable[[], None]:
            return lambda: [planner.plan(scene) for scene in scenes]

        timings = measure_interleaved({name: plan_all(p) for name, p in planners.items()},
                                      repeats=settings["repeats"], warmup=1)
        load_after = machine_load(0)
    notes.append(f"machine before the run: {load_before.note()}")
    notes.append(f"machine after the run: {load_after.note()}")
    count = len(scenes)
    results = {name: {"per_frame_ms": t.median * 1e3 / count, "iqr_ms": t.iqr * 1e3 / count,
                      "min_ms": t.minimum * 1e3 / count, "parameters": _parameters(planners[name]),
                      "horizon_steps": int(len(planners[name].plan(scenes[0])))}
               for name, t in timings.items()}
    return {"benchmark": "planner",
            "command": " ".join(["tools/benchmark.py", *sys.argv[1:]]) if sys.argv and sys.argv[0].endswith(
                "benchmark.py") else None,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "seconds": time.perf_counter() - started,
            "machine": {**machine_info(settings["threads"]), "load_before": load_before.as_dict(),
                        "load_after": load_after.as_dict()},
            "settings": settings, "scene_agents": sum(len(s.agents) for s in scenes) / count,
            "planners": results, "notes": notes}


def markdown(figures: dict[str, Any]) -> str:
    """The report: one row per planner."""
    machine, settings = figures["machine"], figures["settings"]
    lines = ["# Planner latency (plan(scene) per frame)", "",
             f"{machine['cpu']} ({machine['cpus']} CPUs), torch {machine['torch']}, {settings['threads']} thread(s); "
             f"{settings['scenes']} scenes x {settings['repeats']} rounds, "
             f"{figures['scene_agents']:.1f} agents per scene on average.", "",
             "| planner | parameters | horizon (steps) | per frame ms (median) | IQR ms | min ms |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, row in figures["planners"].items():
        params = "-" if row["parameters"] is None else f"{row['parameters']:,}"
        lines.append(f"| {name} | {params} | {row['horizon_steps']} | {row['per_frame_ms']:.3f} | "
                     f"{row['iqr_ms']:.3f} | {row['min_ms']:.3f} |")
    lines += ["", *[f"- {note}" for note in figures["notes"]]]
    return "\n".join(lines) + "\n"
