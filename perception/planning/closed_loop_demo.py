"""Compare planners in the synthetic world: open-loop L2 / collisions and closed-loop runs.

    python -m perception.planning.closed_loop_demo --out demo/gallery/planning_closed_loop.png \
        [--json results.json] [--str-config C --str-checkpoint W] [--train-worlds 8 --val-worlds 4]

Train worlds (seeds ``0..n-1``) train the MLP planner; val worlds (seeds from 1000) give the
open-loop metrics (:func:`perception.evaluation.planning_metrics.evaluate_open_loop`, a scene
every 0.5 s with 2 s of history and 3 s of future) and one closed-loop run each
(:func:`.closed_loop.run_closed_loop`).  Planners: the expert log replay (reference),
constant velocity, the MLP and, when given, STR.  The PNG shows the first val world.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ..evaluation.planning_metrics import evaluate_open_loop
from .baselines import ConstantVelocityPlanner, MLPPlanner
from .closed_loop import ClosedLoopConfig, LogReplayPlanner, run_closed_loop, summarize
from .closed_loop_plot import draw_closed_loop
from .closed_loop_world import ClosedLoopWorld, synthetic_world, training_scenes

HISTORY_STEPS, FUTURE_STEPS = 20, 30


def build_worlds(seeds: Sequence[int], prefix: str, duration_s: float) -> list[ClosedLoopWorld]:
    """One simulated world per seed (the town is built once)."""
    from ..datasets.synthetic.world import build_town

    town = build_town("synth-town")
    return [synthetic_world(f"{prefix}-{seed}", seed, duration_s=duration_s, town=town)
            for seed in tqdm(seeds, desc=f"{prefix} worlds")]


class _ExpertForWorld:
    """Log replay of whichever val world the scene comes from (scene ids are ``world@index``)."""

    def __init__(self, worlds: Sequence[ClosedLoopWorld]) -> None:
        self.by_name = {w.name: LogReplayPlanner(w, FUTURE_STEPS) for w in worlds}

    def plan(self, scene: Any) -> np.ndarray:
        return self.by_name[scene.scene_id.split("@")[0]].plan(scene)


def compare(train: Sequence[ClosedLoopWorld], val: Sequence[ClosedLoopWorld], extra: dict[str, Any],
            epochs: int, duration_s: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """Figures (open loop and closed loop per planner) and the planners themselves."""
    torch.manual_seed(0)
    mlp = MLPPlanner(num_future=FUTURE_STEPS)
    train_scenes = [s for w in train for s in training_scenes(w, HISTORY_STEPS, FUTURE_STEPS, 2)]
    losses = mlp.fit(train_scenes, epochs=epochs, progress=True)
    planners = {"constant_velocity": ConstantVelocityPlanner(FUTURE_STEPS), "mlp": mlp, **extra}
    val_scenes = [s for w in val for s in training_scenes(w, HISTORY_STEPS, FUTURE_STEPS, 5)]
    figures: dict[str, Any] = {"train_scenes": len(train_scenes), "val_scenes": len(val_scenes),
                               "mlp_loss": [losses[0], losses[-1]], "open_loop": {}, "closed_loop": {}}
    figures["open_loop"]["expert"] = evaluate_open_loop(_ExpertForWorld(val), val_scenes)
    for name, planner in planners.items():
        figures["open_loop"][name] = evaluate_open_loop(planner, val_scenes)
    config = ClosedLoopConfig(duration_s=duration_s, history_steps=HISTORY_STEPS)
    runs: dict[str, list[Any]] = {}
    for name, planner in {"expert": None, **planners}.items():
        runs[name] = [run_closed_loop(w, LogReplayPlanner(w, FUTURE_STEPS) if planner is None else planner, config)
                      for w in tqdm(val, desc=f"closed loop {name}")]
        figures["closed_loop"][name] = summarize(runs[name])
    return figures, runs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="PNG of the first val world's runs")
    parser.add_argument("--json", type=Path, default=None, help="write the figures")
    parser.add_argument("--train-worlds", type=int, default=8)
    parser.add_argument("--val-worlds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=8.0, help="closed-loop seconds (and world length)")
    parser.add_argument("--epochs", type=int, default=60, help="MLP planner epochs")
    parser.add_argument("--str-config", type=Path, default=None)
    parser.add_argument("--str-checkpoint", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.train_worlds < 1 or args.val_worlds < 1:
        raise SystemExit("--train-worlds and --val-worlds must be >= 1")
    extra: dict[str, Any] = {}
    if args.str_config is not None:
        from .str_planner import STRPlanner

        extra["str"] = STRPlanner.from_config(args.str_config, args.str_checkpoint)
    duration = max(args.duration, 0.1 * FUTURE_STEPS + 1.0)
    train = build_worlds(range(args.train_worlds), "train", duration)
    val = build_worlds(range(1000, 1000 + args.val_worlds), "val", duration)
    figures, runs = compare(train, val, extra, args.epochs, args.duration)
    draw_closed_loop(args.out, val[0], {name: results[0] for name, results in runs.items()},
                     ClosedLoopConfig(duration_s=args.duration))
    text = json.dumps(figures, indent=1, default=float)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
