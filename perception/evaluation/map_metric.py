"""``VectorMapMetric``: Chamfer-distance AP of ``DetSample.pred_map`` against ``DetSample.gt_map``.

``process`` keeps, per sample, the token and both :class:`MapInstances` (plain numpy, cheap to
collect across ranks); ``compute_metrics`` runs :func:`.map_ap.evaluate_map` once over the
unique samples and returns flat names (``divider_AP@0.5``, ``divider_AP_standard``,
``mAP_standard``, ``mAP_strict``...), prefixed ``map/`` by mmengine's evaluator.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from ..registry import METRICS
from ..structures import MapInstances
from .map_ap import NUM_SAMPLES, THRESHOLD_SETS, MapEvalError, evaluate_map
from .nuscenes_metric import sample_field


@METRICS.register_module()
class VectorMapMetric(BaseMetric):
    """Chamfer AP over vectorized map predictions.

    Args:
        class_names: classes to score, in label order (default: the ground truth's).
        threshold_sets: ``{name: thresholds in m}`` (default ``standard`` 0.5/1.0/1.5 and
            ``strict`` 0.2/0.5/1.0).
        num_samples: points per instance for the Chamfer distance (MapTR: 100).
    """

    default_prefix = "map"

    def __init__(self, class_names: Sequence[str] | None = None,
                 threshold_sets: Mapping[str, Sequence[float]] | None = None, num_samples: int = NUM_SAMPLES,
                 collect_device: str = "cpu", prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.class_names = None if class_names is None else tuple(class_names)
        self.threshold_sets = {k: tuple(v) for k, v in (threshold_sets or THRESHOLD_SETS).items()}
        self.num_samples = int(num_samples)

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Keep ``(token, pred_map, gt_map)`` of each sample."""
        for sample in data_samples:
            token = str(sample_field(sample, "token"))
            pred, gt = sample_field(sample, "pred_map"), sample_field(sample, "gt_map")
            for role, value in (("pred_map", pred), ("gt_map", gt)):
                if not isinstance(value, MapInstances):
                    raise MapEvalError(f"sample {token}: {role} must be MapInstances, got {type(value).__name__} "
                                       f"({'run a map head' if role == 'pred_map' else 'add LoadVectorMapGT'})")
            self.results.append((token, pred, gt))

    def compute_metrics(self, results: list) -> dict[str, float]:
        """Chamfer AP over the unique samples seen (a sample padded in twice counts once)."""
        unique = {token: (pred, gt) for token, pred, gt in results}
        preds = [pair[0] for pair in unique.values()]
        gts = [pair[1] for pair in unique.values()]
        result = evaluate_map(preds, gts, self.class_names, self.threshold_sets, self.num_samples)
        MMLogger.get_current_instance().info(
            f"VectorMapMetric on {len(unique)} samples: "
            + ", ".join(f"mAP_{k}={v:.4f}" for k, v in result.mean_ap.items())
            + f"; ground truth per class {result.num_gt}")
        return result.flat()
