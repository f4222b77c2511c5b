"""BEVFusion detector: every configs/bevfusion/*_det_* config builds with one BEV grid shared by
the camera and LiDAR branches and the head; the tiny synthetic configs (camera, LiDAR, fused)
train (finite losses, gradients into both branches) and predict on a generated six-camera
frame; heads follow the stack's contract (a second map head is fed the same BEV map); the full
fused nuScenes model runs on the real keyframe (slow)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from torch import nn

from perception.apis import init_model
from perception.apis.inference import build_test_pipeline
from perception.config import load_config
from perception.models.detectors.bevfusion import BEVFusion, CenterHeadAdapter
from perception.registry import MODELS, TRANSFORMS
from perception.structures import Boxes3D, CameraView, Frame
from perception.structures.conventions import CAMERA_NAMES_NUSCENES

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "bevfusion"
DET_CONFIGS = sorted(CONFIG_DIR.glob("*_det_*.py"))
TINY = {m: CONFIG_DIR / f"bevfusion_det_{m}_tiny_synthetic.py" for m in ("camera", "lidar", "fusion")}


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def synthetic_frame(seed: int = 0) -> Frame:
    """Six 450 x 800 noise images on a nuScenes-like rig, 3000 points and three boxes."""
    rng = np.random.default_rng(seed)
    cameras = {}
    for i, name in enumerate(CAMERA_NAMES_NUSCENES):
        yaw = np.deg2rad([0, -55, 55, 180, 110, -110][i])
        forward, right = np.array([np.cos(yaw), np.sin(yaw), 0]), np.array([np.sin(yaw), -np.cos(yaw), 0])
        cam2ego = np.eye(4)
        cam2ego[:3, :3] = np.stack([right, [0, 0, -1], forward], axis=1)
        cam2ego[:3, 3] = [1.0, 0.0, 1.5]
        cameras[name] = CameraView(name, f"/none/{name}.jpg", np.array([[630.0, 0, 400], [0, 630.0, 225], [0, 0, 1]]),
                                   cam2ego, 0.0, image=rng.integers(0, 255, (450, 800, 3), dtype=np.uint8))
    points = np.c_[rng.uniform(-40, 40, (3000, 2)), rng.uniform(-2, 1, 3000), rng.uniform(0, 1, 3000),
                   np.zeros(3000)].astype(np.float32)
    boxes = Boxes3D(np.array([[10.0, 5.0, -0.8, 4.5, 1.9, 1.6, 0.3, 1.0, 0.0], [-12.0, 8.0, -0.9, 0.7, 0.7, 1.8, 0, 0, 0],
                              [3.0, -20.0, -0.5, 10.0, 2.5, 3.2, 1.2, 0, 0]]), np.array([0, 7, 1]))
    return Frame(token=f"synthetic-{seed}", timestamp=0.0, dataset="test", points=points,
                 point_features=("x", "y", "z", "intensity", "time_lag"), lidar2ego=np.eye(4), ego2global=np.eye(4),
                 class_names=("car", "truck", "trailer", "bus", "construction_vehicle", "bicycle", "motorcycle",
                              "pedestrian", "traffic_cone", "barrier"), boxes=boxes, cameras=cameras)


def train_batch(cfg, frames: list[Frame]) -> dict:
    pipeline = [TRANSFORMS.build(step) for step in cfg.train_dataloader.dataset.pipeline]
    items = []
    for frame in frames:
        data = {"frame": frame, "sample_idx": 0}
        for step in pipeline:
            data = step(data)
        items.append(data)
    return pseudo_collate(items)


@pytest.mark.parametrize("path", DET_CONFIGS, ids=[p.stem for p in DET_CONFIGS])
def test_configs_share_one_bev_grid(path: Path) -> None:
    cfg = load_config(path)
    model = MODELS.build(cfg.model)
    assert isinstance(model, BEVFusion) and isinstance(model.heads["object"], CenterHeadAdapter)
    modality = path.stem.split("_")[2]
    assert model.modalities == {"camera": ("camera",), "lidar": ("lidar",), "fusion": ("camera", "lidar")}[modality]
    head_cfg = cfg.model.heads.object
    grid_xy = np.array(head_cfg.train_cfg.grid_size[:2])
    stride = head_cfg.train_cfg.out_size_factor
    rng = head_cfg.train_cfg.point_cloud_range
    if "camera" in model.modalities:
        vt = model.encoders["camera"]["vtransform"]
        ds = cfg.model.encoders.camera.vtransform.downsample
        ny, nx = vt.bev_shape
        step = cfg.model.encoders.camera.vtransform.xbound[2] * ds
        assert cfg.model.encoders.camera.vtransform.xbound[:2] == [rng[0], rng[3]]
        assert cfg.model.encoders.camera.vtransform.ybound[:2] == [rng[1], rng[4]]
        # the camera map has the LiDAR encoder's cells: voxel grid / encoder stride (8 full, 4 tiny)
        encoder_stride = round(step / head_cfg.train_cfg.voxel_size[0])
        assert (nx // ds, ny // ds) == tuple(grid_xy // encoder_stride)
    assert cfg.model.data_preprocessor.type == "BEVFusionDataPreprocessor"
    assert (grid_xy % stride == 0).all()


@pytest.mark.slow
@pytest.mark.parametrize("modality", ["camera", "fusion"])
def test_tiny_configs_train_and_predict(modality: str) -> None:
    torch.manual_seed(0)
    np.random.seed(0)
    cfg = load_config(TINY[modality])
    model = MODELS.build(cfg.model)
    batch = model.data_preprocessor(train_batch(cfg, [synthetic_frame(0)]), training=True)
    model.train()
    losses = model.loss(batch["inputs"], batch["data_samples"])
    assert losses and all(k.startswith("object.task") for k in losses)
    total = sum(v for k, v in losses.items() if "loss" in k)
    assert torch.isfinite(total)
    total.backward()
    for name in model.modalities:
        first = next(p for p in model.encoders[name].parameters() if p.requires_grad)
        assert first.grad is not None and first.grad.abs().sum() > 0, name
    model.eval()
    data = build_test_pipeline(cfg)({"frame": synthetic_frame(2), "sample_idx": 0})
    if modality != "lidar":
        assert tuple(data["inputs"]["imgs"].shape) == (6, 3, 128, 352)
    with torch.no_grad():
        out = model.test_step(pseudo_collate([data]))
    assert isinstance(out[0].pred, Boxes3D) and out[0].pred.scores is not None


class MapHead(nn.Module):
    """A stand-in map head with the contract API: records the BEV map it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.seen: list[tuple[int, ...]] = []

    def loss(self, bev, samples):
        self.seen.append(tuple(bev.shape))
        return {"loss_seg": bev.mean() * self.scale, "acc": torch.tensor(0.5)}

    def predict(self, bev, samples):
        import dataclasses
        return [dataclasses.replace(s, pred_bev_seg=torch.zeros(6, 4, 4)) for s in samples]


def test_heads_contract_loss_scale_and_errors() -> None:
    cfg = load_config(TINY["lidar"])
    model_cfg = cfg.model.to_dict()
    map_head = MapHead()
    model_cfg["heads"]["map"] = map_head
    model_cfg["loss_scale"] = dict(map=3.0)
    model = MODELS.build(model_cfg)
    batch = model.data_preprocessor(train_batch(cfg, [synthetic_frame(0)]), training=True)
    losses = model.loss(batch["inputs"], batch["data_samples"])
    assert map_head.seen == [(1, 256, 64, 64)]
    total = sum(v for k, v in losses.items() if "loss" in k)
    total.backward()  # the LiDAR-only model trains too: gradients reach the sparse encoder
    assert next(model.encoders["lidar"]["backbone"].parameters()).grad.abs().sum() > 0
    assert "map.loss_seg" in losses and float(losses["map.acc"]) == 0.5
    model.eval()
    with torch.no_grad():
        out = model.predict(batch["inputs"], batch["data_samples"])
    assert out[0].pred is not None and out[0].pred_bev_seg.shape == (6, 4, 4)
    with pytest.raises(ValueError, match="fuser"):
        MODELS.build({**load_config(TINY["fusion"]).model.to_dict(), "fuser": None})
    camera = MODELS.build(load_config(TINY["camera"]).model)
    with pytest.raises(ValueError, match="imgs"):
        camera.extract_feat({"points": batch["inputs"]["points"]}, batch["data_samples"])
    fake = {"points": batch["inputs"]["points"], "imgs": torch.zeros(1, 6, 3, 128, 352)}
    with pytest.raises(KeyError, match="lidar2img"):
        camera.extract_feat(fake, batch["data_samples"])


@pytest.mark.slow
@pytest.mark.real_data
def test_full_fusion_model_runs_on_the_real_keyframe(nuscenes_keyframe_dir: Path) -> None:
    from perception.benchmarks.bevfusion import keyframe_with_cameras

    frame = keyframe_with_cameras(nuscenes_keyframe_dir)  # no sweeps listed: time_lag = 0
    torch.manual_seed(0)
    model = init_model(CONFIG_DIR / "bevfusion_det_fusion_nuscenes.py")
    data = build_test_pipeline(model.cfg)({"frame": frame, "sample_idx": 0})
    assert tuple(data["inputs"]["imgs"].shape) == (6, 3, 256, 704)
    maps: dict[str, torch.Tensor] = {}
    model.encoders["camera"]["vtransform"].register_forward_hook(lambda m, i, o: maps.__setitem__("camera", o))
    model.encoders["lidar"]["backbone"].register_forward_hook(lambda m, i, o: maps.__setitem__("lidar", o))
    with torch.no_grad():
        out = model.test_step(pseudo_collate([data]))  # one pass of the whole model
    camera, lidar = maps["camera"], maps["lidar"]
    assert camera.shape == (1, 80, 180, 180) and lidar.shape == (1, 256, 180, 180)
    assert float(camera.abs().sum()) > 0 and float(lidar.abs().sum()) > 0
    pred = out[0].pred
    assert isinstance(pred, Boxes3D) and len(pred) > 0 and np.isfinite(pred.data[:, :7]).all()
    assert (np.abs(pred.centers[:, :2]) <= 61.2).all()
