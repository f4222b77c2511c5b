"""Point-file reading and multi-sweep accumulation (perception.datasets.io)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perception.datasets import io as points_io
from perception.datasets.io import SweepRecord, load_multi_sweep, load_points_bin
from perception.structures import FrameError, apply_transform, make_transform, yaw_matrix

LIDAR_NAME = "n015-2018-07-24-11-22-45+0800__LIDAR_TOP__1532402927647951.pcd.bin"


@pytest.fixture
def log_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Messages sent to mmengine's print_log by the io module."""
    messages: list[str] = []
    monkeypatch.setattr(points_io, "print_log", lambda msg, **kwargs: messages.append(msg))
    return messages


@pytest.fixture(scope="module")
def real_points(nuscenes_keyframe_dir: Path) -> np.ndarray:
    return load_points_bin(nuscenes_keyframe_dir / LIDAR_NAME)


@pytest.mark.real_data
def test_real_keyframe_points(real_points: np.ndarray) -> None:
    assert real_points.shape == (34688, 5) and real_points.dtype == np.float32
    x, y, z, intensity, ring = real_points.T
    assert np.abs(x).max() < 110 and np.abs(y).max() < 110
    assert -5 < z.min() and z.max() < 25
    assert intensity.min() >= 0 and intensity.max() <= 255
    assert set(np.unique(ring)) <= set(range(32)) and len(np.unique(ring)) == 32
    # most returns are within 50 m of the sensor
    assert np.median(np.linalg.norm(real_points[:, :2], axis=1)) < 50


def test_truncated_file_names_it(nuscenes_keyframe_dir: Path, tmp_path: Path) -> None:
    data = (nuscenes_keyframe_dir / LIDAR_NAME).read_bytes()
    bad = tmp_path / "truncated.pcd.bin"
    bad.write_bytes(data[: len(data) - 7])
    with pytest.raises(FrameError, match="truncated.pcd.bin.*truncated"):
        load_points_bin(bad)
    with pytest.raises(FrameError, match="not a multiple of 24"):
        load_points_bin(nuscenes_keyframe_dir / LIDAR_NAME, num_features=6)  # 693760 / 24 is not whole


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(FrameError, match="not found.*nothere.bin"):
        load_points_bin(tmp_path / "nothere.bin")
    (tmp_path / "empty.bin").write_bytes(b"")
    with pytest.raises(FrameError, match="empty.*empty.bin"):
        load_points_bin(tmp_path / "empty.bin")
    with pytest.raises(ValueError, match="num_features"):
        load_points_bin(tmp_path / "empty.bin", num_features=2)


def test_nan_inf_rows_raise_or_are_dropped_with_a_log(tmp_path: Path, log_calls: list[str]) -> None:
    points = np.arange(50, dtype=np.float32).reshape(10, 5)
    points[2, 0], points[5, 3], points[7, 2] = np.nan, np.inf, -np.inf
    path = tmp_path / "bad.bin"
    points.tofile(path)
    with pytest.raises(FrameError, match="3 points with NaN/Inf.*bad.bin|bad.bin.*3 points with NaN/Inf"):
        load_points_bin(path)
    kept = load_points_bin(path, allow_invalid=True)
    assert kept.shape == (7, 5) and np.isfinite(kept).all()
    np.testing.assert_array_equal(kept, points[[0, 1, 3, 4, 6, 8, 9]])
    assert len(log_calls) == 1 and "dropped 3 points" in log_calls[0] and "bad.bin" in log_calls[0]


def _write_sweep(tmp_path: Path, name: str, points: np.ndarray) -> Path:
    path = tmp_path / name
    points.astype(np.float32).tofile(path)
    return path


def test_multi_sweep_transforms_and_time_lag(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    key = rng.uniform(-20, 20, (100, 5)).astype(np.float32)
    sweep_points = rng.uniform(-20, 20, (60, 5)).astype(np.float32)
    sweep2key = make_transform(yaw_matrix(0.1), [1.5, -0.3, 0.05])
    path = _write_sweep(tmp_path, "sweep1.bin", sweep_points)
    merged = load_multi_sweep(key, 10.0, [SweepRecord(str(path), sweep2key, 9.95)])
    assert merged.shape == (160, 6)
    np.testing.assert_array_equal(merged[:100, :5], key)
    assert (merged[:100, 5] == 0).all()
    np.testing.assert_allclose(merged[100:, :3], apply_transform(sweep2key, sweep_points[:, :3].astype(np.float64)),
                               atol=1e-4)
    np.testing.assert_array_equal(merged[100:, 3:5], sweep_points[:, 3:5])  # intensity and ring untouched
    np.testing.assert_allclose(merged[100:, 5], 0.05, atol=1e-6)
    # the rotation+translation form gives the same result
    record = SweepRecord.from_sensor2lidar(str(path), sweep2key[:3, :3], sweep2key[:3, 3], 9.95)
    np.testing.assert_allclose(load_multi_sweep(key, 10.0, [record]), merged)


def test_multi_sweep_remove_close(tmp_path: Path) -> None:
    sweep_points = np.array([[0.5, 0.2, 0, 1, 0], [5, 5, 0, 1, 0]], dtype=np.float32)
    path = _write_sweep(tmp_path, "sweep.bin", sweep_points)
    merged = load_multi_sweep(np.zeros((0, 5), np.float32), 1.0, [SweepRecord(str(path), np.eye(4), 0.9)],
                              remove_close=1.0)
    assert merged.shape == (1, 6) and merged[0, 0] == 5


def test_missing_sweep_raises_or_is_skipped(tmp_path: Path, log_calls: list[str]) -> None:
    key = np.ones((4, 5), np.float32)
    present = _write_sweep(tmp_path, "present.bin", np.ones((3, 5)))
    sweeps = [SweepRecord(str(tmp_path / "gone.pcd.bin"), np.eye(4), 0.95), SweepRecord(str(present), np.eye(4), 0.9)]
    with pytest.raises(FrameError, match="gone.pcd.bin"):
        load_multi_sweep(key, 1.0, sweeps)
    merged = load_multi_sweep(key, 1.0, sweeps, skip_missing=True)
    assert merged.shape == (7, 6)
    np.testing.assert_allclose(merged[4:, 5], 0.1, atol=1e-6)
    assert len(log_calls) == 1 and "gone.pcd.bin" in log_calls[0]
