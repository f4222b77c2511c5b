"""CenterPoint's detection head (mmdet3d 1.x ``CenterHead`` arguments and outputs).

A shared 3x3 conv-BN-ReLU, then one :class:`SeparateHead` per task (a group of classes)
predicting a class heatmap and, per BEV cell, the centre offset (``reg``), gravity-centre
``height``, log ``dim``, ``rot`` (sin, cos) and ``vel``. Targets and decoding follow
:class:`~perception.models.task_modules.CenterPointBBoxCoder` (cols +x, rows +y).
Predicted boxes are LiDAR-frame :class:`Boxes3D` with gravity centres and labels indexing
the data sample's ``class_names`` (unlike mmdet3d, z is not moved to the bottom face).
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from ...registry import MODELS
from ...structures import BOX_DIM, Boxes3D, wrap_angle
from .. import losses  # noqa: F401  (registers GaussianFocalLoss / L1Loss for MODELS.build)
from ..layers import circle_nms, rotated_nms
from ..task_modules import REGRESSION_CHANNELS, CenterPointBBoxCoder
from .centerpoint_targets import (TaskClassMap, TaskTargets, batch_targets, check_geometry,
                                  check_gt, feature_size_from_cfg, sample_targets)
from .separate_head import ConvModule2d, check_conv_cfg

REQUIRED_HEADS = ("reg", "height", "dim", "rot")


def _circle(boxes: Tensor, scores: Tensor, cfg: Mapping[str, Any], task: int) -> Tensor:
    """CenterPoint circle NMS: ``min_radius[task]`` is the squared-distance threshold."""
    return circle_nms(boxes[:, :2], scores, float(cfg["min_radius"][task]),
                      cfg.get("post_max_size"))


def _rotate(boxes: Tensor, scores: Tensor, cfg: Mapping[str, Any], task: int) -> Tensor:
    """Class-agnostic rotated BEV NMS within a task (mmdet3d ``nms_bev``)."""
    return rotated_nms(boxes[:, [0, 1, 3, 4, 6]], scores, float(cfg["nms_thr"]),
                       cfg.get("pre_max_size"), cfg.get("post_max_size"))


NMS_TYPES: Mapping[str, Callable[[Tensor, Tensor, Mapping[str, Any], int], Tensor]] = {
    "circle": _circle, "rotate": _rotate}
"""``test_cfg.nms_type`` -> per-task NMS returning kept indices."""
NMS_KEYS = {"circle": ("min_radius",), "rotate": ("nms_thr",)}


def clip_sigmoid(x: Tensor, eps: float = 1e-4) -> Tensor:
    """Sigmoid clamped to ``[eps, 1 - eps]`` so the focal loss's logs stay finite."""
    return x.sigmoid().clamp(min=eps, max=1 - eps)


@MODELS.register_module()
class CenterHead(BaseModule):
    """CenterPoint head (module docstring); ``forward`` / ``loss`` / ``predict`` as mmdet3d.

    ``train_cfg``: ``point_cloud_range``, ``voxel_size``, ``out_size_factor``, ``grid_size``,
    ``max_objs``, ``dense_reg``, ``gaussian_overlap``, ``min_radius``, ``code_weights``.
    ``dense_reg`` is 1 (mmdet3d: regression supervised at the centre cell only) or k * k for
    odd k: also at the k x k cells around it, offsets pointing at the centre (a heatmap peak
    one cell off still decodes the right box; see :func:`.centerpoint_targets.sample_targets`).
    ``test_cfg``: ``nms_type`` ("circle" | "rotate"), ``score_threshold``,
    ``post_center_limit_range``, ``min_radius`` (per task, circle), ``nms_thr``,
    ``pre_max_size``, ``post_max_size``.
    """

    def __init__(self, in_channels: int | Sequence[int] = (128,),
                 tasks: Sequence[Mapping[str, Any]] | None = None,
                 bbox_coder: Mapping[str, Any] | None = None,
                 common_heads: Mapping[str, Sequence[int]] | None = None,
                 loss_cls: Mapping[str, Any] | None = None,
                 loss_bbox: Mapping[str, Any] | None = None,
                 separate_head: Mapping[str, Any] | None = None,
                 share_conv_channel: int = 64, num_heatmap_convs: int = 2,
                 conv_cfg: Mapping[str, Any] | None = None,
                 norm_cfg: Mapping[str, Any] | None = None, bias: bool | str = "auto",
                 norm_bbox: bool = True, init_cfg: Mapping[str, Any] | None = None,
                 train_cfg: Mapping[str, Any] | None = None,
                 test_cfg: Mapping[str, Any] | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        check_conv_cfg(conv_cfg)
        if not tasks:
            raise ValueError("CenterHead needs tasks=[dict(num_class=..., class_names=[...]), ...]")
        self.class_names = [self._task_names(i, task) for i, task in enumerate(tasks)]
        flat = [name for names in self.class_names for name in names]
        if len(set(flat)) != len(flat):
            raise ValueError(f"CenterHead: a class appears in several tasks: {self.class_names}")
        self.num_classes = [len(names) for names in self.class_names]
        self.in_channels = in_channels if isinstance(in_channels, int) else sum(in_channels)
        self.common_heads = self._check_heads(common_heads or {})
        self.with_velocity = "vel" in self.common_heads
        self.norm_bbox = norm_bbox
        self.train_cfg = dict(train_cfg) if train_cfg is not None else None
        self.test_cfg = dict(test_cfg) if test_cfg is not None else None
        self.bbox_coder = self._build_coder(bbox_coder)
        norm_cfg = dict(type="BN2d") if norm_cfg is None else dict(norm_cfg)
        self.loss_cls = MODELS.build(dict(type="GaussianFocalLoss", reduction="mean")
                                     if loss_cls is None else dict(loss_cls))
        self.loss_bbox = MODELS.build(dict(type="L1Loss", reduction="mean", loss_weight=0.25)
                                      if loss_bbox is None else dict(loss_bbox))
        self.shared_conv = ConvModule2d(self.in_channels, share_conv_channel, 3, norm_cfg, bias)
        self.task_heads = nn.ModuleList()
        for num_class in self.num_classes:
            heads = copy.deepcopy(self.common_heads)
            heads["heatmap"] = (num_class, num_heatmap_convs)
            cfg = dict(type="SeparateHead", init_bias=-2.19, final_kernel=3)
            cfg.update(separate_head or {})
            cfg.update(in_channels=share_conv_channel, heads=heads, num_cls=num_class)
            cfg.setdefault("norm_cfg", norm_cfg)
            self.task_heads.append(MODELS.build(cfg))
        self._check_cfgs()
        self._default_init()

    @staticmethod
    def _task_names(index: int, task: Mapping[str, Any]) -> list[str]:
        names = list(task.get("class_names", []))
        if not names or task.get("num_class", len(names)) != len(names):
            raise ValueError(f"CenterHead task {index}: num_class={task.get('num_class')} must "
                             f"equal the number of class_names {names} (at least one)")
        return names

    @staticmethod
    def _check_heads(common_heads: Mapping[str, Sequence[int]]) -> dict[str, tuple[int, int]]:
        heads = {name: (int(value[0]), int(value[1])) for name, value in common_heads.items()}
        missing = [name for name in REQUIRED_HEADS if name not in heads]
        unknown = [name for name in heads if name not in REGRESSION_CHANNELS]
        wrong = {n: c for n, (c, _) in heads.items() if REGRESSION_CHANNELS.get(n, c) != c}
        if missing or unknown or wrong:
            raise ValueError(f"CenterHead common_heads must have {REQUIRED_HEADS} (+ optional "
                             f"'vel') with channels {REGRESSION_CHANNELS}; missing {missing}, "
                             f"unknown {unknown}, wrong channels {wrong}")
        return {name: heads[name] for name in REGRESSION_CHANNELS if name in heads}

    def _build_coder(self, bbox_coder: Mapping[str, Any] | None) -> CenterPointBBoxCoder:
        if bbox_coder is None:
            raise ValueError("CenterHead needs bbox_coder=dict(type='CenterPointBBoxCoder', ...)")
        cfg = dict(bbox_coder)
        if cfg.setdefault("norm_bbox", self.norm_bbox) != self.norm_bbox:
            raise ValueError(f"bbox_coder.norm_bbox={cfg['norm_bbox']} but CenterHead.norm_bbox="
                             f"{self.norm_bbox}")
        coder = MODELS.build(cfg)
        if coder.with_velocity != self.with_velocity:
            raise ValueError(f"bbox_coder.code_size={coder.code_size} but common_heads "
                             f"{'has' if self.with_velocity else 'has no'} 'vel'")
        return coder

    def _check_cfgs(self) -> None:
        code = sum(REGRESSION_CHANNELS[name] for name in self.common_heads)
        if self.train_cfg is not None:
            check_geometry(self.train_cfg, self.bbox_coder, "train_cfg")
            feature_size_from_cfg(self.train_cfg)
            weights = self.train_cfg.get("code_weights")
            if weights is not None and len(weights) != code:
                raise ValueError(f"CenterHead train_cfg.code_weights has {len(weights)} values; "
                                 f"the regression target has {code}")
        if self.test_cfg is not None:
            check_geometry(self.test_cfg, self.bbox_coder, "test_cfg")
            nms_type = self.test_cfg.get("nms_type")
            if nms_type not in NMS_TYPES:
                raise ValueError(f"CenterHead test_cfg.nms_type must be one of "
                                 f"{sorted(NMS_TYPES)}, got {nms_type!r}")
            missing = [k for k in NMS_KEYS[nms_type] if k not in self.test_cfg]
            if missing:
                raise ValueError(f"CenterHead test_cfg needs {missing} for nms_type {nms_type!r}")
            if nms_type == "circle" and len(self.test_cfg["min_radius"]) != len(self.num_classes):
                raise ValueError(f"CenterHead test_cfg.min_radius needs one value per task "
                                 f"({len(self.num_classes)}), got {self.test_cfg['min_radius']}")

    def _default_init(self) -> None:
        nn.init.kaiming_normal_(self.shared_conv.conv.weight, mode="fan_out", nonlinearity="relu")
        for head in self.task_heads:
            head.init_weights()

    def init_weights(self) -> None:
        """mmdet3d's initialization (Kaiming convs, heatmap bias -2.19) unless init_cfg."""
        if self.init_cfg:
            super().init_weights()
        else:
            self._default_init()

    def forward(self, feats: Sequence[Tensor] | Tensor) -> list[dict[str, Tensor]]:
        """One ``dict(heatmap, reg, height, dim, rot[, vel])`` of ``(B, ch, H, W)`` per task
        from the neck's single BEV map ``feats[0]`` ``(B, in_channels, H, W)``."""
        if isinstance(feats, Tensor):
            feats = [feats]
        if len(feats) != 1 or not isinstance(feats[0], Tensor) or feats[0].dim() != 4:
            raise ValueError(f"CenterHead.forward expects a list with one (B, C, H, W) tensor, "
                             f"got {[getattr(f, 'shape', type(f).__name__) for f in feats]}")
        if feats[0].shape[1] != self.in_channels:
            raise ValueError(f"CenterHead: feature has {feats[0].shape[1]} channels, "
                             f"in_channels is {self.in_channels} (shape {tuple(feats[0].shape)})")
        shared = self.shared_conv(feats[0])
        return [head(shared) for head in self.task_heads]

    def _class_map(self, sample: Any, device: torch.device) -> TaskClassMap:
        return TaskClassMap(self.class_names, sample.class_names, device)

    def get_targets(self, data_samples: Sequence[Any],
                    feature_size: tuple[int, int] | None = None) -> list[TaskTargets]:
        """Per-task training targets of a batch (module :mod:`.centerpoint_targets`)."""
        if self.train_cfg is None:
            raise ValueError("CenterHead needs train_cfg to build targets")
        if not data_samples:
            raise ValueError("CenterHead.get_targets: empty batch")
        size = feature_size_from_cfg(self.train_cfg) if feature_size is None else feature_size
        per_sample = []
        for sample in data_samples:
            name = getattr(sample, "token", "?")
            boxes, labels = sample.gt_boxes, sample.gt_labels
            check_gt(boxes, labels, self.bbox_coder.code_size, name)
            classes = self._class_map(sample, boxes.device)
            if len(labels) and (labels.min() < 0 or labels.max() >= len(sample.class_names)):
                raise ValueError(f"data sample {name}: gt_labels outside "
                                 f"[0, {len(sample.class_names)})")
            per_sample.append(sample_targets(self.bbox_coder, boxes, labels, classes,
                                             self.num_classes, size, self.train_cfg))
        return batch_targets(per_sample)

    def loss(self, preds: Sequence[Mapping[str, Tensor]],
             data_samples: Sequence[Any]) -> dict[str, Tensor]:
        """``task{i}.loss_heatmap`` (gaussian focal, / positives) and ``task{i}.loss_bbox``
        (L1 with ``code_weights``, / objects; unknown velocities weigh 0)."""
        self._check_preds(preds)
        expected = feature_size_from_cfg(self.train_cfg) if self.train_cfg else None
        got = tuple(preds[0]["heatmap"].shape[-2:])
        if expected is not None and got != expected:
            raise ValueError(f"CenterHead: feature map is {got} (H, W) but train_cfg's grid_size "
                             f"// out_size_factor gives {expected}")
        targets = self.get_targets(data_samples, got)
        code_weights = self.train_cfg.get("code_weights")
        losses: dict[str, Tensor] = {}
        for task, (pred, target) in enumerate(zip(preds, targets)):
            heatmap = clip_sigmoid(pred["heatmap"])
            num_pos = int(target.heatmap.eq(1).sum().item())
            losses[f"task{task}.loss_heatmap"] = self.loss_cls(heatmap, target.heatmap,
                                                               avg_factor=max(num_pos, 1))
            box = torch.cat([pred[name] for name in self.common_heads], dim=1).flatten(2)
            box = torch.gather(box, 2, target.ind[:, None].expand(-1, box.shape[1], -1))
            box = box.transpose(1, 2)                                   # (B, K, code)
            weights = target.mask[..., None] & torch.isfinite(target.anno_box)
            weights = weights.to(box.dtype)
            if code_weights is not None:
                weights = weights * weights.new_tensor(code_weights)
            losses[f"task{task}.loss_bbox"] = self.loss_bbox(
                box, torch.nan_to_num(target.anno_box, nan=0.0), weights,
                avg_factor=target.mask.sum().item() + 1e-4)
        return losses

    def _check_preds(self, preds: Sequence[Mapping[str, Tensor]]) -> None:
        if len(preds) != len(self.task_heads):
            raise ValueError(f"CenterHead: {len(preds)} task outputs for {len(self.task_heads)} "
                             f"tasks")
        for task, pred in enumerate(preds):
            missing = [k for k in ("heatmap", *self.common_heads) if k not in pred]
            if missing:
                raise ValueError(f"CenterHead: task {task} output lacks {missing}")

    def predict(self, preds: Sequence[Mapping[str, Tensor]],
                data_samples: Sequence[Any]) -> list[Boxes3D]:
        """Decoded, filtered and NMS-ed boxes per sample (LiDAR frame, gravity centres,
        yaw in [-pi, pi), scores set, labels indexing each sample's ``class_names``)."""
        if self.test_cfg is None:
            raise ValueError("CenterHead needs test_cfg to predict")
        self._check_preds(preds)
        batch = preds[0]["heatmap"].shape[0]
        if len(data_samples) != batch:
            raise ValueError(f"CenterHead.predict: {len(data_samples)} data samples for a batch "
                             f"of {batch}")
        per_task = [self._predict_task(task, pred) for task, pred in enumerate(preds)]
        return [self._to_boxes([dets[i] for dets in per_task], data_samples[i])
                for i in range(batch)]

    def _predict_task(self, task: int, pred: Mapping[str, Tensor]) -> list[dict[str, Tensor]]:
        cfg = self.test_cfg
        dets = self.bbox_coder.decode(
            pred["heatmap"].sigmoid(), pred["rot"][:, 0:1], pred["rot"][:, 1:2], pred["height"],
            pred["dim"], pred.get("vel"), pred["reg"], task_id=task)
        limit = cfg.get("post_center_limit_range")
        results = []
        for det in dets:
            keep = det["scores"] >= float(cfg.get("score_threshold", 0.0))
            if limit is not None:
                limits = det["bboxes"].new_tensor(limit)
                centres = det["bboxes"][:, :3]
                keep &= ((centres >= limits[:3]) & (centres <= limits[3:])).all(dim=1)
            det = {key: value[keep] for key, value in det.items()}
            kept = NMS_TYPES[cfg["nms_type"]](det["bboxes"], det["scores"], cfg, task)
            results.append({key: value[kept] for key, value in det.items()})
        return results

    def _to_boxes(self, dets: list[dict[str, Tensor]], sample: Any) -> Boxes3D:
        classes = self._class_map(sample, dets[0]["labels"].device)
        labels = torch.cat([classes.to_sample[t][det["labels"]] for t, det in enumerate(dets)])
        boxes = torch.cat([det["bboxes"] for det in dets]).detach().double().cpu().numpy()
        data = np.full((len(boxes), BOX_DIM), np.nan)
        data[:, :boxes.shape[1]] = boxes
        data[:, 6] = wrap_angle(data[:, 6])
        scores = torch.cat([det["scores"] for det in dets]).detach().double().cpu().numpy()
        return Boxes3D(data, labels.cpu().numpy(), scores=scores)
