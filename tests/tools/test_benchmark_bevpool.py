"""tools/benchmark.py bevpool: target logic on fixed figures and a `--quick` smoke run."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from perception.benchmarks.bevpool_report import evaluate_targets
from perception.benchmarks.bevpool_rig import bevfusion_img_aug, synthetic_rig

REPO_ROOT = Path(__file__).resolve().parents[2]


def _t(ms: float) -> dict:
    return {"median_ms": ms, "iqr_ms": 0.0}


def test_targets_pass_miss_and_not_available() -> None:
    figures = {"groups": {
        "features": {"forward": {"interval": _t(10), "index_add": _t(25), "cumsum": _t(99)},
                     "backward": {"interval": _t(10), "index_add": _t(19), "cumsum": _t(150)},
                     "fwdbwd": {"interval": _t(20), "index_add": _t(44)}},
        "depth_context": {"forward": {"fused": _t(1), "lift+index_add": _t(30), "lift+cumsum": _t(200)}}},
        "cached": {"cached": _t(10), "recompute": _t(16)}}
    got = {t["target"]: (t["status"], t["value"]) for t in evaluate_targets(figures)}
    assert len(got) == 13
    assert got["fwd speedup vs cumsum"] == ("MISS", pytest.approx(9.9))
    assert got["bwd speedup vs cumsum"] == ("PASS", pytest.approx(15.0))
    assert got["fwd+bwd speedup vs cumsum"] == ("N/A", None)
    assert got["fwd speedup vs index_add_"] == ("PASS", pytest.approx(2.5))
    assert got["bwd speedup vs index_add_"] == ("MISS", pytest.approx(1.9))
    assert got["fused: fwd speedup vs lift+cumsum"] == ("PASS", pytest.approx(200.0))
    assert got["fused: fwd speedup vs lift+index_add_"] == ("PASS", pytest.approx(30.0))
    assert got["fused: bwd speedup vs lift+index_add_"] == ("N/A", None)
    assert got["cached plan vs recompute, fwd"] == ("PASS", pytest.approx(1.6))


def test_bevfusion_augmentation_and_synthetic_rig() -> None:
    aug = bevfusion_img_aug(1600, 900, (256, 704)).numpy()
    # 1600x900 * 0.48 = 768x432; crop the bottom 256 rows (176 off) and the middle 704 columns
    assert aug[0, 0] == aug[1, 1] == pytest.approx(0.48) and aug[0, 3] == -32 and aug[1, 3] == -176
    rig = synthetic_rig((256, 704))
    assert rig.cam2img.shape == (1, 6, 3, 3) and rig.cam2lidar.shape == (1, 6, 4, 4)
    optical_axes = rig.cam2lidar[0, :, :3, 2]  # camera z (forward) in the LiDAR frame
    assert optical_axes[0].tolist() == pytest.approx([1.0, 0.0, 0.0])
    assert optical_axes[:, 2].abs().max() < 1e-12  # all horizontal
    with pytest.raises(ValueError, match="lower than the 256 rows"):
        bevfusion_img_aug(1600, 300, (256, 704))


def _benchmark_tool():
    spec = importlib.util.spec_from_file_location("benchmark_tool", REPO_ROOT / "tools" / "benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_bevpool_quick_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, md = tmp_path / "bevpool.json", tmp_path / "bevpool.md"
    code = _benchmark_tool().main(["bevpool", "--quick", "--source", "synthetic", "--threads", "1",
                                   "--json", str(out), "--markdown", str(md)])
    assert code == 0
    figures = json.loads(out.read_text())
    assert figures["rig"]["name"] == "synthetic" and figures["settings"]["feature_size"] == [8, 22]
    plan = figures["plan"]
    assert plan["points"] == 6 * 30 * 8 * 22 and 0 < plan["kept"] < plan["points"]
    assert plan["grid_zyx"] == [1, 360, 360] and plan["intervals"] > 100
    methods = {"features": {"interval", "interval_torch", "index_add", "cumsum"},
               "depth_context": {"fused", "lift+interval", "lift+index_add", "lift+cumsum"}}
    for group, names in methods.items():
        for section in ("forward", "backward", "fwdbwd", "accuracy"):
            assert set(figures["groups"][group][section]) == names, (group, section)
        for section in ("forward", "backward", "fwdbwd"):
            assert all(t["median_ms"] > 0 and t["kept"] >= 1 for t in figures["groups"][group][section].values())
        for name, acc in figures["groups"][group]["accuracy"].items():
            assert acc["fwd_rel_error"] < 1e-5 and acc["grad_rel_diff"] < 1e-5, (group, name)
    assert figures["groups"]["features"]["accuracy"]["index_add"]["grad_rel_diff"] == 0.0  # both exact gathers
    assert figures["cache"] == {"hits": 6, "misses": 1}  # (1 warm-up + 2 timed rounds) x 2 lookups
    statuses = {t["target"]: t["status"] for t in figures["targets"]}
    assert len(statuses) == 13 and set(statuses.values()) <= {"PASS", "MISS"}
    printed = capsys.readouterr().out
    assert "### Targets" in printed and md.read_text() in printed


@pytest.mark.parametrize("bad", [["--image-size", "60", "176"], ["--channels", "0"], ["--repeats", "0"]])
def test_bad_settings_are_rejected(bad: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert _benchmark_tool().main(["bevpool", "--quick", "--source", "synthetic", *bad]) == 1
    assert "benchmark bevpool: error:" in capsys.readouterr().err
