"""tools/hrmap_proof.py: arguments, a clear error for a missing checkpoint, and the protocol's configs."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "hrmapnet" / "hrmapnet_maptr_tiny_synthetic.py"


def load_tool():
    spec = importlib.util.spec_from_file_location("hrmap_proof_tool", REPO / "tools" / "hrmap_proof.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    tool = load_tool()
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        tool.main([str(CONFIG), str(tmp_path / "missing.pth"), "--work-dir", str(tmp_path)])


def test_protocol_configs_switch_the_prior_and_fusion(tmp_path):
    tool = load_tool()
    checkpoint = tmp_path / "fake.pth"
    checkpoint.write_bytes(b"")
    args = tool.parse_args([str(CONFIG), str(checkpoint), "--work-dir", str(tmp_path), "--fusion", "probabilistic",
                            "--threshold", "0.5", "--increment", "40", "--decay", "20"])
    proof = tool.Proof(args)
    on, off = proof.config(), proof.config("nuscenes_infos_train.pkl", enabled=False)
    assert on.model.bev_prior.enabled and not off.model.bev_prior.enabled
    assert on.model.bev_prior.global_map.fusion == "probabilistic"
    assert (on.model.bev_prior.global_map.increment, on.model.bev_prior.global_map.decay) == (40, 20)
    assert on.model.bev_prior.update_score_threshold == 0.5
    assert off.test_dataloader.dataset.ann_file == "nuscenes_infos_train.pkl"


def test_train_drives_default_to_the_configs_train_split_and_options_parse(tmp_path):
    tool = load_tool()
    checkpoint = tmp_path / "fake.pth"
    checkpoint.write_bytes(b"")
    args = tool.parse_args([str(CONFIG), str(checkpoint), "--work-dir", str(tmp_path), "--skip-trainmap",
                            "--figure", str(tmp_path / "f.png"), "--figure-frames", "3"])
    tool.Proof(args)
    assert args.train_ann_file == "nuscenes_infos_train.pkl"  # the config's val ann_file, "val" -> "train"
    assert args.skip_trainmap and args.figure == tmp_path / "f.png" and args.figure_frames == [3]
