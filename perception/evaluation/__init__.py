"""Evaluation: thin adapters to the official evaluators (nuscenes-devkit, av2) and the stack's own.

Importing this package registers the mmengine metrics (``NuScenesMetric``, ``AV2DetectionMetric``)
in :data:`perception.registry.METRICS`.
"""
from .av2_detection import AV2DetectionMetric, boxes_to_av2_dataframe, load_av2_ground_truth
from .nuscenes_detection import DetectionMetrics, boxes_to_submission, evaluate_nuscenes, write_submission
from .nuscenes_metric import NuScenesMetric, evaluate_nuscenes_samples

__all__ = [
    "AV2DetectionMetric", "DetectionMetrics", "NuScenesMetric", "boxes_to_av2_dataframe", "boxes_to_submission",
    "evaluate_nuscenes", "evaluate_nuscenes_samples", "load_av2_ground_truth", "write_submission",
]
from . import bev_seg_metric  # noqa: F401,E402
from . import map_metric  # noqa: F401,E402
from . import motion_metrics  # noqa: F401,E402
