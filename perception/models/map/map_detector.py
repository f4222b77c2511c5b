"""MapDetector: a LiDAR BEV encoder (the CenterPoint stack's registered parts) + a map head.

points -> :class:`Det3DDataPreprocessor` voxels -> ``pts_voxel_encoder`` -> ``pts_middle_encoder``
(sparse encoder) -> ``pts_backbone`` (SECOND) -> ``pts_neck`` (SECONDFPN) -> BEV ``(B, C, H, W)``
-> optional ``bev_prior`` -> ``map_head`` (:class:`~.maptr_head.MapTRHead` /
:class:`~.mapqr_head.MapQRHead`).  Any head that takes the BEV map (camera or fused BEV too)
works: the head only sees ``(B, C, H, W)`` in the LiDAR frame and its ``bev_range``.

``bev_prior`` hook (HRMapNet's historical raster map): a module called as
``bev_prior(bev, data_samples) -> dict`` whose optional keys are ``"bev"`` (a replacement BEV
map, same shape), ``"query_init"``, ``"ref_init"`` and ``"seeds"`` (the head's optional inputs, see
:mod:`.base_head`).  If it has ``update(data_samples)``, :meth:`MapDetector.predict` calls it
with the predicted samples (to write them into its global map).
"""
from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor, nn

from ...registry import MODELS
from ...structures.det_sample import DetSample
from ..detectors.base import Base3DDetector, build_optional


@MODELS.register_module()
class MapDetector(Base3DDetector):
    """Vector-map detector on LiDAR BEV features (module doc)."""

    def __init__(self, data_preprocessor: dict | nn.Module | None = None,
                 pts_voxel_encoder: dict | None = None, pts_middle_encoder: dict | None = None,
                 pts_backbone: dict | None = None, pts_neck: dict | None = None,
                 map_head: dict | None = None, bev_prior: dict | nn.Module | None = None,
                 train_cfg: dict | None = None, test_cfg: dict | None = None,
                 init_cfg: dict | list[dict] | None = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        required = {"pts_voxel_encoder": pts_voxel_encoder, "pts_middle_encoder": pts_middle_encoder,
                    "pts_backbone": pts_backbone, "map_head": map_head}
        missing = [name for name, cfg in required.items() if cfg is None]
        if missing:
            raise ValueError(f"MapDetector: missing component config(s) {missing}")
        self.train_cfg, self.test_cfg = train_cfg, test_cfg
        self.pts_voxel_encoder = build_optional(pts_voxel_encoder)
        self.pts_middle_encoder = build_optional(pts_middle_encoder)
        self.pts_backbone = build_optional(pts_backbone)
        self.pts_neck = build_optional(pts_neck)
        self.bev_prior = build_optional(bev_prior)
        self.map_head = build_optional(map_head)

    def _voxel_features(self, voxels: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Per-voxel features and their ``(b, z, y, x)`` coords, hard or dynamic voxels."""
        if "voxels" in voxels:
            coors = voxels["coors"]
            return self.pts_voxel_encoder(voxels["voxels"], voxels["num_points"], coors), coors
        if "points" in voxels:
            return self.pts_voxel_encoder(voxels["points"], voxels["coors"])
        raise ValueError(f"MapDetector: inputs['voxels'] must hold 'voxels' (hard) or 'points' "
                         f"(dynamic), got keys {sorted(voxels)}")

    def extract_bev(self, inputs: Mapping[str, Any]) -> Tensor:
        """The BEV map ``(B, C, H, W)`` of the batch (the neck's outputs concatenated)."""
        if "voxels" not in inputs:
            raise ValueError("MapDetector: inputs has no 'voxels'; configure a Det3DDataPreprocessor "
                             "with a voxel_layer")
        batch_size = len(inputs["points"])
        features, coors = self._voxel_features(inputs["voxels"])
        feats = self.pts_backbone(self.pts_middle_encoder(features, coors, batch_size))
        if self.pts_neck is not None:
            feats = self.pts_neck(feats)
        feats = list(feats) if isinstance(feats, (list, tuple)) else [feats]
        if len(feats) != 1:
            raise ValueError(f"MapDetector: the BEV encoder gave {len(feats)} maps; the neck must "
                             f"fuse them into one")
        return feats[0]

    def _head_inputs(self, inputs: Mapping[str, Any], data_samples: list[DetSample]) -> dict[str, Any]:
        bev = self.extract_bev(inputs)
        extra: dict[str, Any] = {}
        if self.bev_prior is not None:
            prior = self.bev_prior(bev, data_samples) or {}
            unknown = set(prior) - {"bev", "query_init", "ref_init", "seeds"}
            if unknown:
                raise ValueError(f"MapDetector: bev_prior returned unknown keys {sorted(unknown)}")
            bev = prior.get("bev", bev)
            extra = {k: prior[k] for k in ("query_init", "ref_init", "seeds") if prior.get(k) is not None}
        return {"bev": bev, **extra}

    def loss(self, inputs: dict, data_samples: list[DetSample]) -> dict[str, Tensor]:
        """The map head's losses against the samples' ``gt_map``."""
        head_inputs = self._head_inputs(inputs, data_samples)
        return self.map_head.loss(samples=data_samples, **head_inputs)

    def predict(self, inputs: dict, data_samples: list[DetSample]) -> list[DetSample]:
        """Copies of the samples with ``pred_map`` (LiDAR-frame MapInstances with scores)."""
        head_inputs = self._head_inputs(inputs, data_samples)
        out = self.map_head.predict(samples=data_samples, **head_inputs)
        if self.bev_prior is not None and hasattr(self.bev_prior, "update"):
            self.bev_prior.update(out)
        return out

    def _forward(self, inputs: dict, data_samples: list[DetSample]) -> Any:
        """The head's raw outputs (per-layer logits and normalized points)."""
        head_inputs = self._head_inputs(inputs, data_samples)
        return self.map_head(**head_inputs)
