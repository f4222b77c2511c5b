"""`tools/benchmark.py detector`: the stage timer (exact sums with a fake clock, wrappers removed
afterwards), interleaved rounds, the report, the input frames, and a --quick run (tiny config,
native vs spconv, random points) end to end."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from perception.benchmarks import detector as bench
from perception.benchmarks import write_json
from perception.benchmarks.detector_inputs import load_frame, nuscenes_keyframe, random_frame
from perception.benchmarks.detector_stages import REPORT_STAGES, StageTimer, time_models
from perception.structures import Boxes3D

REPO = Path(__file__).resolve().parents[2]


class FakeClock:
    """A clock that each stage advances by a known amount (no real time involved)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Step(nn.Module):
    def __init__(self, clock: FakeClock, seconds: float) -> None:
        super().__init__()
        self.clock, self.seconds = clock, seconds

    def forward(self, x: Any = None, *_: Any) -> Any:
        self.clock.advance(self.seconds)
        return x

    def predict(self, x: Any = None, *_: Any) -> Any:
        self.clock.advance(10 * self.seconds)
        return x


class FakeDetector(nn.Module):
    """Stages of known cost: voxelize 1, vfe 2 + encoder 3, backbone 4 (+ neck 5), head 6,
    decode 60, plus 0.5 in test_step outside the stages."""

    def __init__(self, clock: FakeClock, neck: bool = True) -> None:
        super().__init__()
        self.clock = clock
        self.data_preprocessor, self.pts_voxel_encoder = Step(clock, 1), Step(clock, 2)
        self.pts_middle_encoder, self.pts_backbone = Step(clock, 3), Step(clock, 4)
        self.pts_neck = Step(clock, 5) if neck else None
        self.pts_bbox_head = Step(clock, 6)

    def test_step(self, data: Any) -> int:
        self.clock.advance(0.5)
        for stage in (self.data_preprocessor, self.pts_voxel_encoder, self.pts_middle_encoder,
                      self.pts_backbone, self.pts_neck, self.pts_bbox_head):
            if stage is not None:
                stage(data)
        return self.pts_bbox_head.predict(data)


def fake_infer(calls: list[str]) -> Any:
    def infer(model: FakeDetector, frame: Any) -> Boxes3D:
        calls.append(model.name)
        model.clock.advance(0.25)  # the "pipeline"
        model.test_step(frame)
        return Boxes3D.empty()
    return infer


def test_stage_timer_adds_up_each_stage_and_cleans_up() -> None:
    clock = FakeClock()
    model = FakeDetector(clock)
    with StageTimer(model, clock) as timer:
        start = clock()
        model.clock.advance(0.25)
        model.test_step(None)
        total = clock() - start
    assert total == pytest.approx(81.75)
    assert timer.breakdown(total) == pytest.approx(
        {"pipeline": 0.25, "voxelize": 1, "encoder": 5, "backbone+neck": 9, "head": 6,
         "decode/NMS": 60, "other": 0.5})
    assert list(timer.breakdown(total)) == list(REPORT_STAGES)
    for module in (model, model.data_preprocessor, model.pts_bbox_head):  # wrappers removed
        assert not {"forward", "predict", "test_step"} & set(vars(module))
    clock.advance(-clock.now)
    model.test_step(None)
    assert timer.seconds["head"] == 6  # no longer counting


def test_stage_timer_without_a_neck() -> None:
    clock = FakeClock()
    model = FakeDetector(clock, neck=False)
    with StageTimer(model, clock) as timer:
        model.test_step(None)
    assert timer.breakdown(76.5)["backbone+neck"] == 4 and "backbone+neck" in timer.present


def test_time_models_interleaves_and_skips_warmup() -> None:
    clock, calls = FakeClock(), []
    models = {}
    for name in ("native", "spconv"):
        models[name] = FakeDetector(clock)
        models[name].name = name
    out = time_models(models, None, fake_infer(calls), rounds=3, warmup=2, clock=clock)
    assert calls == ["native", "spconv"] * 5
    for result in out.values():
        assert result["total"]["kept"] == 3 and result["total"]["median_ms"] == pytest.approx(81750)
        assert result["fps"] == pytest.approx(1 / 81.75)
        assert result["stages"]["decode/NMS"]["median_ms"] == pytest.approx(60000)
        assert len(result["samples_ms"]["total"]) == 3
    with pytest.raises(ValueError, match="rounds"):
        time_models(models, None, fake_infer([]), rounds=0)


def test_random_frame_and_relabelling() -> None:
    frame = random_frame(500, [-10, -20, -3, 10, 20, 1], seed=1)
    pts = frame.frame.points
    assert pts.shape == (500, 5) and np.abs(pts[:, 0]).max() <= 9 and np.abs(pts[:, 1]).max() <= 18
    assert pts[:, 1].max() > 9  # y spans its own (wider) range
    relabelled, note = bench.frame_for(frame, ("car", "pedestrian"))
    assert relabelled.frame.class_names == ("car", "pedestrian") and "relabelled" in note
    assert bench.frame_for(relabelled, ("car",)) == (relabelled, None)
    with pytest.raises(ValueError, match="--points"):
        random_frame(0, [-1, -1, -1, 1, 1, 1])
    with pytest.raises(ValueError, match="unknown --input"):
        load_frame("kitti", 10, None)


def test_count_voxels_hard_and_dynamic() -> None:
    coors = torch.tensor([[0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 1, 1]])
    assert bench.count_voxels({"voxels": torch.zeros(3, 10, 5), "coors": coors}) == 3
    assert bench.count_voxels({"points": torch.zeros(3, 5), "coors": coors}) == 2  # per point
    assert bench.count_voxels({}) == 0


@pytest.mark.real_data
def test_nuscenes_keyframe_input(nuscenes_keyframe_dir: Path) -> None:
    frame = nuscenes_keyframe(nuscenes_keyframe_dir)
    assert frame.describe()["points"] == 34688 and "alone" in frame.note
    assert frame.frame.dataset == "nuscenes" and "car" in frame.frame.class_names
    with pytest.raises(FileNotFoundError, match="no nuScenes keyframe"):
        nuscenes_keyframe(nuscenes_keyframe_dir / "absent")


def test_bad_config_is_a_clean_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    sys.path.insert(0, str(REPO / "tools"))
    try:
        from benchmark import main
    finally:
        sys.path.remove(str(REPO / "tools"))
    assert main(["detector", "--config", str(tmp_path / "nope.py")]) == 1
    assert "nope.py" in capsys.readouterr().err


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.mark.slow
def test_quick_run_compares_both_backends(tmp_path: Path) -> None:
    before = torch.get_num_threads()
    figures = bench.run(parse("--quick", "--input", "random", "--points", "2000",
                              "--threads", "1", "--warmup", "0"))
    assert torch.get_num_threads() == before
    assert figures["settings"]["config"] == "configs/centerpoint/centerpoint_tiny_synthetic.py"
    assert figures["machine"]["torch_threads"]["intra_op"] == 1
    results = figures["results"]
    assert list(results) == ["native", "spconv"] and figures["stages"] == list(REPORT_STAGES)
    for r in results.values():
        assert r["total"]["kept"] + r["total"]["rejected"] == 2 and r["boxes"] > 0
        assert r["fps"] == pytest.approx(1e3 / r["total"]["median_ms"])
        samples = r["samples_ms"]
        for i, total in enumerate(samples["total"]):  # the stages add up to the frame time
            assert sum(samples[s][i] for s in REPORT_STAGES) == pytest.approx(total, rel=1e-9)
        assert r["stages"]["encoder"]["median_ms"] > r["stages"]["pipeline"]["median_ms"]
    assert figures["ratios"]["total"] == pytest.approx(
        results["spconv"]["total"]["median_ms"] / results["native"]["total"]["median_ms"])
    check = figures["check"]
    assert 0 < check["voxels"] <= check["points"] <= 2000
    assert check["pairs"]["spconv"]["ok"] and check["pairs"]["spconv"]["relative"] < 1e-3
    report = bench.markdown(figures)
    assert "| native |" in report and "| spconv / native |" in report and "### Notes" in report
    assert "spconv vs native (same weights, same voxels)" in report
    saved = json.loads(write_json(tmp_path / "d.json", figures).read_text())
    assert saved["settings"]["rounds"] == 2 and saved["model"]["params"] > 1e5
