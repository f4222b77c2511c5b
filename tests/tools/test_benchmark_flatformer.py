"""`tools/benchmark.py flatformer`: a --quick run on random voxels (all three backbones, the
targets, the report, JSON), the simulated synthetic frame and the memory probe."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from perception.benchmarks import flatformer as bench
from perception.benchmarks import write_json
from perception.benchmarks.flatformer_support import peak_memory, simulated_frame
from perception.benchmarks.sparse_inputs import VoxelSetup
from perception.config import load_config


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.fixture(scope="module")
def setup() -> VoxelSetup:
    return VoxelSetup.from_config(load_config(bench.DEFAULT_CONFIG), "test")


@pytest.mark.slow
def test_quick_run_measures_three_backbones(tmp_path: Path) -> None:
    args = parse("--quick", "--input", "random", "--voxels", "300", "--threads", "1",
                 "--width", "32", "--heads", "4", "--depth", "1")
    figures = bench.run(args)
    (result,) = figures["results"]
    rows = result["rows"]
    assert set(rows) == {"flatformer", "sst", "sst_buckets", "sparse_encoder"}
    for row in rows.values():
        assert row["median_ms"] > 0 and row["bev_shape"] == [1, 256, 180, 180]  # drop-in shape
        assert row["cpu_median_ms"] > 0
        assert row["tensor_mb"] > 0
    assert result["input"]["voxels"] == 300 and result["layout"]["pillars"] <= 300
    assert result["layout"]["sst_slots_per_pillar"] >= 1.0
    assert 1.0 <= result["layout"]["sst_buckets_slots_per_pillar"] <= result["layout"][
        "sst_slots_per_pillar"]
    speedups = {t["target"]: t for t in result["targets"]}
    sst = speedups["flatformer vs padded windows (SST)"]
    assert sst["speedup"] == pytest.approx(rows["sst"]["median_ms"] / rows["flatformer"]["median_ms"])
    assert sst["status"] == ("PASS" if sst["speedup"] >= 3 else "MISS")
    report = bench.markdown(figures)
    assert "| flatformer |" in report and "| sparse_encoder |" in report and "## Notes" in report
    assert "| sst_buckets |" in report and "SST with size buckets" in report
    saved = json.loads(write_json(tmp_path / "f.json", figures).read_text())
    assert saved["settings"]["repeats"] == 2 and saved["settings"]["backbone"]["bev_stride"] == 8


def test_markdown_reports_targets_and_missing_memory() -> None:
    row = {"median_ms": 10.0, "iqr_ms": 1.0, "bev_shape": [1, 8, 4, 4], "rss_mb": None,
           "tensor_mb": 2.0}
    figures = {
        "machine": {"cpu": "cpu", "cpus": 2, "torch": "x"}, "date": "today",
        "settings": {"threads": 1, "repeats": 2, "backbone": {}}, "notes": ["a note"],
        "results": [{"input": {"name": "random", "points": 0, "voxels": 5},
                     "layout": {"pillars": 5, "bev_shape": [4, 4], "flatformer_groups": 1,
                                "group_size": 69, "flatformer_slots_per_pillar": 13.8,
                                "sst_windows": 2, "sst_max_window_count": 3,
                                "sst_slots_per_pillar": 1.2},
                     "rows": {"flatformer": row, "sst": {**row, "median_ms": 40.0}},
                     "targets": [{"target": "flatformer vs padded windows (SST)", "speedup": 4.0,
                                  "minimum": 3.0, "status": "PASS"}]}]}
    report = bench.markdown(figures)
    assert "| flatformer | 10.0 | 1.0 | n/a | n/a | 2.0 | 1 x 8 x 4 x 4 |" in report
    assert "| flatformer vs padded windows (SST) | 4.00x | n/a | >= 3x | PASS |" in report
    assert "- a note" in report


def test_simulated_frame_is_a_multi_sweep_lidar_frame(setup: VoxelSetup) -> None:
    frame = simulated_frame(setup, sweeps=2, azimuth_steps=64, cars=5)
    assert frame.name == "synthetic" and frame.num_points > 1000
    assert frame.features.shape == (frame.num_voxels, 5)
    lags = frame.features[:, 4]  # mean time lag of each voxel: 0 or 0.05 s or in between
    assert float(lags.min()) == 0.0 and float(lags.max()) == pytest.approx(0.05)
    assert int(frame.coords[:, 0].max()) == 0 and frame.coords.dtype == torch.int32
    with pytest.raises(ValueError, match="sweeps"):
        simulated_frame(setup, sweeps=0)


def test_peak_memory_sees_a_large_temporary() -> None:
    def work() -> torch.Tensor:
        big = torch.ones(4 * 2**20)  # 16 MiB, freed before returning
        return big.sum()

    figures = peak_memory(work)
    assert 15.9 < figures["tensor_mb"] < 17.0
    assert figures["rss_mb"] is None or figures["rss_mb"] >= 0
