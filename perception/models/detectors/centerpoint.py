"""CenterPoint (Yin et al., CVPR 2021): voxels -> VFE -> sparse encoder -> SECOND -> FPN -> head.

mmdet3d 1.x argument names: ``pts_voxel_encoder``, ``pts_middle_encoder``, ``pts_backbone``,
``pts_neck``, ``pts_bbox_head`` and ``train_cfg=dict(pts=...)`` / ``test_cfg=dict(pts=...)``,
whose ``pts`` entries are handed to the head as its ``train_cfg`` / ``test_cfg`` (mmdet3d's
``MVXTwoStageDetector`` rule).  The input is the :class:`Det3DDataPreprocessor` output: hard
voxels ``{"voxels", "num_points", "coors"}`` (e.g. ``HardSimpleVFE``) or dynamic
``{"points", "coors"}`` (``DynamicSimpleVFE``).  The BEV map keeps the stack's convention
(columns +x, rows +y), so the head decodes cells with the same ``point_cloud_range``.
``test_cfg=dict(pts=dict(flip_tta=True, ...))`` turns on CenterPoint's double-flip testing
(:mod:`..dense_heads.center_flip_tta`): four runs per frame, maps averaged before decoding.
"""
from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor, nn

from ...registry import MODELS
from ..dense_heads.center_flip_tta import (FLIPS, check_symmetric_grid, check_symmetric_range,
                                           flip_points, merge_center_maps, unflip_center_maps)
from ...structures.det_sample import DetSample
from .base import Base3DDetector, build_optional


def head_config(head: Mapping[str, Any], train_cfg: Mapping[str, Any] | None,
                test_cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """The head's config with ``train_cfg.pts`` / ``test_cfg.pts`` filled in (mmdet3d rule)."""
    head = dict(head)
    for name, cfg in (("train_cfg", train_cfg), ("test_cfg", test_cfg)):
        if cfg is None:
            continue
        if "pts" not in cfg:
            raise ValueError(f"CenterPoint: {name} must be dict(pts=dict(...)) as in mmdet3d, got "
                             f"keys {sorted(cfg)}")
        head[name] = cfg["pts"]
    return head


@MODELS.register_module()
class CenterPoint(Base3DDetector):
    """LiDAR CenterPoint detector (module doc)."""

    def __init__(self, data_preprocessor: dict | nn.Module | None = None,
                 pts_voxel_encoder: dict | None = None, pts_middle_encoder: dict | None = None,
                 pts_backbone: dict | None = None, pts_neck: dict | None = None,
                 pts_bbox_head: dict | None = None, train_cfg: dict | None = None,
                 test_cfg: dict | None = None, init_cfg: dict | list[dict] | None = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        required = {"pts_voxel_encoder": pts_voxel_encoder, "pts_middle_encoder": pts_middle_encoder,
                    "pts_backbone": pts_backbone, "pts_bbox_head": pts_bbox_head}
        missing = [name for name, cfg in required.items() if cfg is None]
        if missing:
            raise ValueError(f"CenterPoint: missing component config(s) {missing}")
        self.train_cfg, self.test_cfg = train_cfg, test_cfg
        self.pts_voxel_encoder = build_optional(pts_voxel_encoder)
        self.pts_middle_encoder = build_optional(pts_middle_encoder)
        self.pts_backbone = build_optional(pts_backbone)
        self.pts_neck = build_optional(pts_neck)
        self.pts_bbox_head = build_optional(
            pts_bbox_head if isinstance(pts_bbox_head, nn.Module)
            else head_config(pts_bbox_head, train_cfg, test_cfg))

    @property
    def with_pts_neck(self) -> bool:
        return self.pts_neck is not None

    def _voxel_features(self, voxels: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Per-voxel features and their ``(b, z, y, x)`` coords, hard or dynamic voxels."""
        if "voxels" in voxels:  # hard: (M, P, C) padded voxels
            coors = voxels["coors"]
            return self.pts_voxel_encoder(voxels["voxels"], voxels["num_points"], coors), coors
        if "points" in voxels:  # dynamic: every point with its cell
            return self.pts_voxel_encoder(voxels["points"], voxels["coors"])
        raise ValueError(f"CenterPoint: inputs['voxels'] must hold 'voxels' (hard) or 'points' "
                         f"(dynamic), got keys {sorted(voxels)}")

    def extract_feat(self, inputs: Mapping[str, Any]) -> list[Tensor]:
        """Neck output (a list of BEV maps ``(B, C, H, W)``) of the batch's voxels."""
        if "voxels" not in inputs:
            raise ValueError("CenterPoint: inputs has no 'voxels'; configure a "
                             "Det3DDataPreprocessor with a voxel_layer")
        batch_size = len(inputs["points"])  # not coors[-1, 0] + 1: the last cloud may be empty
        features, coors = self._voxel_features(inputs["voxels"])
        bev = self.pts_middle_encoder(features, coors, batch_size)
        feats = self.pts_backbone(bev)
        return list(self.pts_neck(feats) if self.with_pts_neck else feats)

    def loss(self, inputs: dict, data_samples: list[DetSample]) -> dict[str, Tensor]:
        """The head's losses against the samples' ``gt_boxes`` / ``gt_labels``."""
        return self.pts_bbox_head.loss(self.pts_bbox_head(self.extract_feat(inputs)), data_samples)

    def predict(self, inputs: dict, data_samples: list[DetSample]) -> list[DetSample]:
        """Copies of the samples with ``pred`` (LiDAR-frame ``Boxes3D`` with scores)."""
        if (self.pts_bbox_head.test_cfg or {}).get("flip_tta", False):
            preds = self._flip_tta_maps(inputs)
        else:
            preds = self.pts_bbox_head(self.extract_feat(inputs))
        return self.add_pred_to_datasample(data_samples,
                                           self.pts_bbox_head.predict(preds, data_samples))

    def _flip_tta_maps(self, inputs: Mapping[str, Any]) -> list[dict[str, Tensor]]:
        """Per-task head maps averaged over the plain and the three mirrored clouds."""
        voxelizer = getattr(self.data_preprocessor, "voxel_layer", None)
        if voxelizer is None:
            raise ValueError("CenterPoint flip_tta needs a data_preprocessor with a voxel_layer "
                             "to voxelize the mirrored clouds")
        check_symmetric_range(voxelizer.point_cloud_range)
        runs = []
        for flip_x, flip_y in FLIPS:
            points = [flip_points(cloud, flip_x, flip_y) for cloud in inputs["points"]]
            maps = self.pts_bbox_head(self.extract_feat(
                {"points": points, "voxels": voxelizer(points)}))
            runs.append([unflip_center_maps(task, flip_x, flip_y) for task in maps])
        heat = runs[0][0]["heatmap"]
        coder = self.pts_bbox_head.bbox_coder
        check_symmetric_grid(coder.pc_range, coder.cell_size, heat.shape[2], heat.shape[3])
        return [merge_center_maps([run[task] for run in runs]) for task in range(len(runs[0]))]

    def _forward(self, inputs: dict, data_samples: list[DetSample]) -> Any:
        """The head's raw outputs (one dict of maps per task)."""
        return self.pts_bbox_head(self.extract_feat(inputs))
