"""The detector's whole loop through the command-line tools on a generated synthetic world:
GT database -> tools/train.py (tiny CenterPoint, a few iterations) -> tools/test.py (official
DetectionEval) -> perception.apis inference on one frame."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY_CONFIG = REPO_ROOT / "configs" / "centerpoint" / "centerpoint_tiny_synthetic.py"


def _config_for(root: Path, out: Path) -> Path:
    """The tiny config pointed at ``root`` (every data path rewritten), one short epoch."""
    from perception.config import load_config

    cfg = load_config(TINY_CONFIG)
    prefix = f"{root}/"
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = prefix
        loader.num_workers = 0
        loader.persistent_workers = False
    sampler = cfg.train_dataloader.dataset.pipeline[0]
    assert sampler["type"] == "ObjectSample"
    sampler["db_sampler"]["info_path"] = prefix + "nuscenes_dbinfos_train.pkl"
    sampler["db_sampler"]["data_root"] = prefix
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        evaluator.data_root = prefix
    cfg.train_cfg.max_epochs = 2
    cfg.train_cfg.val_interval = 3
    cfg.param_scheduler[0].end = 2
    cfg.default_hooks.checkpoint.interval = 2
    path = out / "tiny_config.py"
    cfg.dump(str(path))
    return path


def _run(args: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_train_test_and_infer_tiny_detector(tiny_synthetic_root: Path, tmp_path: Path) -> None:
    from perception.datasets.gt_database import create_gt_database

    create_gt_database((str(tiny_synthetic_root / "nuscenes_infos_train.pkl"), str(tiny_synthetic_root), 9),
                       tiny_synthetic_root)
    config = _config_for(tiny_synthetic_root, tmp_path)
    work_dir = tmp_path / "work"
    _run(["tools/train.py", str(config), "--work-dir", str(work_dir)])
    checkpoint = Path((work_dir / "last_checkpoint").read_text().strip())
    assert checkpoint.is_file() and (work_dir / "loss_curve.png").stat().st_size > 1000

    metrics_path = tmp_path / "metrics.json"
    _run(["tools/test.py", str(config), str(checkpoint), "--out", str(metrics_path),
          "--work-dir", str(tmp_path / "test")])
    metrics = json.loads(metrics_path.read_text())
    nds = [value for key, value in metrics.items() if key.endswith("NDS")]
    assert len(nds) == 1 and 0.0 <= nds[0] <= 1.0
    assert any(key.endswith("AP_car") for key in metrics)

    from perception.apis import inference_detector, init_model
    from perception.datasets import NuScenesDataset

    model = init_model(str(config), str(checkpoint))
    dataset = NuScenesDataset(ann_file=str(tiny_synthetic_root / "nuscenes_infos_val.pkl"),
                              data_root=str(tiny_synthetic_root), load_sweeps=9, with_cameras=False)
    boxes = inference_detector(model, dataset.get_frame(0))
    assert boxes.scores is not None and len(boxes) <= 500
    assert np.isfinite(boxes.data[:, :7]).all()
    assert ((boxes.labels >= 0) & (boxes.labels < 10)).all()
