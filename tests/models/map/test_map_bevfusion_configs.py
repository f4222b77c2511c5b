"""The camera and camera + LiDAR vector-map configs: BEVFusion's encoders + a MapTRHead.

Each config builds a BEVFusion detector whose only head is the map head (the range of the map
ground truth == the head's map range, the head's BEV range == the decoder's grid) and runs one
loss step; the tiny synthetic ones also predict LiDAR-frame map instances.  Data: the test
session's generated world (no images: random images with cameras around the horizon)."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

from perception.config import load_config
from perception.models.map import MapTRHead
from perception.registry import DATASETS, MODELS

CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs" / "maptr"
NEW = {f"{modality}_{data}": CONFIG_DIR / f"maptr_{modality}_{data}.py"
       for modality in ("camera", "fusion") for data in ("tiny_synthetic", "nuscenes")}


def fake_cameras(height: int, width: int, num: int = 6) -> dict[str, np.ndarray]:
    """Matrices of ``num`` pinhole cameras at the LiDAR origin looking around the horizon."""
    cam2img, lidar2cam = np.tile(np.eye(4), (num, 1, 1)), np.tile(np.eye(4), (num, 1, 1))
    for k in range(num):
        angle = 2 * np.pi * k / num
        forward, right = np.array([np.cos(angle), np.sin(angle), 0.0]), np.array([np.sin(angle), -np.cos(angle), 0.0])
        lidar2cam[k, :3, :3] = np.stack([right, [0.0, 0.0, -1.0], forward])
        cam2img[k, :3, :3] = [[width / 2, 0, width / 2], [0, width / 2, height / 2], [0, 0, 1]]
    return {"cam2img": cam2img, "lidar2cam": lidar2cam, "lidar2img": cam2img @ lidar2cam,
            "img_aug_matrix": np.tile(np.eye(4), (num, 1, 1)), "lidar_aug_matrix": np.eye(4)}


def lidar_map_dataset(cfg, root: Path) -> dict:
    """``cfg``'s val dataset on ``root`` with the image steps removed (the test world has none)."""
    dataset = copy.deepcopy(cfg.val_dataloader.dataset)
    dataset.update(data_root=str(root), with_cameras=False, ann_file="nuscenes_infos_train.pkl", test_mode=False)
    dataset.pipeline = [s for s in dataset.pipeline if s["type"] not in ("LoadMultiViewImages", "ImageAug3D",
                                                                        "ImageNormalize")]
    return dataset


@pytest.mark.parametrize("name", sorted(NEW))
def test_config_geometry(name: str) -> None:
    cfg = load_config(NEW[name])
    assert cfg.model.type == "BEVFusion" and list(cfg.model.heads) == ["map"]
    head = cfg.model.heads.map
    assert head.type == "MapTRHead" and list(head.map_range) == [-15.0, -30.0, 15.0, 30.0]
    for loader in ("train_dataloader", "val_dataloader"):
        steps = list(cfg[loader].dataset.pipeline)
        names = [s["type"] for s in steps]
        gt = steps[names.index("LoadVectorMapGT")]
        assert list(gt["pc_range"]) == list(head.map_range) and gt["num_points"] == head.num_points
        if "RandomFlip3D" in names:
            assert names.index("LoadVectorMapGT") > names.index("RandomFlip3D")
        assert cfg[loader].dataset.with_map
    pcr = cfg.model.data_preprocessor.voxel_layer.point_cloud_range if "lidar" in cfg.model.encoders \
        and cfg.model.encoders.lidar is not None else cfg.point_cloud_range
    assert list(head.bev_range) == [pcr[0], pcr[1], pcr[3], pcr[4]]
    assert ("camera" in name) == (cfg.model.encoders.get("lidar") is None)
    assert cfg.val_evaluator.type == "VectorMapMetric"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(NEW))
def test_config_builds_and_trains_a_step(name: str, tiny_synthetic_root: Path) -> None:
    init_default_scope("perception")
    cfg = load_config(NEW[name])
    image_size, cameras = list(cfg.image_size), 6
    if "nuscenes" in name:  # full-size weights, one small image: the step is about wiring, not speed
        image_size, cameras = [64, 176], 1
        cfg.model.encoders.camera.vtransform.update(image_size=image_size, feature_size=[8, 22])
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    assert isinstance(model.heads["map"], MapTRHead)
    dataset = DATASETS.build(lidar_map_dataset(cfg, tiny_synthetic_root))
    items = []
    for i in range(2 if "tiny" in name else 1):
        item = dataset[i]
        item["inputs"]["imgs"] = torch.randn(cameras, 3, *image_size)
        item["data_samples"].metainfo.update(fake_cameras(*image_size, num=cameras))
        assert item["data_samples"].gt_map is not None and len(item["data_samples"].gt_map) > 0
        items.append(item)
    batch = model.data_preprocessor(pseudo_collate(items), training=True)
    losses = model(**batch, mode="loss")
    assert {"map.loss_cls", "map.loss_pts", "map.loss_dir"} <= set(losses)
    total = sum(v for k, v in losses.items() if "loss" in k)
    assert torch.isfinite(total) and total > 0
    if "nuscenes" in name:
        return
    total.backward()
    backbone = model.encoders["camera"]["backbone"]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in backbone.parameters())
    model.eval()
    with torch.no_grad():
        out = model.test_step(pseudo_collate(items[:1]))
    pred = out[0].pred_map
    assert pred is not None and pred.points.shape == (50, 20, 2) and pred.scores is not None
    assert pred.points[..., 0].min() >= -15.0 and pred.points[..., 1].max() <= 30.0
