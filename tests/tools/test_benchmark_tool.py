"""tools/benchmark.py: timing helpers (fake clock), report logic, and a `sparse --quick` smoke run."""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from perception.benchmarks import json_ready, write_json
from perception.benchmarks.sparse_report import evaluate_targets, markdown
from perception.benchmarks.timing import (machine_load, measure, measure_interleaved,
                                          reject_outliers, summarize, torch_threads)

REPO_ROOT = Path(__file__).resolve().parents[2]


class FakeClock:
    """perf_counter stand-in: each timed call lasts the next of ``durations`` seconds."""

    def __init__(self, durations: list[float]) -> None:
        self.durations, self.now, self.started = list(durations), 0.0, False

    def __call__(self) -> float:
        if self.started:  # a stop stamp: advance by the call's duration
            self.now += self.durations.pop(0)
        self.started = not self.started
        return self.now


def test_reject_outliers_uses_tukey_fences() -> None:
    assert reject_outliers([1.0, 1.1, 0.9, 1.0, 9.0]) == [1.0, 1.1, 0.9, 1.0]
    assert reject_outliers([1.0, 50.0, 2.0]) == [1.0, 50.0, 2.0]  # n < 4: all kept
    with pytest.raises(ValueError):
        reject_outliers([])


def test_measure_drops_a_load_spike_with_a_fake_clock() -> None:
    calls = []
    clock = FakeClock([0.010, 0.011, 0.500, 0.009, 0.010, 0.012, 0.010])
    t = measure(lambda: calls.append(1), repeats=7, warmup=2, clock=clock)
    assert len(calls) == 9  # 2 warm-up + 7 timed
    assert t.rejected == 1 and t.kept == 6
    assert t.median == pytest.approx(0.010)
    assert t.minimum == pytest.approx(0.009)
    assert 0 < t.iqr < 0.002
    assert t.as_dict()["median_ms"] == pytest.approx(10.0)


def test_measure_interleaved_alternates_round_by_round() -> None:
    order: list[str] = []
    clock = FakeClock([1.0, 3.0] * 5)
    out = measure_interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")},
                              repeats=5, warmup=0, clock=clock)
    assert order == ["a", "b"] * 5
    assert out["a"].median == 1.0 and out["b"].median == 3.0


def test_summary_of_few_samples_and_threads_and_load() -> None:
    t = summarize([2.0, 4.0])
    assert t.median == 3.0 and t.rejected == 0
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError):
        with torch_threads(0):
            pass
    busy = machine_load(threads=2, threshold=-1.0)
    assert busy.high and "HIGH" in busy.note()
    assert not machine_load(threads=2, threshold=1e9).high


def test_json_is_strict_and_atomic(tmp_path: Path) -> None:
    path = write_json(tmp_path / "out" / "f.json", {"a": math.inf, "b": (1, 2.5), "c": math.nan})
    assert json.loads(path.read_text()) == {"a": None, "b": [1, 2.5], "c": None}
    assert [p.name for p in path.parent.iterdir()] == ["f.json"]  # no temporary left over
    assert json_ready({1: float("-inf")}) == {"1": None}


def _row(fwd_ms: float, fwdbwd_ms: float, iqr: float = 0.0) -> dict:
    return {"fwd": {"median_ms": fwd_ms, "iqr_ms": iqr}, "fwdbwd": {"median_ms": fwdbwd_ms,
                                                                     "iqr_ms": iqr},
            "gflops": 1.0}


def test_targets_pass_miss_and_not_available() -> None:
    enc = {"rows": {"default": _row(120, 300), "tuned": _row(100, 240, 2.0),
                    "gather_gemm_scatter": _row(99, 250, 2.0), "spconv": _row(350, 400)},
           "best_fixed_fwd": "gather_gemm_scatter", "best_fixed_fwdbwd": "gather_gemm_scatter",
           "conv_layers": 3, "pairs": 10, "gflop": 1.0, "dense_gflops": 10.0, "bev_shape": [1]}
    enc["rows"]["tuned"]["mm_pct_dense"] = 40.0
    figures = {"encoder": {"x": enc}}
    got = {t["target"]: (t["status"], t["value"]) for t in evaluate_targets(figures)}
    assert got["encoder fwd speedup vs spconv"] == ("PASS", pytest.approx(3.5))
    assert got["encoder fwd+bwd speedup vs spconv"] == ("MISS", pytest.approx(400 / 240))
    assert got["tuned / best fixed, fwd"][0] == "PASS"  # 1.01 is within the 5 % noise
    assert got["tuned / best fixed, fwd+bwd"][0] == "PASS"
    assert got["default / tuned, fwd"] == ("PASS", pytest.approx(1.2))
    assert got["encoder mm part % of dense mm"] == ("MISS", 40.0)
    del enc["rows"]["spconv"], enc["rows"]["tuned"]
    got = {t["target"]: t["status"] for t in evaluate_targets(figures)}
    assert got["encoder fwd speedup vs spconv"] == "N/A"
    assert got["default / tuned, fwd"] == "N/A"


def _benchmark_tool():
    spec = importlib.util.spec_from_file_location("benchmark_tool", REPO_ROOT / "tools" / "benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_sparse_quick_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, md = tmp_path / "sparse.json", tmp_path / "sparse.md"
    code = _benchmark_tool().main(["sparse", "--quick", "--input", "random", "--voxels", "1000",
                                   "--threads", "1", "--max-configs", "1", "--no-spconv",
                                   "--json", str(out), "--markdown", str(md)])
    assert code == 0
    figures = json.loads(out.read_text())
    assert {"machine", "settings", "inputs", "encoder", "targets", "notes"} <= set(figures)
    assert figures["inputs"][0]["voxels"] == 1000
    enc = figures["encoder"]["random"]
    assert enc["conv_layers"] > 10 and enc["pairs"] > 1000 and enc["gflop"] > 0
    rows = enc["rows"]
    assert "default" in rows and enc["best_fixed_fwd"] in rows
    for row in rows.values():
        assert row["fwd"]["median_ms"] > 0 and row["fwdbwd"]["median_ms"] > 0
        assert row["gflops"] > 0
    assert rows["default"]["mm_pct_dense"] > 0
    assert figures["spconv"] is False and "spconv" not in rows  # --no-spconv: native only
    assert any("native figures only" in n for n in figures["notes"])
    statuses = {t["target"]: t["status"] for t in figures["targets"]}
    assert statuses["default / tuned, fwd"] == "N/A"  # --quick does not tune
    assert statuses["encoder fwd speedup vs spconv"] == "N/A"
    assert set(statuses.values()) <= {"PASS", "MISS", "N/A"}
    printed = capsys.readouterr().out
    assert "### Targets" in printed and md.read_text() in printed


@pytest.mark.slow
def test_sparse_layer_rows_native_vs_spconv() -> None:
    pytest.importorskip("spconv.pytorch")  # optional extra [spconv]
    from perception.benchmarks.sparse_configs import fixed_configs
    from perception.benchmarks.sparse_inputs import VoxelSetup, random_input
    from perception.benchmarks.sparse_layers import LAYERS, bench_layer, pyramid, timing_dicts

    setup = VoxelSetup((0.1, 0.1, 0.2), (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0), (41, 1024, 1024),
                       ("x", "y", "z", "intensity", "time_lag"))
    levels = pyramid(random_input(setup, 800), levels=2)
    configs = fixed_configs(3)
    with torch_threads(1):
        subm, down = (timing_dicts(bench_layer(spec, levels, configs, True, repeats=2))
                      for spec in (LAYERS[0], LAYERS[4]))
    assert subm["layer"] == "subm16" and subm["voxels_out"] == 800
    assert down["layer"] == "down16-32" and 0 < down["voxels_out"] < 800
    for r in (subm, down):
        assert r["equal"]["same_voxels"] and r["equal"]["ok"]  # spconv: same voxels, values
        assert r["pairs"] > r["voxels_out"] and r["dense_gflops"] > 0
        assert [c["label"] for c in r["configs"]] == [c.describe() for c in configs]
        assert all(c["fwd"]["median_ms"] > 0 and c["mm_s"] > 0 for c in r["configs"])
        assert r["native"]["fwdbwd"]["median_ms"] > 0 and r["spconv"]["fwd"]["median_ms"] > 0
