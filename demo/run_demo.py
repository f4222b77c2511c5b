"""The main job `make demo` runs: load driving data through the stack and draw it.

Steps, each announced as it runs:
1. make sure the embedded default (the synthetic world in nuScenes format) exists under
   ``data/synthetic`` (generated when absent);
2. load a validation keyframe through the same ``NuScenesDataset`` real nuScenes uses, with
   LiDAR sweeps, cameras and the map, and write BEV and camera PNGs;
3. if the real samples in ``../shared/data`` are present, do the same for the real nuScenes
   keyframe (mmdetection3d info pickle).

PNGs go to ``work_dirs/demo/``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_KEYFRAME = REPO_ROOT.parent / "shared" / "data" / "nuscenes-keyframe"


def say(step: str, message: str) -> None:
    """One progress line per step, flushed so `make demo` shows it at once."""
    print(f"[demo {step}] {message}", flush=True)


def ensure_synthetic(data_root: Path, scenes: int, seed: int) -> Path:
    """Generate the default synthetic world when absent; return its val info file."""
    from perception.datasets.synthetic import create

    info = data_root / create.NUSCENES_INFO_NAME.format(split="val")
    if info.is_file():
        say("1/3", f"reusing the synthetic world in {data_root}")
        return info
    say("1/3", f"generating the synthetic world ({scenes} scenes, seed {seed}) into {data_root} "
               "in nuScenes, Argoverse 2 and AV2 motion-forecasting formats")
    create.create_dataset(create.Settings(out=data_root, scenes=scenes, seed=seed, overwrite=data_root.exists()))
    return info


def draw_frame(frame, out_dir: Path, stem: str, camera: str = "CAM_FRONT") -> list[Path]:
    """BEV, one camera, and both side by side (the gallery view)."""
    from perception.visualization import render_bev, render_camera, render_gallery

    written = [render_bev(frame, out_dir / f"{stem}_bev.png")]
    if camera in frame.cameras:
        written.append(render_camera(frame, camera, out_dir / f"{stem}_{camera.lower()}.png"))
        written.append(render_gallery(frame, camera, out_dir / f"{stem}_gallery.png"))
    return written


def show_synthetic(info: Path, out_dir: Path) -> list[Path]:
    from perception.datasets import NuScenesDataset

    dataset = NuScenesDataset(ann_file=str(info), data_root=str(info.parent), load_sweeps=9,
                              with_cameras=True, with_map=True)
    frame = dataset.get_frame(len(dataset) // 2)
    say("2/3", f"synthetic keyframe {frame.token}: {len(frame.points)} points (10 sweeps), "
               f"{len(frame.boxes)} boxes, {len(frame.map_elements)} map elements, {len(frame.cameras)} cameras")
    return draw_frame(frame, out_dir, "synthetic")


def show_real_keyframe(out_dir: Path) -> list[Path]:
    from perception.datasets import NuScenesDataset
    from perception.structures import CAMERA_NAMES_NUSCENES

    pickle = next(SHARED_KEYFRAME.glob("*.pkl"))
    flat_folder = {key: "" for key in ("pts", "sweeps", *CAMERA_NAMES_NUSCENES)}  # all files side by side
    dataset = NuScenesDataset(ann_file=str(pickle), data_root=str(SHARED_KEYFRAME), data_prefix=flat_folder)
    frame = dataset.get_frame(0)
    say("3/3", f"real nuScenes keyframe {frame.token}: {len(frame.points)} points, {len(frame.boxes)} boxes")
    return draw_frame(frame, out_dir, "nuscenes_keyframe")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=REPO_ROOT / "data" / "synthetic")
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "work_dirs" / "demo")
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    written: list[Path] = []
    written += show_synthetic(ensure_synthetic(args.data_root, args.scenes, args.seed), args.out_dir)
    if SHARED_KEYFRAME.is_dir():
        written += show_real_keyframe(args.out_dir)
    else:
        say("3/3", f"skipped: real samples not found at {SHARED_KEYFRAME}")
    for path in written:
        print(f"  wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
