"""tools/autotune.py end to end on the synthetic data: tunes, writes the cache, prints the
table, and reuses the cache on the second run (restricted search space, small grid)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "sparse_encoder" / "sparse_encoder_synthetic.py"


def load_tool():
    spec = importlib.util.spec_from_file_location("autotune_tool", REPO / "tools" / "autotune.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_autotune_tool_on_synthetic(tmp_path, capsys, tiny_synthetic_root):
    tool = load_tool()
    argv = [str(CONFIG), "--samples", "1", "--mode", "inference", "--defaults-only",
            "--dataflows", "gather_gemm_scatter", "implicit_gemm", "--backends", "native",
            "--repeats", "1", "--warmup", "0", "--no-greedy", "--cache-dir", str(tmp_path),
            "--cfg-options", "data_preprocessor.voxel_size=[0.8,0.8,0.2]",
            f"val_dataloader.dataset.data_root={tiny_synthetic_root}",
            "model.sparse_shape=[41,128,128]", "model.output_channels=32",
            "model.encoder_channels=[[16,16,32],[32,32,32],[32,32,32],[32,32]]"]
    assert tool.main(argv) == 0
    out = capsys.readouterr().out
    files = list(tmp_path.glob("SparseEncoder-*.json"))
    assert len(files) == 1
    data = json.loads(files[0].read_text())
    groups = data["modes"]["inference"]["groups"]
    assert "subm k3x3x3 s1x1x1 ts1x1x1 5->16" in [g["label"] for g in groups]
    assert all(g["config"]["dataflow"] in ("gather_gemm_scatter", "implicit_gemm")
               and g["config"]["backend"] == "native" for g in groups)
    times = data["modes"]["inference"]
    assert times["time_tuned"] <= times["time_best_fixed"] <= times["time_default"]
    assert "== inference" in out and "best fixed" in out and "(reused)" not in out
    assert tool.main(argv) == 0  # second run: from the cache
    assert "(reused)" in capsys.readouterr().out


@pytest.mark.slow
def test_autotune_detector_config_is_picked_up_by_auto(tmp_path, tiny_synthetic_root):
    """Tuning a detector config tunes its sparse encoder; the detector built from the same config
    with ``execution='auto'`` and that cache folder then runs the tuned configs."""
    import torch

    from perception.config import load_config
    from perception.registry import MODELS
    from perception_ops.sparse.autotune.groups import conv_modules

    tool = load_tool()
    config = REPO / "configs" / "centerpoint" / "centerpoint_tiny_synthetic.py"
    options = [f"val_dataloader.dataset.data_root={tiny_synthetic_root}",
               f"model.pts_middle_encoder.execution_cache_dir={tmp_path}"]
    argv = [str(config), "--samples", "1", "--mode", "inference", "--defaults-only",
            "--dataflows", "fetch_on_demand", "--backends", "native", "--repeats", "1", "--warmup", "0",
            "--no-greedy", "--cache-dir", str(tmp_path), "--cfg-options", *options]
    assert tool.main(argv) == 0
    assert len(list(tmp_path.glob("SparseEncoder-*.json"))) == 1
    cfg = load_config(config, dict(o.split("=", 1) for o in options[1:]))
    detector = MODELS.build(cfg.model).eval()
    encoder = detector.pts_middle_encoder
    sparse = cfg.model.pts_middle_encoder.sparse_shape
    coors = torch.tensor([[0, 1, 10, 10], [0, 1, 10, 11], [0, 2, 20, 20]], dtype=torch.int32)
    assert sparse[0] > 2
    with torch.no_grad():
        encoder(torch.randn(3, encoder.in_channels), coors, 1)
    assert encoder.execution_applied.startswith("tuned"), encoder.execution_applied
    cached = json.loads(next(tmp_path.glob("SparseEncoder-*.json")).read_text())
    expected = {name: group["config"]["dataflow"] for group in cached["modes"]["inference"]["groups"]
                for name in group["modules"]}
    chosen = {name: layer.execution_for("inference").dataflow for name, layer in conv_modules(encoder).items()}
    assert chosen == expected
    assert set(chosen.values()) <= {"fetch_on_demand", "gather_gemm_scatter"}
