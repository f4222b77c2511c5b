"""The main job `make demo` runs: build the synthetic world, train a detector on it, score it
with the official nuScenes evaluator and draw what it sees.

Steps, each announced as it runs:
1. make sure the embedded default (the synthetic world in nuScenes / AV2 formats, plus its
   ground-truth database for copy-paste augmentation) exists under ``data/synthetic``;
2. draw a synthetic validation keyframe (LiDAR sweeps, boxes, map, a camera) and, when the
   real samples in ``../shared/data`` are present, the real nuScenes keyframe;
3. train the tiny CenterPoint (``configs/centerpoint/centerpoint_tiny_synthetic_demo.py``)
   with ``tools/train.py`` on 2 CPU cores;
4. score it on the held-out synthetic scene with ``tools/test.py`` (nuscenes-devkit's
   DetectionEval: mAP, NDS, TP errors, per-class AP);
5. draw predictions (dashed) against ground truth (solid) on validation keyframes.

Everything goes to ``work_dirs/demo/``: PNGs, ``metrics.json``, ``metrics.md``, the training
work dir (checkpoints, logs, ``loss_curve.png``).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see tools/train.py

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_KEYFRAME = REPO_ROOT.parent / "shared" / "data" / "nuscenes-keyframe"
DEMO_CONFIG = REPO_ROOT / "configs" / "centerpoint" / "centerpoint_tiny_synthetic_demo.py"
STEPS = 5


def say(step: int, message: str) -> None:
    """One progress line per step, flushed so `make demo` shows it at once."""
    print(f"[demo {step}/{STEPS}] {message}", flush=True)


def ensure_synthetic(data_root: Path, scenes: int, seed: int) -> Path:
    """Generate the default synthetic world and its GT database when absent; return the val infos."""
    from perception.datasets.gt_database import create_gt_database
    from perception.datasets.synthetic import create

    info = data_root / create.NUSCENES_INFO_NAME.format(split="val")
    if info.is_file():
        say(1, f"reusing the synthetic world in {data_root}")
    else:
        say(1, f"generating the synthetic world ({scenes} scenes, seed {seed}) into {data_root} "
               "in nuScenes, Argoverse 2 and AV2 motion-forecasting formats")
        create.create_dataset(create.Settings(out=data_root, scenes=scenes, seed=seed,
                                              overwrite=data_root.exists()))
    if not (data_root / "nuscenes_dbinfos_train.pkl").is_file():
        say(1, "building the ground-truth database (object points for copy-paste augmentation)")
        train_info = data_root / create.NUSCENES_INFO_NAME.format(split="train")
        create_gt_database((str(train_info), str(data_root), 9), data_root)
    return info


def draw_frame(frame, out_dir: Path, stem: str, camera: str = "CAM_FRONT") -> list[Path]:
    """BEV, one camera, and both side by side (the gallery view)."""
    from perception.visualization import render_bev, render_camera, render_gallery

    written = [render_bev(frame, out_dir / f"{stem}_bev.png")]
    if camera in frame.cameras:
        written.append(render_camera(frame, camera, out_dir / f"{stem}_{camera.lower()}.png"))
        written.append(render_gallery(frame, camera, out_dir / f"{stem}_gallery.png"))
    return written


def show_data(info: Path, out_dir: Path) -> list[Path]:
    """Draw a synthetic val keyframe and, when present, the real nuScenes keyframe."""
    from perception.datasets import NuScenesDataset
    from perception.structures import CAMERA_NAMES_NUSCENES

    dataset = NuScenesDataset(ann_file=str(info), data_root=str(info.parent), load_sweeps=9,
                              with_cameras=True, with_map=True)
    frame = dataset.get_frame(len(dataset) // 2)
    say(2, f"synthetic keyframe {frame.token}: {len(frame.points)} points (10 sweeps), "
           f"{len(frame.boxes)} boxes, {len(frame.map_elements)} map elements, {len(frame.cameras)} cameras")
    written = draw_frame(frame, out_dir, "synthetic")
    if not SHARED_KEYFRAME.is_dir():
        say(2, f"real keyframe skipped: samples not found at {SHARED_KEYFRAME}")
        return written
    pickle = next(SHARED_KEYFRAME.glob("*.pkl"))
    flat_folder = {key: "" for key in ("pts", "sweeps", *CAMERA_NAMES_NUSCENES)}  # files side by side
    real = NuScenesDataset(ann_file=str(pickle), data_root=str(SHARED_KEYFRAME), data_prefix=flat_folder)
    frame = real.get_frame(0)
    say(2, f"real nuScenes keyframe {frame.token}: {len(frame.points)} points, {len(frame.boxes)} boxes")
    return written + draw_frame(frame, out_dir, "nuscenes_keyframe")


def run_tool(args: list[str]) -> None:
    """Run a tool of tools/ with this interpreter; its output streams through."""
    command = [sys.executable, *args]
    print("  $ " + " ".join(str(a) for a in command), flush=True)
    subprocess.run(command, cwd=REPO_ROOT, check=True)


def train(work_dir: Path) -> Path:
    """Train the tiny detector; return its last checkpoint."""
    say(3, f"training the tiny CenterPoint ({DEMO_CONFIG.relative_to(REPO_ROOT)}) into {work_dir}")
    run_tool(["tools/train.py", str(DEMO_CONFIG), "--work-dir", str(work_dir)])
    pointer = work_dir / "last_checkpoint"
    if not pointer.is_file():
        raise RuntimeError(f"training wrote no checkpoint into {work_dir}")
    return Path(pointer.read_text().strip())


def evaluate(checkpoint: Path, out_dir: Path) -> dict:
    """Official nuScenes DetectionEval on the held-out scene through tools/test.py."""
    say(4, f"scoring {checkpoint.name} with nuscenes-devkit's DetectionEval on the synthetic val scene")
    metrics_path = out_dir / "metrics.json"
    run_tool(["tools/test.py", str(DEMO_CONFIG), str(checkpoint), "--out", str(metrics_path),
              "--work-dir", str(out_dir / "test")])
    return json.loads(metrics_path.read_text())


def metrics_markdown(metrics: dict) -> str:
    """The headline numbers and per-class AP as a markdown table."""
    def value(key: str) -> str:
        found = [v for k, v in metrics.items() if k.endswith(key)]
        return "n/a" if not found or found[0] is None else f"{found[0]:.3f}"

    lines = ["| metric | value |", "|---|---|"]
    lines += [f"| {name} | {value(name)} |" for name in ("NDS", "mAP", "mATE", "mASE", "mAOE", "mAVE", "mAAE")]
    lines += [f"| {key.split('/')[-1]} | {val:.3f} |" for key, val in metrics.items()
              if "AP_" in key and isinstance(val, (int, float))]
    return "\n".join(lines)


def draw_predictions(checkpoint: Path, info: Path, out_dir: Path, count: int = 2) -> list[Path]:
    """BEV PNGs of predictions (dashed) vs ground truth (solid) on val keyframes."""
    from perception.apis import inference_detector, init_model
    from perception.datasets import NuScenesDataset
    from perception.visualization import render_bev

    model = init_model(str(DEMO_CONFIG), str(checkpoint))
    dataset = NuScenesDataset(ann_file=str(info), data_root=str(info.parent), load_sweeps=9,
                              with_cameras=False, with_map=True)
    written = []
    for index in range(0, len(dataset), max(1, len(dataset) // count))[:count]:
        frame = dataset.get_frame(index)
        boxes = inference_detector(model, frame)
        shown = boxes[boxes.scores >= 0.2]
        say(5, f"{frame.token[:8]}: {len(shown)} predictions with score >= 0.2, {len(frame.boxes)} GT boxes")
        written.append(render_bev(frame, out_dir / f"predictions_{index:02d}_bev.png", predictions=shown,
                                  title=f"CenterPoint (dashed, score >= 0.2) vs ground truth (solid), {frame.token[:8]}"))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "work_dirs" / "demo")
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="skip training and score this checkpoint of the demo config")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))
    data_root = REPO_ROOT / "data" / "synthetic"  # where the demo config reads it
    args.out_dir = args.out_dir.resolve()
    args.out_dir.mkdir(parents=True, exist_ok=True)

    info = ensure_synthetic(data_root, args.scenes, args.seed)
    written = show_data(info, args.out_dir)
    checkpoint = args.checkpoint or train(args.out_dir / "centerpoint_tiny")
    metrics = evaluate(checkpoint, args.out_dir)
    table = metrics_markdown(metrics)
    (args.out_dir / "metrics.md").write_text(table + "\n")
    print(table, flush=True)
    written += draw_predictions(checkpoint, info, args.out_dir)
    for path in written + [args.out_dir / "metrics.json", args.out_dir / "metrics.md"]:
        print(f"  wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
