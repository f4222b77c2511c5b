"""The BEVFusion segmentation configs: target grid == head grid, and the tiny synthetic ones train
one step, predict and score end to end on a generated world."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

from perception.config import load_config
from perception.registry import DATASETS, METRICS, MODELS

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "bevfusion"
SEG_CONFIGS = sorted(CONFIG_DIR.glob("bevfusion_seg_*.py"))
TINY = ["camera", "lidar", "fusion"]


def test_six_seg_configs_exist() -> None:
    names = {p.stem for p in SEG_CONFIGS}
    for modality in TINY:
        for data in ("tiny_synthetic", "nuscenes"):
            assert f"bevfusion_seg_{modality}_{data}" in names


def _steps(cfg: Any, name: str) -> list[dict]:
    return [dict(step) for step in cfg[name].dataset.pipeline]


@pytest.mark.parametrize("path", SEG_CONFIGS, ids=[p.stem for p in SEG_CONFIGS])
def test_target_matches_head(path: Path) -> None:
    cfg = load_config(path)
    head = cfg.model.heads.map
    assert list(cfg.model.heads) == ["map"] and head.type == "BEVSegmentationHead"
    for loader in ("train_dataloader", "val_dataloader"):
        steps = _steps(cfg, loader)
        names = [s["type"] for s in steps]
        target = steps[names.index("LoadBEVSegmentation")]
        assert [target["x_range"], target["y_range"], target["resolution"]] == \
            [head.grid.x_range, head.grid.y_range, head.grid.resolution]
        assert list(target["classes"]) == list(head.classes) == list(cfg.val_evaluator.classes)
        if "GlobalRotScaleTrans" in names:  # the target is drawn after the 3-D augmentations
            assert names.index("LoadBEVSegmentation") > names.index("RandomFlip3D")
    assert cfg.val_evaluator.type == "BEVSegMetric"


def _on_root(cfg: Any, root: Path) -> Any:
    """A dataset config of ``cfg`` reading ``root`` (dataset and LoadBEVSegmentation)."""
    dataset = copy.deepcopy(cfg)
    dataset.data_root = str(root)
    for step in dataset.pipeline:
        if "data_root" in step:
            step["data_root"] = str(root)
    return dataset


def fake_cameras(height: int, width: int, num: int = 6) -> dict[str, np.ndarray]:
    """Camera matrices of ``num`` cameras at the LiDAR origin looking around the horizon."""
    cam2img, lidar2cam = np.tile(np.eye(4), (num, 1, 1)), np.tile(np.eye(4), (num, 1, 1))
    for k in range(num):
        angle = 2 * np.pi * k / num
        forward = np.array([np.cos(angle), np.sin(angle), 0.0])
        right = np.array([np.sin(angle), -np.cos(angle), 0.0])
        lidar2cam[k, :3, :3] = np.stack([right, [0.0, 0.0, -1.0], forward])
        cam2img[k, :3, :3] = [[width / 2, 0, width / 2], [0, width / 2, height / 2], [0, 0, 1]]
    return {"cam2img": cam2img, "lidar2cam": lidar2cam, "lidar2img": cam2img @ lidar2cam,
            "img_aug_matrix": np.tile(np.eye(4), (num, 1, 1))}


def with_images(item: dict, image_size: list[int]) -> dict:
    """A LiDAR pipeline item plus random images and their matrices (the generated world of the
    test session has no images)."""
    item["inputs"]["imgs"] = torch.randn(6, 3, *image_size)
    item["data_samples"].metainfo.update(fake_cameras(*image_size))
    return item


@pytest.mark.slow
@pytest.mark.parametrize("modality", TINY)
def test_tiny_config_trains_predicts_and_scores(modality: str, tiny_synthetic_root: Path) -> None:
    """One loss step, a prediction and the metric with each tiny config's model and the LiDAR
    config's data pipelines (real LiDAR and map targets; images random for the camera models)."""
    init_default_scope("perception")
    cfg = load_config(CONFIG_DIR / f"bevfusion_seg_{modality}_tiny_synthetic.py")
    data_cfg = load_config(CONFIG_DIR / "bevfusion_seg_lidar_tiny_synthetic.py")
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)

    def items(loader: str, indices: list[int]) -> list[dict]:
        dataset = DATASETS.build(_on_root(data_cfg[loader].dataset, tiny_synthetic_root))
        out = [dataset[i] for i in indices]
        return [with_images(item, cfg.image_size) for item in out] if modality != "lidar" else out

    batch = model.data_preprocessor(pseudo_collate(items("train_dataloader", [0, 1])), training=True)
    losses = model(**batch, mode="loss")
    assert sorted(losses) == sorted(f"map.loss_seg_{c}" for c in cfg.map_classes)
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    model.eval()
    with torch.no_grad():
        outputs = model.test_step(pseudo_collate(items("val_dataloader", [0])))
    pred = outputs[0].pred_bev_seg
    assert pred.shape == outputs[0].gt_bev_seg.shape == (6, 100, 100)
    assert outputs[0].gt_bev_seg.any()
    metric = METRICS.build(cfg.val_evaluator)
    metric.process({}, outputs)
    scores = metric.compute_metrics(metric.results)
    assert 0.0 <= scores["mIoU"] <= 1.0 and "divider/iou@0.35" in scores


def test_tiny_configs_share_budget_and_camera() -> None:
    """The three tiny configs differ only in their encoders: same decoder neck, head, data,
    schedule; the camera-only and fusion models read the same images at the same stride."""
    cfgs = {m: load_config(CONFIG_DIR / f"bevfusion_seg_{m}_tiny_synthetic.py") for m in TINY}
    lidar = cfgs["lidar"]
    for modality, cfg in cfgs.items():
        assert cfg.max_epochs == lidar.max_epochs and cfg.param_scheduler == lidar.param_scheduler, modality
        assert cfg.train_dataloader.batch_size == lidar.train_dataloader.batch_size, modality
        assert cfg.model.heads == lidar.model.heads and cfg.model.decoder.neck == lidar.model.decoder.neck, modality
        assert cfg.train_dataloader.dataset.ann_file == lidar.train_dataloader.dataset.ann_file, modality
    cams = [cfgs[m].model.encoders.camera for m in ("camera", "fusion")]
    assert cams[0].backbone == cams[1].backbone and cams[0].neck == cams[1].neck
    for cam, cfg in zip(cams, (cfgs["camera"], cfgs["fusion"])):
        aug = [s for s in _steps(cfg, "train_dataloader") if s["type"] == "ImageAug3D"][0]
        assert list(cam.vtransform.image_size) == list(aug["final_dim"])
        stride = 2 ** (cam.backbone.out_indices[0] + 2)  # ResNet stage i: stride 2**(i+2)
        assert [s * stride for s in cam.vtransform.feature_size] == list(cam.vtransform.image_size)
    assert cams[1].vtransform.type == "DepthLSSTransform" and cams[0].vtransform.type == "LSSTransform"
