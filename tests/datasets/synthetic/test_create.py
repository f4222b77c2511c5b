"""``tools/create_data.py synthetic``: validation before work, deterministic bytes whatever the
worker count, all-or-nothing output, and (when the simulator exists) a real end-to-end run."""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
from pathlib import Path

import pytest
from scene_factory import generate_like_simulator

from perception.datasets.synthetic import create
from perception.datasets.synthetic.types import EgoRoute

REPO_ROOT = Path(__file__).resolve().parents[3]


def _settings(out: Path, **overrides: object) -> create.Settings:
    parser = argparse.ArgumentParser()
    create.add_arguments(parser)
    argv = ["--out", str(out), "--scenes", "2", "--seed", "3", "--sensor-duration", "1", "--image-size", "16x9",
            "--workers", "1"]
    for key, value in overrides.items():
        argv += [f"--{key.replace('_', '-')}"] + ([] if value is True else [str(value)])
    return create.settings_from_args(parser.parse_args(argv))


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _create_data_main():
    spec = importlib.util.spec_from_file_location("create_data_tool", REPO_ROOT / "tools" / "create_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.mark.parametrize("option, value, message", [
    ("scenes", "0", "--scenes must be positive"),
    ("sensor-duration", "-1", "--sensor-duration must be positive"),
    ("image-size", "800by450", "WIDTHxHEIGHT"),
    ("image-size", "0x450", "--image-size must be positive"),
    ("formats", "nuscenes,kitti", "--formats"),
    ("val-fraction", "1.0", "--val-fraction"),
    ("revisits", "-1", "--revisits must be 0 or more"),
])
def test_bad_parameters_fail_before_work(tmp_path: Path, capsys, option: str, value: str, message: str) -> None:
    main = _create_data_main()
    out = tmp_path / "out"
    assert main(["synthetic", "--out", str(out), f"--{option}", value]) == 1
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_existing_or_unwritable_output_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(ValueError, match="already exists"):
        _settings(tmp_path / "taken")
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(ValueError, match="cannot create the parent folder"):
        _settings(tmp_path / "a-file" / "sub" / "out")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.geteuid() == 0:  # root ignores folder permissions: let the permission check see a refusal
        real_access = os.access
        monkeypatch.setattr(create.os, "access",
                            lambda path, mode: False if Path(path) == locked else real_access(path, mode))
    with pytest.raises(ValueError, match="not writable"):
        _settings(locked / "out")


def test_splits_of_scenes() -> None:
    assert create.split_of_scenes(4, 0.25) == ["train", "train", "train", "val"]
    assert create.split_of_scenes(2, 0.25) == ["train", "val"]
    assert create.split_of_scenes(1, 0.25) == ["train"]
    assert create.split_of_scenes(3, 0.0) == ["train"] * 3


@pytest.mark.slow
def test_same_seed_same_bytes_any_worker_count(tmp_path: Path) -> None:
    one = create.create_dataset(_settings(tmp_path / "one"), generator=generate_like_simulator)
    two = create.create_dataset(_settings(tmp_path / "two", workers=2), generator=generate_like_simulator)
    hashes = _hashes(one)
    assert hashes == _hashes(two)
    assert "v1.0-synthetic/sample_annotation.json" in hashes and "splits.json" in hashes
    assert any(name.startswith("av2/sensor/val/") for name in hashes)
    assert any(name.startswith("av2/motion-forecasting/train/") for name in hashes)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]  # no temporary leftovers
    meta = json.loads((one / create.META_FILE).read_text())
    assert meta["splits"] == {"train": ["scene-0000"], "val": ["scene-0001"]}
    other = create.create_dataset(_settings(tmp_path / "other", seed=4), generator=generate_like_simulator)
    assert _hashes(other)["synthetic_meta.json"] != hashes["synthetic_meta.json"]


def _routed_generator(name: str, seed: int, ego_route: EgoRoute | None = None, **kwargs: object):
    """The factory scene, with a route per seed that a revisit replays."""
    scene = generate_like_simulator(name, seed, **kwargs)
    scene.ego_route = ego_route or EgoRoute("north", (f"lane-{seed}",), float(seed))
    return scene


def test_revisits_replay_each_val_route_in_a_split_of_their_own(tmp_path: Path) -> None:
    out = create.create_dataset(_settings(tmp_path / "data", scenes=3, formats="nuscenes", no_images=True,
                                          revisits=2), generator=_routed_generator)
    meta = json.loads((out / create.META_FILE).read_text())
    assert meta["splits"] == {"train": ["scene-0000", "scene-0001"], "val": ["scene-0002"],
                              "revisit": ["scene-0002-revisit-1", "scene-0002-revisit-2"]}
    scenes = {row["name"]: row for row in meta["scenes"]}
    assert len({scenes[name]["seed"] for name in scenes}) == 5  # every drive its own traffic
    assert json.loads((out / "splits.json").read_text())["revisit"] == meta["splits"]["revisit"]
    import pickle
    infos = {split: pickle.loads((out / create.NUSCENES_INFO_NAME.format(split=split)).read_bytes())
             for split in ("val", "revisit")}
    assert len(infos["revisit"]["data_list"]) == 2 * len(infos["val"]["data_list"]) > 0
    plain = create.create_dataset(_settings(tmp_path / "plain", scenes=3, formats="nuscenes", no_images=True),
                                  generator=_routed_generator)
    assert "revisit" not in json.loads((plain / "splits.json").read_text())
    assert not (plain / create.NUSCENES_INFO_NAME.format(split="revisit")).exists()
    sensor_files = {name: digest for name, digest in _hashes(plain).items() if name.startswith(("samples/", "sweeps/"))}
    assert sensor_files and all(_hashes(out)[name] == digest for name, digest in sensor_files.items())


def test_revisits_need_the_route(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="did not report the ego route of scene-0001"):
        create.create_dataset(_settings(tmp_path / "data", formats="nuscenes", no_images=True, revisits=1),
                              generator=generate_like_simulator)
    assert list(tmp_path.iterdir()) == []


def _failing_generator(name: str, seed: int, **kwargs: object):
    if name == "scene-0001":
        raise RuntimeError("simulator crashed")
    return generate_like_simulator(name, seed, **kwargs)


def test_failed_run_leaves_nothing_and_overwrite_replaces(tmp_path: Path) -> None:
    out = tmp_path / "data"
    with pytest.raises(RuntimeError, match="simulator crashed"):
        create.create_dataset(_settings(out, formats="nuscenes", no_images=True), generator=_failing_generator)
    assert list(tmp_path.iterdir()) == []
    create.create_dataset(_settings(out, formats="av2", scenes=1), generator=generate_like_simulator)
    assert (out / "av2").is_dir() and not (out / "v1.0-synthetic").exists()
    with pytest.raises(RuntimeError):
        create.create_dataset(_settings(out, formats="nuscenes", overwrite=True), generator=_failing_generator)
    assert (out / "av2").is_dir()  # the old dataset survives a failed overwrite
    create.create_dataset(_settings(out, formats="nuscenes", overwrite=True, no_images=True),
                          generator=generate_like_simulator)
    assert (out / "v1.0-synthetic").is_dir() and not (out / "av2").exists()
    assert not (out / "samples" / "CAM_FRONT").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


@pytest.mark.slow
def test_end_to_end_with_simulator(tmp_path: Path) -> None:
    """The real simulator through every writer, read back by the devkits."""
    pytest.importorskip("perception.datasets.synthetic.simulate")
    from av2.datasets.motion_forecasting.scenario_serialization import load_argoverse_scenario_parquet
    from av2.structures.cuboid import CuboidList
    from nuscenes import NuScenes

    from perception.datasets.nuscenes.map_api import load_nuscenes_map

    out = create.create_dataset(_settings(tmp_path / "synthetic", sensor_duration=1.0, image_size="64x36"))
    nusc = NuScenes("v1.0-synthetic", str(out), verbose=False)
    assert len(nusc.scene) == 2 and len(nusc.sample) >= 2 and nusc.sample_annotation
    assert all(a["num_lidar_pts"] >= 1 for a in nusc.sample_annotation)
    nmap = load_nuscenes_map(out, nusc.log[0]["location"])
    assert nmap.lane and nmap.ped_crossing
    logs = list((out / "av2" / "sensor").glob("*/*"))
    assert len(logs) == 2 and len(CuboidList.from_feather(logs[0] / "annotations.feather"))
    meta = json.loads((out / create.META_FILE).read_text())
    scenarios = list((out / "av2" / "motion-forecasting").rglob("scenario_*.parquet"))
    assert len(scenarios) + len(meta["skipped"]) == 2
    for path in scenarios:
        assert len(load_argoverse_scenario_parquet(path).timestamps_ns) >= 80
