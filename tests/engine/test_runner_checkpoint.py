"""PerceptionRunner checkpoints: weights-only loads of everything mmengine saves, an exact
resume round trip, clear errors for truncated/corrupt files, atomic writes under failure."""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.fileio import LocalBackend
from mmengine.logging import HistoryBuffer
from mmengine.runner import Runner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from toy_runs import toy_cfg  # noqa: E402

from perception.engine import CheckpointError, PerceptionRunner, load_checkpoint_file  # noqa: E402
from perception.engine.checkpoint import checkpoint_safe_globals  # noqa: E402

ONECYCLE = [dict(type="OneCycleLR", eta_max=0.05, total_steps=4, by_epoch=False)]
EMA_HOOKS = [dict(type="EMAHook", momentum=0.1), dict(type="LossCurveHook")]


def train(work_dir: Path, max_iters: int = 4, **options) -> PerceptionRunner:
    cfg = toy_cfg(work_dir, {"train_cfg.max_iters": max_iters, "train_cfg.val_interval": 100,
                             "default_hooks.checkpoint.interval": 2, **options})
    runner = PerceptionRunner.from_cfg(cfg)
    runner.train()
    return runner


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def allowlisted_names() -> set[str]:
    return {e[1] if isinstance(e, tuple) else f"{e.__module__}.{e.__qualname__}"
            for e in checkpoint_safe_globals()}


@pytest.mark.parametrize("options", [{}, {"param_scheduler": ONECYCLE, "custom_hooks": EMA_HOOKS}],
                         ids=["cosine", "onecycle+ema"])
def test_weights_only_load_of_mmengine_checkpoint(tmp_path: Path, options: dict) -> None:
    train(tmp_path, **options)
    path = tmp_path / "iter_4.pth"
    unsafe = set(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    # what mmengine pickles beyond tensors: the message hub's HistoryBuffers (and getattr of
    # their statistics methods), numpy arrays/scalars; all of it and nothing else is allowlisted
    assert {"mmengine.logging.history_buffer.HistoryBuffer", "builtins.getattr", "numpy.ndarray",
            "numpy.core.multiarray._reconstruct", "numpy.core.multiarray.scalar"} <= unsafe
    assert unsafe <= allowlisted_names()
    with pytest.raises(Exception, match="Weights only load failed"):
        torch.load(path, weights_only=True)  # plain torch (and so plain mmengine) cannot read it
    checkpoint = load_checkpoint_file(path)
    assert checkpoint["meta"]["iter"] == 4
    buffer = checkpoint["message_hub"]["log_scalars"]["train/loss"]
    assert isinstance(buffer, HistoryBuffer) and len(buffer.data[0]) == 4
    assert buffer.mean(2) == pytest.approx(float(np.mean(buffer.data[0][-2:])))
    if "custom_hooks" in options:
        assert set(checkpoint["ema_state_dict"]) >= {"module.linear.weight", "steps"}
        assert checkpoint["param_schedulers"][0]["anneal_func"].__name__ == "_annealing_cos"
    assert HistoryBuffer not in torch.serialization.get_safe_globals()  # allowlisted only during the load


def test_resume_round_trip_is_exact(tmp_path: Path) -> None:
    full = train(tmp_path / "full")
    resumed_cfg = toy_cfg(tmp_path / "resumed", {"train_cfg.max_iters": 4, "train_cfg.val_interval": 100,
                                                 "default_hooks.checkpoint.interval": 2})
    resumed_cfg.resume, resumed_cfg.load_from = True, str(tmp_path / "full" / "iter_2.pth")
    resumed = PerceptionRunner.from_cfg(resumed_cfg)
    resumed.train()
    reference = load_checkpoint_file(tmp_path / "full" / "iter_4.pth")
    for key, value in resumed.model.state_dict().items():
        assert torch.equal(value, reference["state_dict"][key]), key
    assert torch.equal(resumed.model.linear.weight, full.model.linear.weight)
    # optimizer moments, scheduler position and the loss history came back too
    assert resumed.optim_wrapper.get_lr()["lr"] == full.optim_wrapper.get_lr()["lr"]
    history = resumed.message_hub.get_scalar("train/loss").data[0]
    np.testing.assert_array_equal(history, full.message_hub.get_scalar("train/loss").data[0])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> PerceptionRunner:
    return train(tmp_path_factory.mktemp("trained"))


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage"])
def test_damaged_checkpoint_names_the_file(trained: PerceptionRunner, tmp_path: Path, damage: str) -> None:
    data = (Path(trained.work_dir) / "iter_4.pth").read_bytes()
    path = tmp_path / f"{damage}.pth"
    path.write_bytes({"truncated": data[: len(data) // 2], "empty": b"",
                      "garbage": np.random.default_rng(0).bytes(4096)}[damage])
    with pytest.raises(CheckpointError, match=rf"checkpoint {path} is truncated or corrupt"):
        load_checkpoint_file(path)
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        trained.resume(str(path))
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_checkpoint_file(tmp_path / "missing.pth")


def test_object_outside_allowlist_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "payload": Path("/etc/passwd")}, path)
    with pytest.raises(CheckpointError, match=r"outside the weights-only allowlist.*pathlib"):
        load_checkpoint_file(path)


def _failing_put(self, obj: bytes, filepath) -> None:
    """Write half the bytes to the target, then fail like a full disk."""
    with open(filepath, "wb") as stream:
        stream.write(obj[: len(obj) // 2])
    raise OSError(28, "No space left on device")


def test_failed_save_keeps_previous_checkpoint(trained: PerceptionRunner, monkeypatch) -> None:
    work_dir = Path(trained.work_dir)
    target, last = work_dir / "iter_4.pth", work_dir / "last_checkpoint"
    before, last_before = sha(target), last.read_text()
    monkeypatch.setattr(LocalBackend, "put", _failing_put)
    with pytest.raises(OSError, match="No space left"):
        trained.save_checkpoint(str(work_dir), "iter_4.pth", by_epoch=False)
    assert sha(target) == before and last.read_text() == last_before
    assert load_checkpoint_file(target)["meta"]["iter"] == 4
    assert not list(work_dir.glob(".*.tmp")), "temporary file left behind"
    # control: mmengine's own (non-atomic) save destroys the old file in the same situation
    control = work_dir / "control.pth"
    control.write_bytes(target.read_bytes())
    with pytest.raises(OSError):
        Runner.save_checkpoint(trained, str(work_dir), "control.pth", by_epoch=False)
    assert sha(control) != before


def test_failed_save_during_training_keeps_last_checkpoint(tmp_path: Path, monkeypatch) -> None:
    calls = {"n": 0}
    real_put = LocalBackend.put

    def put_failing_second_checkpoint(self, obj, filepath):
        if str(filepath).endswith(".tmp"):
            calls["n"] += 1
            if calls["n"] == 2:
                return _failing_put(self, obj, filepath)
        return real_put(self, obj, filepath)

    monkeypatch.setattr(LocalBackend, "put", put_failing_second_checkpoint)
    with pytest.raises(OSError):
        train(tmp_path)
    assert (tmp_path / "last_checkpoint").read_text().strip() == str(tmp_path / "iter_2.pth")
    assert not (tmp_path / "iter_4.pth").exists()
    assert load_checkpoint_file(tmp_path / "iter_2.pth")["meta"]["iter"] == 2
