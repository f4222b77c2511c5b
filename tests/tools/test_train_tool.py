"""tools/train.py and tools/test.py on the toy regressor: outputs of a run, config errors,
resume after SIGKILL equal to an uninterrupted run, 2-process gloo DDP, bf16 AMP on CPU."""
from __future__ import annotations

import importlib.util
import json
import math
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from toy_components import TRUE_WEIGHTS, make_toy_frame, toy_target
from toy_runs import REPO, TOY_CONFIG, run_train, scalars_of_run, tool_env, toy_cfg, train_command

from perception.engine import PerceptionRunner, load_checkpoint_file


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_tool", REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted deterministic 8-iteration run through the tool (subprocess)."""
    work_dir = tmp_path_factory.mktemp("reference")
    run_train("--work-dir", str(work_dir), "--deterministic")
    return work_dir


@pytest.mark.slow
def test_train_tool_outputs(reference_run: Path) -> None:
    assert (reference_run / "last_checkpoint").read_text().strip() == str(reference_run / "iter_8.pth")
    assert (reference_run / "iter_4.pth").is_file()
    with Image.open(reference_run / "loss_curve.png") as image:
        assert image.format == "PNG" and image.size == (800, 500)
        pixels = np.asarray(image.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10  # lines were drawn
    (run_dir,) = [p for p in reference_run.iterdir() if p.is_dir()]
    scalars = scalars_of_run(run_dir)
    assert sorted(scalars) == list(range(1, 9))
    for row in scalars.values():
        assert row["loss"] == pytest.approx(row["loss_mse"] + row["loss_l1"], rel=1e-4)
        assert math.isfinite(row["loss"])
    assert list(run_dir.glob("vis_data/events.out.tfevents.*")), "no TensorBoard event file"
    checkpoint = load_checkpoint_file(reference_run / "iter_8.pth")
    assert checkpoint["meta"]["iter"] == 8 and checkpoint["meta"]["seed"] == 0


def test_unknown_config_key_fails_naming_it(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    train = load_tool("train")
    code = train.main([str(TOY_CONFIG), "--work-dir", str(tmp_path), "--cfg-options", "model.hidden_dim=3"])
    err = capsys.readouterr().err
    assert code != 0
    assert "model.hidden_dim" in err and "ToyRegressor" in err and str(TOY_CONFIG) in err
    assert not list(tmp_path.iterdir())  # failed before the runner existed


def test_command_line_reaches_the_config(tmp_path: Path) -> None:
    train = load_tool("train")
    args = train.parse_args([str(TOY_CONFIG), "--work-dir", str(tmp_path), "--seed", "7", "--deterministic",
                             "--resume", "some.pth", "--cfg-options", "train_cfg.max_iters=3",
                             "optim_wrapper.optimizer.lr=0.5"])
    cfg = train.build_config(args)
    assert cfg.train_cfg.max_iters == 3 and cfg.optim_wrapper.optimizer.lr == 0.5
    assert cfg.randomness == {"seed": 7, "deterministic": True}
    assert (cfg.resume, cfg.load_from, cfg.work_dir) == (True, "some.pth", str(tmp_path))
    auto = train.build_config(train.parse_args([str(TOY_CONFIG), "--resume"]))
    assert auto.resume is True and auto.load_from is None
    assert auto.work_dir == str(REPO / "work_dirs" / "toy_config")


def test_dist_train_script_usage() -> None:
    result = subprocess.run(["bash", str(REPO / "tools" / "dist_train.sh"), str(TOY_CONFIG)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "usage" in result.stderr
    script = (REPO / "tools" / "dist_train.sh").read_text()
    assert "torch.distributed.run" in script and "--launcher pytorch" in script


def test_amp_on_cpu_trains_in_bfloat16(tmp_path: Path) -> None:
    train = load_tool("train")
    cfg = train.build_config(train.parse_args([str(TOY_CONFIG), "--amp"]))
    assert cfg.optim_wrapper.type == ("AutocastOptimWrapper" if not torch.cuda.is_available()
                                      or torch.cuda.is_bf16_supported() else "AmpOptimWrapper")
    in_process = toy_cfg(tmp_path, {"train_cfg.max_iters": 3, "train_cfg.val_interval": 100,
                                    "custom_hooks": [], "optim_wrapper": cfg.optim_wrapper})
    runner = PerceptionRunner.from_cfg(in_process)
    dtypes = []
    runner.model.linear.register_forward_hook(
        lambda module, inputs, output: dtypes.append(output.dtype) if module.training else None)
    runner.train()
    assert dtypes == [torch.bfloat16] * 3  # the training forward ran under autocast
    losses = runner.message_hub.get_scalar("train/loss").data[0]
    assert len(losses) == 3 and np.isfinite(losses).all()
    assert runner.model.linear.weight.dtype == torch.float32  # master weights stay fp32


@pytest.fixture()
def restore_global_flags(monkeypatch: pytest.MonkeyPatch):
    """tools/train.py --deterministic switches torch's deterministic mode on process-wide."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    enabled = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(enabled)


@pytest.mark.slow
def test_resume_after_kill_matches_uninterrupted_run(reference_run: Path, tmp_path: Path,
                                                     restore_global_flags: None) -> None:
    work_dir = tmp_path / "killed"
    process = subprocess.Popen(
        train_command("--work-dir", str(work_dir), "--deterministic", "--cfg-options", "model.step_delay=0.5"),
        env=tool_env(), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while not (work_dir / "last_checkpoint").exists() and process.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint written in time"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
    assert (work_dir / "iter_4.pth").is_file() and not (work_dir / "iter_8.pth").exists()

    # the resume itself runs in-process (saves a subprocess start); global flags restored below
    argv = [str(TOY_CONFIG), "--work-dir", str(work_dir), "--resume", "--deterministic"]
    assert load_tool("train").main(argv) == 0
    (reference_dir,) = [p for p in reference_run.iterdir() if p.is_dir()]
    reference = scalars_of_run(reference_dir)
    resumed_dir = max((p for p in work_dir.iterdir() if p.is_dir()), key=lambda p: p.name)
    resumed = scalars_of_run(resumed_dir)
    assert sorted(resumed) == [5, 6, 7, 8]
    for step in resumed:
        for key in ("loss", "loss_mse", "loss_l1", "lr"):
            assert resumed[step][key] == pytest.approx(reference[step][key], rel=1e-6, abs=1e-9), (step, key)
    final_weights = (reference_run / "state_hash_rank0.txt").read_text()
    assert (work_dir / "state_hash_rank0.txt").read_text() == final_weights


@pytest.mark.slow
def test_ddp_two_processes_gloo(reference_run: Path, tmp_path: Path) -> None:
    python, script, *args = train_command("--work-dir", str(tmp_path), "--launcher", "pytorch")
    command = [python, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", script, *args]
    result = subprocess.run(command, env=tool_env(), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-5000:]
    hashes = [(tmp_path / f"state_hash_rank{r}.txt").read_text() for r in (0, 1)]
    assert hashes[0] == hashes[1]  # gradients were all-reduced: both replicas identical
    # each rank saw half of the data: a different run from the single-process one
    assert hashes[0] != (reference_run / "state_hash_rank0.txt").read_text()
    assert (tmp_path / "iter_8.pth").is_file()


def test_test_tool_metrics_match_direct_computation(known_checkpoint: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    checkpoint = known_checkpoint
    out = tmp_path / "metrics.json"
    code = load_tool("test").main([str(TOY_CONFIG), str(checkpoint), "--out", str(out),
                                   "--work-dir", str(tmp_path / "work")])
    assert code == 0
    metrics = json.loads(out.read_text())
    state = load_checkpoint_file(checkpoint)["state_dict"]
    weight, bias = state["linear.weight"].double().numpy()[0], float(state["linear.bias"])
    errors = []
    for index in range(8):  # the toy test set: 8 frames of seed 1
        frame = make_toy_frame(index, seed=1)
        prediction = frame.points.mean(axis=0).astype(np.float64) @ weight + bias
        errors.append(abs(prediction - toy_target(frame)))
    assert metrics["toy/count"] == 8
    assert metrics["toy/mae"] == pytest.approx(float(np.mean(errors)), rel=1e-5)
    assert "toy/mae" in capsys.readouterr().out


@pytest.fixture()
def known_checkpoint(tmp_path: Path) -> Path:
    """A checkpoint with known, non-trivial weights (no training needed)."""
    path = tmp_path / "known.pth"
    weight = torch.tensor(TRUE_WEIGHTS[None] * 0.5, dtype=torch.float32)
    torch.save({"meta": {}, "state_dict": {"linear.weight": weight, "linear.bias": torch.tensor([0.1])}}, path)
    return path
