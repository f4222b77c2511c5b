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


def test_revisit_drives_are_found_beside_the_val_infos_or_reported_absent(tmp_path):
    tool = load_tool()
    checkpoint = tmp_path / "fake.pth"
    checkpoint.write_bytes(b"")
    root = tmp_path / "data"
    root.mkdir()
    options = ["--cfg-options", f"test_dataloader.dataset.data_root={root}"]
    args = tool.parse_args([str(CONFIG), str(checkpoint), "--work-dir", str(tmp_path / "w"), *options])
    proof = tool.Proof(args)
    assert args.revisit_ann_file == "nuscenes_infos_revisit.pkl"  # the val ann_file, "val" -> "revisit"
    assert proof.revisit_infos() is None  # a dataset made without --revisits
    (root / "nuscenes_infos_revisit.pkl").write_bytes(b"")
    assert proof.revisit_infos() == root / "nuscenes_infos_revisit.pkl"
    other = tool.parse_args([str(CONFIG), str(checkpoint), "--work-dir", str(tmp_path / "w"), "--revisit-ann-file",
                             str(tmp_path / "elsewhere.pkl"), *options])
    assert tool.Proof(other).revisit_infos() is None


@pytest.mark.parametrize("slots", ["replace", "extra"])
def test_slot_outputs_mark_the_seeded_queries(slots):
    """The per-query view behind ``--query-stats``: learned queries first, seeds flagged where a
    ground-truth-drawn map seeded them (replace: the first slots; extra: the appended ones)."""
    import numpy as np
    import torch

    from perception.config import load_config
    from perception.registry import MODELS
    from perception.structures.det_sample import DetSample
    from perception.structures.geometry import make_transform, yaw_matrix
    from perception.structures.map_instances import MapInstances

    tool = load_tool()
    cfg = load_config(CONFIG)
    cfg.model.map_head.num_layers = 1
    cfg.model.map_head.num_seed_queries = 6 if slots == "extra" else 0
    cfg.model.bev_prior.query_init.update(slots=slots, max_queries=6)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.uniform([-15, -30, -2], [15, 30, 1], (2000, 3)), rng.uniform(0, 1, (2000, 2))],
                            axis=1).astype(np.float32)
    lines = np.stack([np.stack([np.linspace(-12, 12, 20), np.full(20, y)], axis=1) for y in (-8.0, 6.0)])
    sample = DetSample(token="t", class_names=("car",), lidar2global=make_transform(yaw_matrix(0.2), [5, 2, 0]),
                       gt_boxes=np.zeros((0, 9), np.float32), gt_labels=np.zeros(0, np.int64),
                       metainfo={"location": "town"},
                       gt_map=MapInstances(lines.astype(np.float32), np.array([0, 2]), ("divider", "ped_crossing",
                                                                                       "boundary"),
                                           np.array([False, False])))
    data = model.data_preprocessor({"inputs": {"points": [torch.from_numpy(points)]}, "data_samples": [sample]},
                                   False)
    with torch.no_grad():
        before = tool.slot_outputs(model, data)
        model.bev_prior.update_with_ground_truth([sample])
        model.global_map.commit()
        after = tool.slot_outputs(model, data)
    learned = model.map_head.num_queries
    total = learned + (6 if slots == "extra" else 0)
    assert before[0].shape == (total, model.map_head.num_points, 2) and not before[3].any()
    assert after[3].sum() >= 1 and ((after[0] >= -31) & (after[0] <= 31)).all()
    if slots == "extra":
        assert not after[3][:learned].any()
