"""LossCurveHook's curves and PNG, the ProgressBarHook, and the cosine / one-cycle schedules
of configs/_base_/schedules as mmengine builds them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper
from mmengine.registry import PARAM_SCHEDULERS
from PIL import Image

from perception.config import load_config
from perception.engine.hooks.loss_curve import loss_curves, plot_loss_curves
from perception.registry import HOOKS

SCHEDULES = Path(__file__).resolve().parents[2] / "configs" / "_base_" / "schedules"


def test_loss_curves_align_last_value_with_iteration() -> None:
    hub = MessageHub.get_instance("loss-curve-test")
    for i in range(5):
        hub.update_scalar("train/loss", 10.0 - i)
        hub.update_scalar("train/loss_cls", 1.0 + i)
        hub.update_scalar("train/lr", 0.1)
        hub.update_scalar("val/loss", 3.0)
    curves = loss_curves(hub, last_iter=12)  # e.g. resumed at 7: the buffer holds iters 8..12
    assert sorted(curves) == ["loss", "loss_cls"]
    iterations, values = curves["loss"]
    assert iterations.tolist() == [8, 9, 10, 11, 12] and values.tolist() == [10, 9, 8, 7, 6]


def test_plot_writes_png(tmp_path: Path) -> None:
    curves = {"loss": (np.arange(1, 6), np.array([5.0, 3, 2, 1.5, 1])),
              "loss_bbox": (np.arange(1, 6), np.array([-1.0, -2, -2.5, -3, -3.2]))}
    path = plot_loss_curves(curves, tmp_path / "curve.png", title="t")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (800, 500)
    assert [p.name for p in tmp_path.iterdir()] == ["curve.png"]  # no temporary left


def test_hooks_registered_and_validated() -> None:
    hook = HOOKS.build(dict(type="LossCurveHook", filename="curves.png"))
    assert hook.filename == "curves.png"
    with pytest.raises(ValueError, match="png"):
        HOOKS.build(dict(type="LossCurveHook", filename="curves.jpg"))
    assert HOOKS.build(dict(type="ProgressBarHook", disable=True)).disable is True


def _lrs(config: str, epoch_length: int) -> tuple[np.ndarray, object]:
    cfg = load_config(SCHEDULES / config)
    model = torch.nn.Linear(2, 1)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    defaults = dict(optimizer=wrapper, epoch_length=epoch_length)
    schedulers = [PARAM_SCHEDULERS.build(dict(s), default_args=defaults) for s in cfg.param_scheduler]
    lrs = []
    for _ in range(cfg.train_cfg.max_epochs * epoch_length):
        lrs.append(wrapper.get_lr()["lr"][0])
        wrapper.step()  # no gradients: a no-op, keeps torch's step-order check quiet
        for scheduler in schedulers:
            scheduler.step()
    return np.array(lrs), cfg


def test_cosine_schedule_warms_up_then_anneals() -> None:
    lrs, cfg = _lrs("cosine.py", epoch_length=200)  # 4000 iterations
    lr = cfg.optim_wrapper.optimizer.lr
    assert cfg.optim_wrapper.type == "OptimWrapper" and cfg.optim_wrapper.clip_grad.max_norm == 35
    assert lrs[0] == pytest.approx(0.1 * lr)
    peak = int(np.argmax(lrs))
    assert 900 <= peak <= 1000 and lrs.max() <= lr * (1 + 1e-9)
    assert np.all(np.diff(lrs[peak:]) <= 1e-15)  # non-increasing after the warm-up
    assert lrs[-1] < lr * 1e-3


def test_onecycle_schedule_peaks_at_40_percent() -> None:
    lrs, cfg = _lrs("onecycle.py", epoch_length=50)  # 1000 iterations
    eta_max = cfg.param_scheduler[0].eta_max
    assert lrs[0] == pytest.approx(eta_max / 10)
    assert int(np.argmax(lrs)) == pytest.approx(400, abs=2) and lrs.max() == pytest.approx(eta_max)
    assert lrs[-1] == pytest.approx(eta_max / 10 / 1e4, rel=0.05)
