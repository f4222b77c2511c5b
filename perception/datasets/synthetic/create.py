"""Generate the synthetic dataset: seeded scenes written as nuScenes, Argoverse 2 sensor logs
and AV2 motion-forecasting scenarios.

    python tools/create_data.py synthetic --out data/synthetic --scenes 4 --seed 0

Scenes are named ``scene-0000``...; scene ``i`` is simulated with a seed derived from
``--seed`` and ``i`` only, so the output is the same bytes for the same arguments whatever
``--workers`` is.  Everything is written into a hidden sibling folder that replaces ``--out``
only when all of it is written: an interrupted run leaves no half-written dataset.
The last ``round(scenes * val_fraction)`` scenes (at least one when the fraction is positive
and there are two scenes or more) form the ``val`` split.  ``--revisits K`` adds, per val
scene, ``K`` more drives of its ego route (same streets, other traffic, parked cars, LiDAR
noise and clock) named ``<scene>-revisit-<k>``, in a split of their own, ``revisit``: held-out
earlier traversals from which HRMapNet's historical map is built (``tools/hrmap_proof.py``).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm

from .types import EgoRoute, RoadMap, SyntheticScene
from .writers import stable_int
from ...utils.atomic import replace_folder

FORMATS: tuple[str, ...] = ("nuscenes", "av2", "motion")
META_FILE = "synthetic_meta.json"
NUSCENES_INFO_NAME = "nuscenes_infos_{split}.pkl"
"""Info pickles written next to the nuScenes tables (``split`` is ``train``, ``val`` or ``revisit``)."""
SPLITS: tuple[str, ...] = ("train", "val", "revisit")


@dataclass(frozen=True)
class Settings:
    """Validated parameters of one generation run."""

    out: Path
    scenes: int
    seed: int
    sensor_duration: float = 5.0
    image_size: tuple[int, int] = (800, 450)
    with_images: bool = True
    formats: tuple[str, ...] = FORMATS
    val_fraction: float = 0.25
    workers: int = 2
    location: str = "synth-town"
    overwrite: bool = False
    version: str = "v1.0-synthetic"
    revisits: int = 0


@dataclass(frozen=True)
class SceneJob:
    """What one worker simulates and writes."""

    index: int
    name: str
    seed: int
    split: str
    root: Path
    settings: Settings
    generator: Callable[..., SyntheticScene] | None = None
    ego_route: EgoRoute | None = None


@dataclass
class SceneResult:
    """What a worker hands back: the scene's nuScenes rows, its map, skipped formats and the
    ego's route (so revisits can drive it again)."""

    name: str
    location: str
    road_map: RoadMap
    nuscenes_rows: dict[str, list[dict[str, Any]]] | None
    skipped: dict[str, str] = field(default_factory=dict)
    ego_route: EgoRoute | None = None


def parse_image_size(text: str) -> tuple[int, int]:
    """``"800x450"`` -> ``(800, 450)``; a clear error for anything else."""
    parts = text.lower().split("x")
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"--image-size must look like WIDTHxHEIGHT (e.g. 800x450), got {text!r}") from None
    if width <= 0 or height <= 0:
        raise ValueError(f"--image-size must be positive, got {text!r}")
    return width, height


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``synthetic`` sub-command's options."""
    parser.add_argument("--out", required=True, type=Path, help="output folder (created)")
    parser.add_argument("--scenes", type=int, default=4, help="number of scenes")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed")
    parser.add_argument("--sensor-duration", type=float, default=5.0, help="seconds of sensor data per scene")
    parser.add_argument("--image-size", default="800x450", help="camera image size WIDTHxHEIGHT")
    parser.add_argument("--no-images", action="store_true", help="do not render camera images")
    parser.add_argument("--formats", default=",".join(FORMATS), help=f"comma-separated subset of {FORMATS}")
    parser.add_argument("--val-fraction", type=float, default=0.25, help="fraction of scenes in val")
    parser.add_argument("--workers", type=int, default=2, help="processes simulating scenes")
    parser.add_argument("--location", default="synth-town", help="simulated location name")
    parser.add_argument("--revisits", type=int, default=0,
                        help="per val scene, this many more drives of its route (split 'revisit')")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Validate everything before any work; raises ValueError naming the bad option."""
    if args.scenes <= 0:
        raise ValueError(f"--scenes must be positive, got {args.scenes}")
    if not args.sensor_duration > 0:
        raise ValueError(f"--sensor-duration must be positive, got {args.sensor_duration}")
    if not 0.0 <= args.val_fraction < 1.0:
        raise ValueError(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    if args.revisits < 0:
        raise ValueError(f"--revisits must be 0 or more, got {args.revisits}")
    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    unknown = sorted(set(formats) - set(FORMATS))
    if not formats or unknown:
        raise ValueError(f"--formats must be a subset of {FORMATS}, got {args.formats!r}")
    out = Path(args.out).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    if out.exists() and not args.overwrite:
        raise ValueError(f"--out {out} already exists (pass --overwrite to replace it)")
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"cannot create the parent folder of --out {out}: {error}") from error
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"the parent folder of --out {out} is not writable")
    return Settings(out=out, scenes=args.scenes, seed=args.seed, sensor_duration=float(args.sensor_duration),
                    image_size=parse_image_size(args.image_size), with_images=not args.no_images,
                    formats=tuple(f for f in FORMATS if f in formats), val_fraction=float(args.val_fraction),
                    workers=args.workers, location=args.location, overwrite=bool(args.overwrite),
                    revisits=int(args.revisits))


def split_of_scenes(count: int, val_fraction: float) -> list[str]:
    """``"train"`` / ``"val"`` per scene index: the last scenes are val."""
    num_val = int(round(count * val_fraction))
    if val_fraction > 0 and count >= 2:
        num_val = min(max(num_val, 1), count - 1)
    return ["val" if i >= count - num_val else "train" for i in range(count)]


def _build_scene(job: SceneJob) -> SceneResult:
    """Simulate one scene and write its files in every requested format (runs in a worker)."""
    from .writers import av2_sensor, motion, nuscenes_tables

    if job.generator is None:
        from .simulate import generate_scene as generator
    else:
        generator = job.generator
    settings = job.settings
    extra = {} if job.ego_route is None else {"ego_route": job.ego_route}
    scene = generator(job.name, job.seed, location=settings.location, sensor_duration_s=settings.sensor_duration,
                      image_size=settings.image_size, with_images=settings.with_images, **extra)
    result = SceneResult(job.name, scene.location, scene.road_map, None, ego_route=scene.ego_route)
    if "nuscenes" in settings.formats:
        result.nuscenes_rows = nuscenes_tables.write_scene_files(scene, job.root)
    if "av2" in settings.formats:
        av2_sensor.write_av2_log(scene, job.root, job.split)
    if "motion" in settings.formats:
        try:
            motion.write_scenario(scene, job.root, job.split)
        except motion.NoScenario as error:  # too short, or no focal vehicle: reported, not fatal
            result.skipped["motion"] = str(error)
    return result


def _finish_nuscenes(root: Path, results: list[SceneResult], splits: dict[str, list[str]], version: str) -> None:
    from .writers import nuscenes_map, nuscenes_tables

    maps: dict[str, str] = {}
    map_files: dict[str, str] = {}
    for result in results:
        text = json.dumps(nuscenes_map.build_map_expansion(result.road_map))
        if maps.setdefault(result.location, text) != text:
            raise ValueError(f"scenes of location {result.location!r} have different road maps ({result.name})")
        if result.location not in map_files:
            nuscenes_map.write_map_expansion(root, result.road_map)
            map_files[result.location] = nuscenes_map.write_semantic_prior(root, result.road_map)
    nuscenes_tables.write_tables(root, [r.nuscenes_rows for r in results if r.nuscenes_rows], splits,
                                 map_files, version)


def _write_infos(root: Path, settings: Settings) -> None:
    """Info pickles for the stack's datasets, written inside the dataset folder so a
    generated dataset is ready to train on: ``nuscenes_infos_{train,val}.pkl`` at the root
    and ``av2/sensor/av2_infos_{train,val}.pkl``."""
    if "nuscenes" in settings.formats:
        from nuscenes.nuscenes import NuScenes

        from ...utils.atomic import write_pickle_atomic
        from ..nuscenes.create_infos import build_infos

        nusc = NuScenes(version=settings.version, dataroot=str(root), verbose=False)
        for split, content in build_infos(nusc, root, settings.version).items():
            write_pickle_atomic(content, root / NUSCENES_INFO_NAME.format(split=split))
    if "av2" in settings.formats:
        from ..av2.create_infos import create_infos

        sensor_root = root / "av2" / "sensor"
        for split_dir in sorted(p for p in sensor_root.iterdir() if p.is_dir()):
            create_infos(sensor_root, split_dir.name)


def revisit_jobs(settings: Settings, jobs: list[SceneJob], results: list[SceneResult]) -> list[SceneJob]:
    """``settings.revisits`` more drives of each val scene's ego route, split ``revisit``."""
    out: list[SceneJob] = []
    for job, result in zip(jobs, results):
        if job.split != "val" or not settings.revisits:
            continue
        if result.ego_route is None:
            raise ValueError(f"--revisits: the generator did not report the ego route of {job.name}")
        for k in range(1, settings.revisits + 1):
            out.append(SceneJob(len(jobs) + len(out), f"{job.name}-revisit-{k}",
                                stable_int("revisit-seed", settings.seed, job.index, k), "revisit", job.root,
                                settings, job.generator, result.ego_route))
    return out


def _run_jobs(jobs: list[SceneJob], workers: int, desc: str) -> list[SceneResult]:
    """Build every job's scene, in ``workers`` spawned processes when more than one."""
    if not jobs:
        return []
    if workers == 1 or len(jobs) == 1:
        return [_build_scene(job) for job in tqdm(jobs, desc=desc, file=sys.stderr)]
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=get_context("spawn")) as pool:
        return list(tqdm(pool.map(_build_scene, jobs), total=len(jobs), desc=desc, file=sys.stderr))


def create_dataset(settings: Settings, generator: Callable[..., SyntheticScene] | None = None) -> Path:
    """Generate and write the whole dataset into ``settings.out``; returns it.

    ``generator`` replaces :func:`.simulate.generate_scene` (same signature; must be picklable
    when ``workers > 1``).
    """
    out = settings.out
    temp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(temp, ignore_errors=True)
    names = [f"scene-{i:04d}" for i in range(settings.scenes)]
    splits_of = split_of_scenes(settings.scenes, settings.val_fraction)
    jobs = [SceneJob(i, name, stable_int("scene-seed", settings.seed, i), splits_of[i], temp, settings, generator)
            for i, name in enumerate(names)]
    try:
        temp.mkdir(parents=True)
        results = _run_jobs(jobs, settings.workers, "synthetic scenes")
        revisits = revisit_jobs(settings, jobs, results)
        results += _run_jobs(revisits, settings.workers, "revisits of the val drives")
        jobs += revisits
        splits = {split: [j.name for j in jobs if j.split == split] for split in SPLITS
                  if split != "revisit" or revisits}
        if "nuscenes" in settings.formats:
            _finish_nuscenes(temp, results, splits, settings.version)
        _write_infos(temp, settings)
        skipped = {r.name: r.skipped for r in results if r.skipped}
        for name, reasons in skipped.items():
            for fmt, reason in reasons.items():
                print(f"synthetic: {name}: no {fmt} output: {reason}", file=sys.stderr)
        meta = {"settings": {k: v for k, v in asdict(settings).items() if k not in ("out", "workers", "overwrite")},
                "scenes": [{"name": j.name, "seed": j.seed, "split": j.split} for j in jobs],
                "splits": splits, "skipped": skipped}
        (temp / META_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True))
        replace_folder(temp, out)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return out


def run(args: argparse.Namespace) -> None:
    """Entry point of ``tools/create_data.py synthetic``."""
    settings = settings_from_args(args)
    out = create_dataset(settings)
    print(f"synthetic: wrote {settings.scenes} scenes ({', '.join(settings.formats)}) to {out}")
