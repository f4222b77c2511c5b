"""STR through tools/train.py and tools/test.py (mmengine Runner) on the real AV2 scenario."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "str" / "str_small_synthetic.py"


def _options(root: Path) -> list[str]:
    data = f"{root}/"
    return ["--cfg-options", f"train_dataloader.dataset.data_root={data}", "train_dataloader.dataset.split=val",
            f"val_dataloader.dataset.data_root={data}", f"test_dataloader.dataset.data_root={data}",
            "val_dataloader.dataset.now_offsets=[0]", "test_dataloader.dataset.now_offsets=[0]",
            "train_dataloader.batch_size=4", "val_dataloader.batch_size=8", "test_dataloader.batch_size=8",
            "model.backbone.preset=tiny", "train_cfg.max_iters=2", "train_cfg.val_interval=2",
            "default_hooks.checkpoint.interval=2"]


@pytest.mark.slow
@pytest.mark.real_data
def test_train_then_test_str(tmp_path: Path, av2_motion_scenario_dir: Path) -> None:
    root = av2_motion_scenario_dir.parent.parent
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", PYTHONPATH=str(REPO))
    work = tmp_path / "work"
    subprocess.run([sys.executable, str(REPO / "tools/train.py"), str(CONFIG), "--work-dir", str(work),
                    *_options(root)], check=True, env=env, cwd=REPO, capture_output=True, timeout=600)
    checkpoint = work / "iter_2.pth"
    assert checkpoint.is_file()
    out = tmp_path / "metrics.json"
    done = subprocess.run([sys.executable, str(REPO / "tools/test.py"), str(CONFIG), str(checkpoint), "--out", str(out),
                           "--work-dir", str(work), *_options(root)], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads(out.read_text())
    for key in ("motion/minADE_6", "motion/minFDE_6", "motion/MR_6", "motion/brier_minFDE_6", "motion/plan_L2"):
        assert math.isfinite(metrics[key]), key
    assert metrics["motion/num_agents"] == 2 and metrics["motion/num_plans"] == 1
    assert metrics["motion/brier_minFDE_6"] >= metrics["motion/minFDE_6"]
    # the trained checkpoint behind the planning contract
    from perception.planning.motion_data import load_av2_scenario
    from perception.planning.str_planner import STRPlanner

    planner = STRPlanner.from_config(CONFIG, checkpoint, cfg_options={"model.backbone.preset": "tiny"})
    scene = load_av2_scenario(av2_motion_scenario_dir)
    plan = planner.plan(scene)
    assert plan.shape == (60, 3) and np.isfinite(plan).all()
    trajectories, scores = planner.predict(scene)
    assert trajectories.shape == (len(scene.focal_track_ids), 6, 60, 2)
