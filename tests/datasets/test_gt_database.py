"""Ground-truth database on the tiny synthetic world: every stored point lies in its box,
counts match the infos, outputs are replaced atomically, and create_data.py builds it."""
from __future__ import annotations

import argparse
import importlib.util
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from perception.datasets import NuScenesDataset
from perception.datasets.gt_database import create_gt_database, run_follow_up
from perception.structures import Boxes3D

REPO_ROOT = Path(__file__).resolve().parents[2]
INFO = "nuscenes_infos_train.pkl"


def _load(path: Path) -> tuple[dict, list[dict]]:
    content = pickle.loads(path.read_bytes())
    return content["metainfo"], [e for name in sorted(content["dbinfos"]) for e in content["dbinfos"][name]]


def _object_points(root: Path, entry: dict, columns: int) -> np.ndarray:
    points = np.fromfile(root / entry["path"], dtype=np.float32).reshape(-1, columns)
    points[:, :3] += entry["box3d_lidar"][:3].astype(np.float32)
    return points


def _create_data_module():
    spec = importlib.util.spec_from_file_location("create_data_tool_gtdb", REPO_ROOT / "tools" / "create_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _create_data_main():
    return _create_data_module().main


def test_keyframe_database_matches_the_infos(tiny_synthetic_root: Path, tmp_path: Path) -> None:
    path = create_gt_database((tiny_synthetic_root / INFO, tiny_synthetic_root, 0), tmp_path)
    assert path == tmp_path / "nuscenes_dbinfos_train.pkl"
    metainfo, entries = _load(path)
    assert metainfo["point_features"] == ("x", "y", "z", "intensity", "ring") and metainfo["load_sweeps"] == 0
    assert metainfo["box_origin"] == "gravity_centre"
    dataset = NuScenesDataset(ann_file=INFO, data_root=str(tiny_synthetic_root), with_cameras=False)
    frames = {frame.token: frame for frame in (dataset.get_frame(i) for i in range(len(dataset)))}
    assert len(entries) == sum(len(f.boxes) for f in frames.values()) == 89  # every synthetic box has points
    for entry in entries:
        frame = frames[entry["token"]]
        box = frame.boxes[[entry["gt_idx"]]]
        np.testing.assert_array_equal(entry["box3d_lidar"], box.data[0])
        assert entry["name"] == frame.class_names[box.labels[0]] and entry["difficulty"] == 0
        points = _object_points(tmp_path, entry, 5)
        assert len(points) == entry["num_points_in_gt"] == box.num_lidar_pts[0]  # the devkit-side count
        assert box.points_in_boxes(points).all()
        # the stored rows are the frame's own rows (intensity and ring kept)
        frame_rows = frame.points[box.points_in_boxes(frame.points)[:, 0]]
        np.testing.assert_allclose(np.sort(points[:, 3]), np.sort(frame_rows[:, 3]))
    assert len({e["group_id"] for e in entries}) == len(entries)
    assert not list(tmp_path.glob(".*"))  # no staging leftovers


def test_multi_sweep_database_for_some_classes(tiny_synthetic_root: Path, tmp_path: Path) -> None:
    dataset = NuScenesDataset(ann_file=INFO, data_root=str(tiny_synthetic_root), load_sweeps=2, with_cameras=False)
    path = create_gt_database(dataset, tmp_path, classes=["car", "pedestrian"])
    metainfo, entries = _load(path)
    assert metainfo["point_features"][-1] == "time_lag" and metainfo["classes"] == ("car", "pedestrian")
    assert {e["name"] for e in entries} == {"car", "pedestrian"}
    expected = 0
    for index in range(len(dataset)):
        frame = dataset.get_frame(index)
        counts = frame.boxes.count_points(frame.points)
        names = np.asarray(frame.class_names)[frame.boxes.labels]
        expected += int(((counts > 0) & np.isin(names, ["car", "pedestrian"])).sum())
        for entry in (e for e in entries if e["token"] == frame.token):
            assert entry["num_points_in_gt"] == counts[entry["gt_idx"]]
    assert len(entries) == expected > 0
    lags = np.concatenate([_object_points(tmp_path, e, 6)[:, 5] for e in entries])
    assert (lags > 0).any() and (lags == 0).any()  # sweep points are stored with their time lag


class _FailingDataset:
    """Two frames; the second cannot be read."""

    load_sweeps = 0

    def __init__(self, dataset: NuScenesDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return 2

    def get_frame(self, index: int):
        if index == 1:
            raise FileNotFoundError("point file not found: gone.pcd.bin")
        return self.dataset.get_frame(0)


def test_failed_run_keeps_the_previous_database(tiny_synthetic_root: Path, tmp_path: Path) -> None:
    dataset = NuScenesDataset(ann_file=INFO, data_root=str(tiny_synthetic_root), with_cameras=False)
    path = create_gt_database(dataset, tmp_path, classes=["car"])
    before = path.read_bytes()
    files = sorted(p.name for p in (tmp_path / "nuscenes_gt_database").iterdir())
    with pytest.raises(FileNotFoundError, match="gone.pcd.bin"):
        create_gt_database(_FailingDataset(dataset), tmp_path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "nuscenes_gt_database").iterdir()) == files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nuscenes_dbinfos_train.pkl", "nuscenes_gt_database"]


def test_create_data_gt_database_subcommand(tiny_synthetic_root: Path, tmp_path: Path, capsys) -> None:
    main = _create_data_main()
    assert main(["gt-database", "--infos", str(tiny_synthetic_root / INFO), "--data-root", str(tiny_synthetic_root),
                 "--out-dir", str(tmp_path), "--classes", "bus,truck"]) == 0
    _, entries = _load(tmp_path / "nuscenes_dbinfos_train.pkl")
    assert {e["name"] for e in entries} == {"bus", "truck"}
    assert main(["gt-database", "--infos", str(tmp_path / "missing.pkl"), "--data-root", str(tmp_path)]) == 1
    assert "missing.pkl" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["gt-database", "--infos", "x.pkl", "--data-root", ".", "--load-sweeps", "-1"])


def test_synthetic_follow_up_builds_the_database(tiny_synthetic_root: Path, tmp_path: Path) -> None:
    root = shutil.copytree(tiny_synthetic_root, tmp_path / "data")
    args = argparse.Namespace(out=root, no_gt_database=True, gt_database_sweeps=1)
    assert run_follow_up(args) is None and not (root / "nuscenes_dbinfos_train.pkl").exists()
    args.no_gt_database = False
    path = run_follow_up(args)
    metainfo, entries = _load(path)
    assert path.parent == root and metainfo["load_sweeps"] == 1 and len(entries) == 89
    assert all(Boxes3D(e["box3d_lidar"], [0]).points_in_boxes(_object_points(root, e, 6)).all() for e in entries)


def test_synthetic_subcommand_options() -> None:
    parser = _create_data_module().build_parser()
    args = parser.parse_args(["synthetic", "--out", "x"])
    assert args.no_gt_database is False and args.gt_database_sweeps == 9  # the configs' load_sweeps
    assert parser.parse_args(["synthetic", "--out", "x", "--no-gt-database"]).no_gt_database is True
    with pytest.raises(SystemExit):
        parser.parse_args(["synthetic", "--out", "x", "--gt-database-sweeps", "-2"])


@pytest.mark.slow
def test_create_data_synthetic_builds_it_by_default(tmp_path: Path) -> None:
    main = _create_data_main()
    common = ["--scenes", "2", "--seed", "1", "--sensor-duration", "1", "--no-images", "--formats", "nuscenes",
              "--workers", "1", "--val-fraction", "0.5"]
    assert main(["synthetic", "--out", str(tmp_path / "with"), "--gt-database-sweeps", "0", *common]) == 0
    metainfo, entries = _load(tmp_path / "with" / "nuscenes_dbinfos_train.pkl")
    assert metainfo["load_sweeps"] == 0 and entries
    assert (tmp_path / "with" / entries[0]["path"]).is_file()


@pytest.mark.real_data
def test_av2_log_database(av2_sensor_log_dir: Path, tmp_path: Path) -> None:
    """The AV2 reader is picked from the infos' metainfo; one sweep merged (x y z intensity time_lag)."""
    from perception.datasets.av2.create_infos import create_infos

    root = av2_sensor_log_dir.parents[1]
    info = create_infos(root, av2_sensor_log_dir.parent.name, out_dir=tmp_path)
    metainfo, entries = _load(create_gt_database((info, root, 1), tmp_path))
    assert metainfo["dataset"] == "av2" and metainfo["point_features"] == ("x", "y", "z", "intensity", "time_lag")
    assert "REGULAR_VEHICLE" in metainfo["classes"] and len(entries) > 50
    for entry in entries:
        points = _object_points(tmp_path, entry, 5)
        assert len(points) == entry["num_points_in_gt"] > 0
        assert Boxes3D(entry["box3d_lidar"], [0]).points_in_boxes(points).all()
