"""Base3DDetector: mmengine ``BaseModel`` with mmdet3d's ``forward(mode=...)`` dispatch.

Subclasses implement ``loss``, ``predict`` and ``_forward`` (the raw head outputs); this class
routes ``forward(inputs, data_samples, mode)`` to them, builds a ``data_preprocessor`` dict with
the stack's registry (so configs work without mmengine's default scope), and attaches
predictions to the samples.  CenterPoint uses it, and multi-modal detectors (BEVFusion) can.
"""
from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import numpy as np
from mmengine.model import BaseModel
from torch import nn

from ...registry import MODELS
from ...structures.boxes import Boxes3D
from ...structures.det_sample import DetSample

FORWARD_MODES: Mapping[str, str] = MappingProxyType(
    {"loss": "loss", "predict": "predict", "tensor": "_forward"})
"""``forward``'s ``mode`` -> the method that serves it (mmdet3d's three modes)."""


def build_optional(cfg: Mapping[str, Any] | nn.Module | None) -> nn.Module | None:
    """A sub-module from a config dict (our MODELS registry), a ready module, or ``None``."""
    if cfg is None or isinstance(cfg, nn.Module):
        return cfg
    return MODELS.build(dict(cfg))


class Base3DDetector(BaseModel):
    """Mode dispatch and prediction packing shared by the 3-D detectors (module doc)."""

    def __init__(self, data_preprocessor: dict | nn.Module | None = None,
                 init_cfg: dict | list[dict] | None = None) -> None:
        super().__init__(data_preprocessor=build_optional(data_preprocessor), init_cfg=init_cfg)

    def forward(self, inputs: dict, data_samples: Sequence[DetSample] | None = None,
                mode: str = "tensor") -> Any:
        """``loss`` -> dict of losses, ``predict`` -> ``list[DetSample]``, ``tensor`` -> raw."""
        if mode not in FORWARD_MODES:
            raise ValueError(f"{type(self).__name__}.forward: mode must be one of "
                             f"{sorted(FORWARD_MODES)}, got {mode!r}")
        return getattr(self, FORWARD_MODES[mode])(inputs, list(data_samples or []))

    def loss(self, inputs: dict, data_samples: list[DetSample]) -> dict:
        raise NotImplementedError

    def predict(self, inputs: dict, data_samples: list[DetSample]) -> list[DetSample]:
        raise NotImplementedError

    def _forward(self, inputs: dict, data_samples: list[DetSample]) -> Any:
        raise NotImplementedError

    @staticmethod
    def add_pred_to_datasample(data_samples: Sequence[DetSample],
                               preds: Sequence[Boxes3D]) -> list[DetSample]:
        """Copies of the samples with ``pred`` set, checking each prediction against its sample."""
        if len(preds) != len(data_samples):
            raise ValueError(f"the head returned {len(preds)} predictions for "
                             f"{len(data_samples)} samples")
        out = []
        for sample, boxes in zip(data_samples, preds):
            if not isinstance(boxes, Boxes3D) or boxes.scores is None:
                raise ValueError(f"sample {sample.token}: prediction must be a Boxes3D with scores, "
                                 f"got {type(boxes).__name__}")
            if len(boxes) and not (0 <= boxes.labels.min() and
                                   boxes.labels.max() < len(sample.class_names)):
                raise ValueError(f"sample {sample.token}: predicted labels "
                                 f"{np.unique(boxes.labels).tolist()} do not index the "
                                 f"{len(sample.class_names)} class_names")
            out.append(dataclasses.replace(sample, pred=boxes))
        return out
