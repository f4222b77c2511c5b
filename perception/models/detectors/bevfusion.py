"""BEVFusion (Liu et al., ICRA 2023): camera and LiDAR encoders -> one BEV grid -> fuser ->
BEV decoder -> task heads.

Config shape (MIT BEVFusion's, with this stack's components)::

    model = dict(type="BEVFusion",
        data_preprocessor=dict(type="BEVFusionDataPreprocessor", voxel_layer=...),
        encoders=dict(camera=dict(backbone=ResNet, neck=GeneralizedLSSFPN, vtransform=LSSTransform),
                      lidar=dict(voxel_encoder=HardSimpleVFE, backbone=SparseEncoder)),
        fuser=dict(type="ConvFuser", in_channels=[80, 256], out_channels=256),
        decoder=dict(backbone=SECOND, neck=SECONDFPN),
        heads=dict(object=CenterHead, map=BEVSegmentationHead),
        loss_scale=dict(object=1.0, map=1.0))

Either encoder may be left out (camera-only, LiDAR-only; then ``fuser`` is ``None`` and the one
BEV map goes straight to the decoder).  Modalities are fused in the order camera, LiDAR.  Heads
follow the stack's head contract ``loss(bev, samples)`` / ``predict(bev, samples)``; a plain
:class:`~perception.models.dense_heads.CenterHead` (whose API is mmdet3d's) is wrapped in
:class:`CenterHeadAdapter`.  Loss keys are prefixed with the head's name (``object.task0...``).
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor, nn

from ...registry import MODELS
from ...structures.det_sample import DetSample
from ..dense_heads.centerpoint_head import CenterHead
from .base import Base3DDetector, build_optional
from .bevfusion_inputs import camera_inputs

MODALITY_ORDER: tuple[str, ...] = ("camera", "lidar")
"""Order of the BEV maps handed to the fuser."""


@MODELS.register_module()
class CenterHeadAdapter(nn.Module):
    """The head contract on top of :class:`CenterHead`: ``loss(bev, samples)`` and
    ``predict(bev, samples) -> samples with pred``."""

    def __init__(self, head: Mapping[str, Any] | CenterHead) -> None:
        super().__init__()
        self.head = head if isinstance(head, nn.Module) else MODELS.build(dict(head))

    def forward(self, bev: Tensor) -> list[dict[str, Tensor]]:
        return self.head([bev])

    def loss(self, bev: Tensor, samples: list[DetSample]) -> dict[str, Tensor]:
        return self.head.loss(self.head([bev]), samples)

    def predict(self, bev: Tensor, samples: list[DetSample]) -> list[DetSample]:
        boxes = self.head.predict(self.head([bev]), samples)
        return Base3DDetector.add_pred_to_datasample(samples, boxes)


def build_head(cfg: Mapping[str, Any] | nn.Module) -> nn.Module:
    """A contract head from a config; a bare CenterHead gets the adapter."""
    head = build_optional(cfg)
    return CenterHeadAdapter(head) if isinstance(head, CenterHead) else head


@MODELS.register_module()
class BEVFusion(Base3DDetector):
    """Multi-modal BEV detector / segmenter (module doc)."""

    def __init__(self, encoders: Mapping[str, Mapping[str, Any]], decoder: Mapping[str, Any],
                 heads: Mapping[str, Mapping[str, Any] | None], fuser: Mapping[str, Any] | None = None,
                 loss_scale: Mapping[str, float] | None = None, data_preprocessor: dict | nn.Module | None = None,
                 init_cfg: dict | list[dict] | None = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        unknown = sorted(set(encoders) - set(MODALITY_ORDER))
        if unknown or not encoders:
            raise ValueError(f"BEVFusion: encoders must be a non-empty subset of {MODALITY_ORDER}, "
                             f"got {sorted(encoders)}")
        self.modalities = tuple(m for m in MODALITY_ORDER if encoders.get(m) is not None)
        self.encoders = nn.ModuleDict()
        if "camera" in self.modalities:
            cam = encoders["camera"]
            self._require(cam, ("backbone", "neck", "vtransform"), "encoders.camera")
            self.encoders["camera"] = nn.ModuleDict(
                {k: build_optional(cam[k]) for k in ("backbone", "neck", "vtransform")})
        if "lidar" in self.modalities:
            lidar = encoders["lidar"]
            self._require(lidar, ("voxel_encoder", "backbone"), "encoders.lidar")
            self.encoders["lidar"] = nn.ModuleDict({k: build_optional(lidar[k]) for k in ("voxel_encoder", "backbone")})
        if len(self.modalities) > 1 and fuser is None:
            raise ValueError(f"BEVFusion: {self.modalities} encoders need a fuser")
        self.fuser = build_optional(fuser) if len(self.modalities) > 1 else None
        self._require(decoder, ("backbone",), "decoder")
        self.decoder = nn.ModuleDict({"backbone": build_optional(decoder["backbone"])})
        if decoder.get("neck") is not None:
            self.decoder["neck"] = build_optional(decoder["neck"])
        self.heads = nn.ModuleDict({name: build_head(cfg) for name, cfg in heads.items() if cfg is not None})
        if not self.heads:
            raise ValueError("BEVFusion: heads must configure at least one head (e.g. object=CenterHead)")
        self.loss_scale = {name: float((loss_scale or {}).get(name, 1.0)) for name in self.heads}

    @staticmethod
    def _require(cfg: Mapping[str, Any], keys: tuple[str, ...], where: str) -> None:
        missing = [k for k in keys if cfg.get(k) is None]
        if missing:
            raise ValueError(f"BEVFusion: {where} lacks {missing}")

    # ----------------------------------------------------------------- encoders
    def extract_camera_features(self, inputs: Mapping[str, Any], samples: list[DetSample]) -> Tensor:
        """``(B, C_cam, H, W)`` BEV map of the images (backbone -> neck -> view transform)."""
        if "imgs" not in inputs:
            raise ValueError("BEVFusion: the camera encoder needs inputs['imgs'] (B, N_cam, 3, H, W); add "
                             "LoadMultiViewImages / ImageAug3D / ImageNormalize to the pipeline")
        imgs = inputs["imgs"]
        batch, cams = imgs.shape[:2]
        enc = self.encoders["camera"]
        feats = enc["neck"](enc["backbone"](imgs.flatten(0, 1)))
        feats = feats[0] if isinstance(feats, (list, tuple)) else feats
        feats = feats.reshape(batch, cams, *feats.shape[1:])
        matrices = camera_inputs(samples, cams, imgs.device)
        return enc["vtransform"](feats, matrices, inputs.get("points"))

    def extract_lidar_features(self, inputs: Mapping[str, Any]) -> Tensor:
        """``(B, C_lidar, H, W)`` BEV map of the voxels (VFE -> sparse encoder)."""
        voxels = inputs.get("voxels")
        if voxels is None:
            raise ValueError("BEVFusion: the LiDAR encoder needs inputs['voxels']; give the data "
                             "preprocessor a voxel_layer")
        enc = self.encoders["lidar"]
        if "voxels" in voxels:
            coors = voxels["coors"]
            features = enc["voxel_encoder"](voxels["voxels"], voxels["num_points"], coors)
        else:
            features, coors = enc["voxel_encoder"](voxels["points"], voxels["coors"])
        return enc["backbone"](features, coors, len(inputs["points"]))

    def extract_feat(self, inputs: Mapping[str, Any], samples: list[DetSample]) -> Tensor:
        """The decoder's BEV map ``(B, C, H, W)`` that every head reads."""
        maps = []
        for modality in self.modalities:
            maps.append(self.extract_camera_features(inputs, samples) if modality == "camera"
                        else self.extract_lidar_features(inputs))
        bev = self.fuser(maps) if self.fuser is not None else maps[0]
        x = self.decoder["backbone"](bev)
        if "neck" in self.decoder:
            x = self.decoder["neck"](x)
        if isinstance(x, (list, tuple)):
            x = x[0] if len(x) == 1 else torch.cat(list(x), dim=1)
        return x

    # ----------------------------------------------------------------- modes
    def loss(self, inputs: dict, data_samples: list[DetSample]) -> dict[str, Tensor]:
        """Every head's losses, scaled by ``loss_scale`` and prefixed with the head's name."""
        bev = self.extract_feat(inputs, data_samples)
        losses: dict[str, Tensor] = {}
        for name, head in self.heads.items():
            for key, value in head.loss(bev, data_samples).items():
                scale = self.loss_scale[name]
                losses[f"{name}.{key}"] = value * scale if "loss" in key and scale != 1.0 else value
        return losses

    def predict(self, inputs: dict, data_samples: list[DetSample]) -> list[DetSample]:
        """Copies of the samples with each head's predictions (``pred``, ``pred_bev_seg``...)."""
        bev = self.extract_feat(inputs, data_samples)
        samples = list(data_samples)
        for head in self.heads.values():
            samples = head.predict(bev, samples)
        return samples

    def _forward(self, inputs: dict, data_samples: list[DetSample]) -> Tensor:
        """The decoder's BEV map (what the heads read)."""
        return self.extract_feat(inputs, data_samples)
