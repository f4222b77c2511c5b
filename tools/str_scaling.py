"""STR scaling study and proof run: several backbone sizes, the same data, the same token budget.

    python tools/str_scaling.py all --data-root data/synthetic_motion/av2/motion-forecasting \\
        --sizes tiny mini small --tokens 2e6 --work-dir work_dirs/str_scaling

Stages (``all`` runs the three in a row; they can run on different machines):

* ``prepare`` (needs av2): reads the train / val scenarios into pickled
  :class:`~perception.planning.str_training.FeatureBank`\\ s (tracks + map pieces, a few MB) and
  the baselines' validation predictions -- constant velocity
  (:mod:`perception.planning.baselines`) for every target and the plain MLP planner trained on
  the same training targets for the ego;
* ``train`` (torch + numpy only): encodes the banks, trains each size with AdamW for
  ``--tokens`` training tokens (steps = tokens / (batch x sequence length), so every size sees
  the same tokens), records the validation loss (teacher-forced, the training objective) and the
  validation predictions;
* ``report`` (needs av2): minADE / minFDE / MR / brier-minFDE (K=6) and the ego plan's L2 with
  av2's metric functions for every size and the baselines, the scaling plot (validation loss vs
  parameters) as ``--png`` and everything as ``--json``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from perception.planning.motion_features import to_local_xy  # noqa: E402
from perception.planning.str_training import (FeatureBank, evaluate_loss, predict_tensors,  # noqa: E402
                                              train_for_tokens)

FEATURES = dict(history_frames=10, history_stride=2, future_steps=60, max_agents=32, max_polylines=64)
KEYPOINT_TIMES = (6.0, 4.0, 2.0, 1.0, 0.5)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stage", choices=("prepare", "train", "report", "all"))
    parser.add_argument("--data-root", type=Path, default=REPO_ROOT / "data/synthetic_motion/av2/motion-forecasting")
    parser.add_argument("--work-dir", type=Path, default=REPO_ROOT / "work_dirs/str_scaling")
    parser.add_argument("--sizes", nargs="+", default=["tiny", "mini", "small"], help="gpt2.PRESETS names")
    parser.add_argument("--tokens", type=float, default=2e6, help="training tokens per size")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--train-offsets", type=int, nargs="+", default=[0, -10, -20, -30],
                        help="training windows: steps before the scenarios' 'now'")
    parser.add_argument("--val-offsets", type=int, nargs="+", default=[0, -10, -20])
    parser.add_argument("--max-scenarios", type=int, default=0)
    parser.add_argument("--ego-repeat", type=int, default=1,
                        help="list each training ego target this many times (STR and the MLP planner alike)")
    parser.add_argument("--mlp-epochs", type=int, default=60, help="epochs of the MLP planner baseline")
    parser.add_argument("--ego-fraction", type=float, default=0.0,
                        help="share of each STR training batch drawn from the ego targets (0: plain epochs)")
    parser.add_argument("--save-checkpoints", action="store_true",
                        help="write <work-dir>/str_<size>.pth (mmengine-style state_dict) for STRPlanner.from_config")
    parser.add_argument("--workers", type=int, default=1, help="processes encoding targets")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--png", type=Path, default=REPO_ROOT / "demo/gallery/str_scaling.png")
    parser.add_argument("--json", type=Path, default=REPO_ROOT / "demo/gallery/str_scaling.json")
    parser.add_argument("--results", type=Path, default=None, help="default: <work-dir>/results.pkl")


# ------------------------------------------------------------------ prepare
def _at(scene: Any, now: int, ego: Any = None) -> Any:
    """The scene with "now" moved (and optionally another track as the ego)."""
    if ego is None:
        return dataclasses.replace(scene, current_index=now)
    agents = [a for a in [scene.ego, *scene.agents] if a is not ego]
    return dataclasses.replace(scene, current_index=now, ego=ego, agents=agents, focal_track_ids=[])


def baseline_predictions(train: FeatureBank, val: FeatureBank, progress: bool = True, mlp_epochs: int = 60
                         ) -> dict[str, Any]:
    """Local-frame validation predictions of constant velocity (all targets) and the MLP planner
    (ego targets; trained on every training target as if it were the ego)."""
    from perception.planning.baselines import ConstantVelocityPlanner, ConstantVelocityPredictor, MLPPlanner

    steps = val.config.future_steps
    cv_pred, cv_plan = ConstantVelocityPredictor(num_future=steps), ConstantVelocityPlanner(num_future=steps)
    cv, mlp_rows = [], []
    for scene_index, track_id, now in val.index:
        scene = val.scenes[scene_index]
        if track_id == scene.ego.track_id:
            world = cv_plan.plan(_at(scene, now))[:, :2]
            origin = scene.ego.states[now, :3]
        else:
            world = cv_pred.predict(_at(scene, now), [track_id])[0][0, 0]
            origin = scene.agent(track_id).states[now, :3]
        cv.append(to_local_xy(world, origin))
    planner = MLPPlanner(num_future=steps)
    as_ego = [_at(train.scenes[s], now, train.scenes[s].ego if t == train.scenes[s].ego.track_id
                  else train.scenes[s].agent(t)) for s, t, now in train.index]
    started = time.time()
    losses = planner.fit(as_ego, epochs=mlp_epochs, progress=progress)
    for row, (scene_index, track_id, now) in enumerate(val.index):
        scene = val.scenes[scene_index]
        if track_id == scene.ego.track_id:
            plan = planner.plan(_at(scene, now))[:, :2]
            mlp_rows.append((row, to_local_xy(plan, scene.ego.states[now, :3])))
    return dict(cv=np.stack(cv), mlp_rows=[r for r, _ in mlp_rows], mlp=np.stack([p for _, p in mlp_rows]),
                mlp_train_loss=losses[-1], mlp_fit_seconds=time.time() - started,
                mlp_params=sum(p.numel() for p in planner.parameters()), mlp_train_targets=len(as_ego),
                mlp_epochs=mlp_epochs)


def prepare(args: argparse.Namespace) -> Path:
    from perception.planning.motion_dataset import MotionForecastingDataset

    common = dict(targets=("ego", "scored"), feature_cfg=FEATURES, max_scenarios=args.max_scenarios)
    train_ds = MotionForecastingDataset(str(args.data_root), "train", now_offsets=args.train_offsets,
                                        ego_repeat=args.ego_repeat, **common)
    val_ds = MotionForecastingDataset(str(args.data_root), "val", now_offsets=args.val_offsets, **common)
    train, val = FeatureBank.from_dataset(train_ds), FeatureBank.from_dataset(val_ds)
    print(f"prepare: {len(train.index)} training targets in {len(train.scenes)} scenarios, "
          f"{len(val.index)} validation targets in {len(val.scenes)}")
    bank = dict(train=train, val=val, baselines=baseline_predictions(train, val, mlp_epochs=args.mlp_epochs))
    tensors = val.encode()
    gt, valid = tensors["future"][..., :2].numpy(), tensors["future_valid"].numpy()
    is_ego, base = tensors["is_ego"].numpy() > 0.5, bank["baselines"]
    rows = np.asarray(base["mlp_rows"])
    base["mlp_metrics"] = _metrics(gt, valid, is_ego, base["mlp"][:, None], np.ones((len(rows), 1)), rows)
    print(f"MLP planner ({base['mlp_epochs']} epochs on {base['mlp_train_targets']} targets, "
          f"{base['mlp_fit_seconds']:.0f} s): " + ", ".join(f"{k} {v:.3f}" for k, v in base["mlp_metrics"].items()))
    args.work_dir.mkdir(parents=True, exist_ok=True)
    path = args.work_dir / "bank.pkl"
    with open(path, "wb") as stream:
        pickle.dump(bank, stream)
    return path


# ------------------------------------------------------------------ train
def build_str(size: str) -> Any:
    from perception.models.planning.str_model import STR

    return STR(backbone=dict(preset=size, max_tokens=256), context_encoder=dict(type="STRVectorEncoder", hidden_dim=64),
               future_steps=FEATURES["future_steps"], history_frames=FEATURES["history_frames"],
               keypoint_times=KEYPOINT_TIMES, num_modes=6)


def results_path(args: argparse.Namespace) -> Path:
    return args.results or args.work_dir / "results.pkl"


def train(args: argparse.Namespace) -> Path:
    with open(args.work_dir / "bank.pkl", "rb") as stream:
        bank = pickle.load(stream)
    torch.set_float32_matmul_precision("high")  # TF32 matrix products on GPUs that have them
    tensors = {split: bank[split].encode(workers=args.workers, progress=True) for split in ("train", "val")}
    runs = []
    for size in args.sizes:
        torch.manual_seed(args.seed)
        model = build_str(size)
        params = sum(p.numel() for p in model.parameters())
        started = time.time()
        fit = train_for_tokens(model, tensors["train"], int(args.tokens), args.batch_size, args.lr, seed=args.seed,
                               device=args.device, progress=True, ego_fraction=args.ego_fraction)
        seconds = time.time() - started
        if args.save_checkpoints:
            args.work_dir.mkdir(parents=True, exist_ok=True)
            torch.save({"state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                        "meta": dict(size=size, tokens=int(args.tokens), ego_fraction=args.ego_fraction)},
                       args.work_dir / f"str_{size}.pth")
        val_loss = evaluate_loss(model, tensors["val"], device=args.device, seed=args.seed)
        traj, scores = predict_tensors(model, tensors["val"], device=args.device)
        curve = fit.pop("train_loss")
        print(f"{size}: {params:,} parameters, {fit['steps']} steps, {seconds:.0f} s, val loss {val_loss['loss']:.4f}")
        runs.append(dict(size=size, params=params, backbone_params=sum(p.numel() for p in model.backbone.parameters()),
                         train_seconds=seconds, val_loss=val_loss, final_train_loss=float(np.mean(curve[-20:])),
                         train_curve=curve[:: max(1, len(curve) // 200)], trajectories=traj[..., :2].astype(np.float16),
                         scores=scores.astype(np.float32), **fit))
    val = tensors["val"]
    results = dict(runs=runs, device=str(args.device), tokens=int(args.tokens), batch_size=args.batch_size,
                   ego_fraction=args.ego_fraction,
                   gt=val["future"][..., :2].numpy(), gt_valid=val["future_valid"].numpy(),
                   is_ego=val["is_ego"].numpy() > 0.5, train_targets=len(tensors["train"]["future"]))
    path = results_path(args)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as stream:
        pickle.dump(results, stream)
    return path


# ------------------------------------------------------------------ report
def _metrics(gt: np.ndarray, valid: np.ndarray, is_ego: np.ndarray, trajectories: np.ndarray,
             scores: np.ndarray, rows: np.ndarray | None = None) -> dict[str, float]:
    from perception.evaluation.motion_metrics import evaluate_forecasts
    from perception.planning.motion_dataset import MotionSample

    rows = np.arange(len(gt)) if rows is None else np.asarray(rows)
    samples = []
    for i, row in enumerate(rows):
        sample = MotionSample("val", str(row), bool(is_ego[row]), "", 0, np.zeros(3), gt[row].astype(np.float64),
                              valid[row].astype(bool))
        sample.pred_trajectories, sample.pred_scores = trajectories[i].astype(np.float64), scores[i].astype(np.float64)
        samples.append(sample)
    return evaluate_forecasts(samples, k=6, miss_threshold=2.0)


def report(args: argparse.Namespace) -> dict[str, Any]:
    with open(args.work_dir / "bank.pkl", "rb") as stream:
        bank = pickle.load(stream)
    baselines = bank["baselines"]
    with open(results_path(args), "rb") as stream:
        results = pickle.load(stream)
    gt, valid, is_ego = results["gt"], results["gt_valid"], results["is_ego"]
    cv = baselines["cv"][:, None]
    table: dict[str, Any] = {"constant_velocity": _metrics(gt, valid, is_ego, cv, np.ones(cv.shape[:2]))}
    mlp_rows = np.asarray(baselines["mlp_rows"])
    table["mlp_planner"] = _metrics(gt, valid, is_ego, baselines["mlp"][:, None], np.ones((len(mlp_rows), 1)), mlp_rows)
    runs = []
    for run in results["runs"]:
        metrics = _metrics(gt, valid, is_ego, run["trajectories"][..., :2].astype(np.float64), run["scores"])
        table[f"str_{run['size']}"] = metrics
        runs.append({k: v for k, v in run.items() if k not in ("trajectories", "scores")} | dict(metrics=metrics))
    # the size with the lowest validation regression loss (trajectory, yaw, goal, key points): the
    # mode-classification term depends on which goal wins and is too noisy to rank sizes by
    best = min(runs, key=lambda r: r["val_loss"]["loss"] - r["val_loss"].get("loss_cls", 0.0))
    cv_ade, str_ade = table["constant_velocity"]["minADE_6"], best["metrics"]["minADE_6"]
    proof = dict(best_size=best["size"], str_minADE_6=str_ade, cv_minADE=cv_ade, minADE_gain_vs_cv=1 - str_ade / cv_ade,
                 beats_cv_by_30pct=bool(1 - str_ade / cv_ade >= 0.30), str_plan_L2=best["metrics"].get("plan_L2"),
                 mlp_plan_L2=table["mlp_planner"].get("plan_L2"),
                 beats_mlp_L2=bool(best["metrics"].get("plan_L2", np.inf) < table["mlp_planner"].get("plan_L2", -np.inf)))
    out = dict(settings=dict(tokens=results["tokens"], batch_size=results["batch_size"], device=results["device"],
                             train_targets=results["train_targets"], val_targets=int(len(gt)),
                             val_plans=int(is_ego.sum()), mlp_train_targets=baselines["mlp_train_targets"]),
               runs=runs, metrics=table, proof=proof)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2, default=float))
    plot(runs, table, args.png, results)
    best_run = next(r for r in results["runs"] if r["size"] == best["size"])
    plot_examples(bank["val"], results, best_run, baselines["cv"], args.png.with_name("str_predictions.png"))
    print(markdown(out))
    return out


def plot(runs: list[dict], table: dict[str, Any], png: Path, results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    params = np.array([r["params"] for r in runs])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    ax.plot(params, [r["val_loss"]["loss"] for r in runs], "o-", label="validation loss")
    ax.plot(params, [r["final_train_loss"] for r in runs], "s--", alpha=0.6, label="training loss (last steps)")
    regression = [r["val_loss"]["loss"] - r["val_loss"].get("loss_cls", 0.0) for r in runs]
    ax.plot(params, regression, "^-", label="validation loss without mode classification")
    for r in runs:
        ax.annotate(r["size"], (r["params"], r["val_loss"]["loss"]), textcoords="offset points", xytext=(4, 6))
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("loss (teacher-forced STR objective)")
    ax.set_yscale("log")
    ax.set_title(f"STR scaling: {results['tokens']:.2g} training tokens per size")
    ax.legend()
    ax = axes[1]
    ax.plot(params, [table[f"str_{r['size']}"]["minADE_6"] for r in runs], "o-", label="STR minADE_6")
    ax.plot(params, [table[f"str_{r['size']}"]["ADE_1"] for r in runs], "s-", label="STR ADE (top mode)")
    ax.axhline(table["constant_velocity"]["minADE_6"], color="k", ls="--", label="constant velocity ADE")
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("m (validation agents)")
    ax.set_title("prediction")
    ax.legend()
    ax = axes[2]
    ax.plot(params, [table[f"str_{r['size']}"].get("plan_L2", np.nan) for r in runs], "o-", label="STR plan L2")
    ax.axhline(table["mlp_planner"].get("plan_L2", np.nan), color="tab:red", ls="--", label="MLP planner L2")
    ax.axhline(table["constant_velocity"].get("plan_L2", np.nan), color="k", ls="--", label="constant velocity L2")
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("m (validation ego, 6 s)")
    ax.set_title("planning")
    ax.legend()
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)


def plot_examples(val: FeatureBank, results: dict, run: dict, cv: np.ndarray, png: Path, count: int = 4) -> None:
    """A few validation targets in their own frame: map, other agents, truth, constant
    velocity and STR's modes (line width by score)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agents = [i for i in range(len(val.index)) if not results["is_ego"][i]]
    moving = [i for i in agents if np.linalg.norm(results["gt"][i][-1]) > 15.0]
    rows = [r for r in np.linspace(0, len(moving) - 1, count - 1).round().astype(int)] if moving else []
    picks = [moving[r] for r in rows] + [int(np.flatnonzero(results["is_ego"])[0])]
    fig, axes = plt.subplots(1, len(picks), figsize=(4.5 * len(picks), 4.5))
    for ax, i in zip(np.atleast_1d(axes), picks):
        scene_index, track_id, now = val.index[i]
        scene = val.scenes[scene_index]
        track = scene.ego if track_id == scene.ego.track_id else scene.agent(track_id)
        origin = track.states[now, :3]
        pieces = to_local_xy(val.pieces[scene_index][0], origin)
        near = np.abs(pieces).max(axis=(1, 2)) < 80
        for piece in pieces[near]:
            ax.plot(piece[:, 0], piece[:, 1], color="0.8", lw=0.8)
        for other in [scene.ego, *scene.agents]:
            if other is not track and other.valid[now]:
                p = to_local_xy(other.states[now, :2], origin)
                if np.abs(p).max() < 60:
                    ax.plot(*p, "s", color="tab:gray", ms=3)
        past = to_local_xy(track.states[max(0, now - 20): now + 1, :2], origin)
        ax.plot(past[:, 0], past[:, 1], color="k", lw=2, label="past")
        valid = results["gt_valid"][i]
        ax.plot(*results["gt"][i][valid].T, color="tab:green", lw=2, label="truth")
        ax.plot(*cv[i].T, "--", color="tab:orange", lw=1.5, label="const. velocity")
        traj, scores = run["trajectories"][i].astype(np.float64), run["scores"][i]
        for k in range(len(traj)):
            ax.plot(*traj[k].T, color="tab:blue", lw=0.5 + 4 * float(scores[k]), alpha=0.8,
                    label="STR modes" if k == 0 else None)
        ax.set_aspect("equal")
        span = max(20.0, float(np.abs(np.concatenate([results["gt"][i][valid], traj.reshape(-1, 2)])).max()) + 5)
        ax.set_xlim(-span / 2, span)
        ax.set_ylim(-span * 0.75, span * 0.75)
        ax.set_title(("ego plan" if track is scene.ego else f"{track.category} {track_id[:8]}") + f" ({scene.scene_id[:8]})")
    np.atleast_1d(axes)[0].legend(loc="lower left", fontsize=8)
    fig.suptitle(f"STR {run['size']} on synthetic AV2 validation scenarios (target frame, 6 s)")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def markdown(out: dict[str, Any]) -> str:
    lines = ["| model | params | val loss | minADE_6 | minFDE_6 | MR_6 | brier-minFDE_6 | ADE_1 | plan L2 |",
             "|---|---|---|---|---|---|---|---|---|"]
    runs = {f"str_{r['size']}": r for r in out["runs"]}
    for name, m in out["metrics"].items():
        run = runs.get(name)
        cells = [name, f"{run['params']:,}" if run else "-", f"{run['val_loss']['loss']:.4f}" if run else "-"]
        cells += [f"{m[k]:.3f}" if k in m else "-" for k in
                  ("minADE_6", "minFDE_6", "MR_6", "brier_minFDE_6", "ADE_1", "plan_L2")]
        lines.append("| " + " | ".join(cells) + " |")
    p = out["proof"]
    lines.append(f"\nbest size {p['best_size']}: minADE_6 {p['str_minADE_6']:.3f} m vs constant velocity "
                 f"{p['cv_minADE']:.3f} m ({100 * p['minADE_gain_vs_cv']:.0f}% lower); plan L2 "
                 f"{p['str_plan_L2']:.3f} m vs MLP planner {p['mlp_plan_L2']:.3f} m")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.tokens <= 0 or args.batch_size <= 0:
        parser.error("--tokens and --batch-size must be positive")
    if args.stage in ("prepare", "all"):
        print(f"bank written to {prepare(args)}")
    if args.stage in ("train", "all"):
        print(f"results written to {train(args)}")
    if args.stage in ("report", "all"):
        report(args)
        print(f"scaling plot: {args.png}; figures: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
