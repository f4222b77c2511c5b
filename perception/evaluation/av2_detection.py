"""Argoverse 2 3D detection evaluation with the av2 package's own evaluator.

``av2.evaluation.detection.eval.evaluate(dts, gts, cfg)`` scores one DataFrame row per
cuboid: centre ``tx_m, ty_m, tz_m`` and ``length_m, width_m, height_m`` and the rotation
``qw, qx, qy, qz`` **in the ego frame of the sweep** ``(log_id, timestamp_ns)`` (as in
``annotations.feather``), ``score`` and ``category``.  The stack's AV2 LiDAR frame is the ego
frame (``lidar2ego`` = I, see :mod:`perception.datasets.av2.log_io`), so predictions go in
unchanged; AV2 cuboid centres are geometric centres and length lies along the heading, as in
the stack's convention.  Ground truth is read with av2's ``read_all_annotations``, the
configuration is av2's ``DetectionCfg`` (ROI pruning needs the split folder, ``dataset_dir``).

``evaluate`` runs a ``spawn`` process pool: the caller's ``__main__`` is re-imported by the
workers, so scripts calling it must keep their entry point under ``if __name__ == "__main__"``.
"""
from __future__ import annotations

import os
import re
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from ..registry import METRICS
from ..structures import Boxes3D
from ..utils.atomic import atomic_path
from .nuscenes_metric import Prediction, read_prediction, unique_predictions

CUBOID_COLUMNS: tuple[str, ...] = (
    "tx_m", "ty_m", "tz_m", "length_m", "width_m", "height_m", "qw", "qx", "qy", "qz")
"""av2's ``ORDERED_CUBOID_COL_NAMES``."""
DETECTION_COLUMNS: tuple[str, ...] = CUBOID_COLUMNS + ("score", "log_id", "timestamp_ns", "category")
"""Columns of a detections table (av2's ``DTS_COLUMNS`` and the sweep and category keys)."""
METRIC_NAMES: tuple[str, ...] = ("AP", "ATE", "ASE", "AOE", "CDS")
"""av2's ``MetricNames``: the columns of the evaluator's summary."""
MEAN_KEYS = {"AP": "mAP", "ATE": "mATE", "ASE": "mASE", "AOE": "mAOE", "CDS": "CDS"}
DETECTIONS_NAME = "detections_av2.feather"
_TOKEN = re.compile(r"^(?P<log_id>[^/_]+)[/_](?P<timestamp_ns>\d+)$")


def yaw_quaternions(yaws: np.ndarray) -> np.ndarray:
    """``(N, 4)`` scalar-first quaternions of rotations by ``yaws`` about +z (av2's helpers)."""
    from av2.geometry.geometry import mat_to_quat, xyz_to_mat

    yaws = np.asarray(yaws, dtype=np.float64).reshape(-1)
    if len(yaws) == 0:
        return np.zeros((0, 4))
    angles = np.stack([np.zeros_like(yaws), np.zeros_like(yaws), yaws], axis=1)
    return mat_to_quat(xyz_to_mat(angles))


def empty_detections() -> pd.DataFrame:
    """A detections table with no rows and av2's columns and dtypes."""
    dtypes = {"log_id": object, "timestamp_ns": np.int64, "category": object}
    return pd.DataFrame({name: pd.Series(dtype=dtypes.get(name, np.float64)) for name in DETECTION_COLUMNS})


def boxes_to_av2_dataframe(boxes: Boxes3D, class_names: Sequence[str], log_id: str, timestamp_ns: int,
                           lidar2ego: np.ndarray | None = None) -> pd.DataFrame:
    """One sweep's predicted boxes as av2 detection rows (scores 1 when ``scores`` is None).

    ``boxes`` are in the LiDAR frame given by ``lidar2ego`` (identity for AV2 frames, whose
    LiDAR frame is the ego frame); rows are in the ego frame at ``timestamp_ns``.
    """
    if lidar2ego is not None:
        boxes = boxes.transform(np.asarray(lidar2ego, dtype=np.float64))
    if len(boxes) == 0:
        return empty_detections()
    scores = np.ones(len(boxes)) if boxes.scores is None else boxes.scores
    values = np.concatenate([boxes.centers, boxes.sizes, yaw_quaternions(boxes.yaws), scores[:, None]], axis=1)
    frame = pd.DataFrame(values, columns=list(CUBOID_COLUMNS + ("score",)))
    frame["log_id"] = str(log_id)
    frame["timestamp_ns"] = np.int64(timestamp_ns)
    frame["category"] = [str(class_names[int(label)]) for label in boxes.labels]
    return frame[list(DETECTION_COLUMNS)]


def sweep_of(prediction: Prediction) -> tuple[str, int]:
    """``(log_id, timestamp_ns)`` of an AV2 sample: from ``metainfo`` when it has both, else
    from the token (``<log_id>/<timestamp_ns>`` or the infos' ``<log_id>_<timestamp_ns>``);
    float ``timestamp`` seconds are not used (they cannot hold nanoseconds exactly)."""
    meta = prediction.metainfo
    if "log_id" in meta and "timestamp_ns" in meta:
        return str(meta["log_id"]), int(meta["timestamp_ns"])
    match = _TOKEN.match(prediction.token)
    if match is None:
        raise ValueError(f"AV2 sample token {prediction.token!r} is not '<log_id>/<timestamp_ns>' or "
                         f"'<log_id>_<timestamp_ns>' and metainfo has no log_id/timestamp_ns")
    return match["log_id"], int(match["timestamp_ns"])


def predictions_to_av2_dataframe(predictions: Sequence[Prediction]) -> pd.DataFrame:
    """All predictions as one av2 detections table (LiDAR frame = ego frame, or ``metainfo["lidar2ego"]``)."""
    from av2.datasets.sensor.constants import AnnotationCategories

    known = {c.value for c in AnnotationCategories}
    tables = []
    for prediction in predictions:
        used = {prediction.class_names[label] for label in prediction.boxes.labels}
        if used - known:
            raise ValueError(f"sample {prediction.token}: classes {sorted(used - known)} are not AV2 categories "
                             f"(evaluate AV2 with a model using class_mapping='av2')")
        log_id, timestamp_ns = sweep_of(prediction)
        tables.append(boxes_to_av2_dataframe(prediction.boxes, prediction.class_names, log_id, timestamp_ns,
                                             prediction.metainfo.get("lidar2ego")))
    tables = [table for table in tables if len(table)]
    if not tables:
        return empty_detections()
    return pd.concat(tables, ignore_index=True)


def load_av2_ground_truth(dataset_dir: str | Path, split: str) -> pd.DataFrame:
    """``annotations.feather`` of every log of ``dataset_dir/split`` with a ``log_id`` column
    (av2's ``read_all_annotations``)."""
    from av2.utils.io import read_all_annotations

    split_dir = Path(dataset_dir) / split
    if not split_dir.is_dir():
        raise FileNotFoundError(f"AV2 split folder not found: {split_dir}")
    if not any(split_dir.glob("*/annotations.feather")):
        raise FileNotFoundError(f"no AV2 annotations (*/annotations.feather) under {split_dir}")
    return read_all_annotations(Path(dataset_dir), split)


def sweep_keys(table: pd.DataFrame) -> pd.MultiIndex:
    """``(log_id, timestamp_ns)`` of each row."""
    return pd.MultiIndex.from_arrays([table["log_id"].astype(str).to_numpy(object),
                                      table["timestamp_ns"].astype(np.int64).to_numpy()])


def restrict_to_sweeps(gts: pd.DataFrame, sweeps: Collection[tuple[str, int]], where: str = "") -> pd.DataFrame:
    """The rows of ``sweeps``; a log absent from ``gts`` is an error (wrong split or root)."""
    unknown = sorted({log_id for log_id, _ in sweeps} - set(gts["log_id"].astype(str)))
    if unknown:
        raise ValueError(f"AV2 logs {unknown} have no annotations{' under ' + where if where else ''}")
    return gts[sweep_keys(gts).isin(list(sweeps))].reset_index(drop=True)


def evaluate_av2(dts: pd.DataFrame, gts: pd.DataFrame, cfg: Any, n_jobs: int = 1) -> pd.DataFrame:
    """av2's ``evaluate``; returns its summary table (categories + ``AVERAGE_METRICS`` x AP, ATE, ASE, AOE, CDS)."""
    from av2.evaluation.detection.eval import evaluate

    if len(dts) == 0 and len(gts) == 0:
        raise ValueError("AV2 evaluation: no detections and no ground truth in the evaluated sweeps")
    _, _, summary = evaluate(dts.reset_index(drop=True), gts, cfg, n_jobs=n_jobs)
    return summary


def summary_to_metrics(summary: pd.DataFrame) -> dict[str, float]:
    """``{"mAP", "mATE", "mASE", "mAOE", "CDS"}`` (av2's ``AVERAGE_METRICS``) and ``"<metric>_<category>"``."""
    out = {MEAN_KEYS[name]: float(summary.loc["AVERAGE_METRICS", name]) for name in METRIC_NAMES}
    for category in summary.index:
        if category != "AVERAGE_METRICS":
            out.update({f"{name}_{category}": float(summary.loc[category, name]) for name in METRIC_NAMES})
    return out


@METRICS.register_module()
class AV2DetectionMetric(BaseMetric):
    """AV2 3D detection metric (AP, ATE, ASE, AOE, CDS per category and mean) from the av2 package.

    Args:
        data_root: AV2 sensor root holding ``<split>/<log_id>/`` (the datasets' ``data_root``).
        split: split folder to score.
        categories: categories to score (mean over them); ``None``: av2's 26 competition categories.
        eval_only_roi_instances: av2's ROI pruning (official: on; reads the logs' maps).
        max_range_m: av2's evaluation range.
        n_jobs: worker processes of av2's ``spawn`` pool (default: up to 8, one per CPU).
        output_dir: where to keep ``detections_av2.feather`` (the leaderboard format); ``None``: not kept.
        format_only: only write the detections; needs ``output_dir``.
    """

    default_prefix = "av2"

    def __init__(self, data_root: str, split: str = "val", categories: Sequence[str] | None = None,
                 eval_only_roi_instances: bool = True, max_range_m: float = 150.0, n_jobs: int | None = None,
                 output_dir: str | None = None, format_only: bool = False, collect_device: str = "cpu",
                 prefix: str | None = "av2") -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if format_only and output_dir is None:
            raise ValueError("AV2DetectionMetric: format_only=True needs output_dir")
        if n_jobs is not None and n_jobs < 1:
            raise ValueError(f"AV2DetectionMetric: n_jobs must be >= 1, got {n_jobs}")
        self.data_root = str(data_root)
        self.split = split
        self.categories = None if categories is None else tuple(categories)
        self.eval_only_roi_instances = eval_only_roi_instances
        self.max_range_m = float(max_range_m)
        self.n_jobs = n_jobs or min(8, os.cpu_count() or 1)
        self.output_dir = output_dir
        self.format_only = format_only

    def detection_cfg(self) -> Any:
        """av2's ``DetectionCfg`` for this metric."""
        from av2.evaluation.detection.utils import DetectionCfg

        options: dict[str, Any] = {"dataset_dir": Path(self.data_root) / self.split,
                                   "eval_only_roi_instances": self.eval_only_roi_instances,
                                   "max_range_m": self.max_range_m}
        if self.categories is not None:
            options["categories"] = self.categories
        return DetectionCfg(**options)

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Keep token, class names, metainfo and predicted boxes of each sample."""
        self.results.extend(read_prediction(sample) for sample in data_samples)

    def compute_metrics(self, results: list) -> dict[str, float]:
        """Build the detections table, restrict ground truth to the seen sweeps and run av2's evaluator."""
        logger = MMLogger.get_current_instance()
        predictions = list(unique_predictions(results).values())
        if not predictions:
            raise ValueError("AV2DetectionMetric: no predictions were processed")
        dts = predictions_to_av2_dataframe(predictions)
        if self.output_dir is not None:
            with atomic_path(Path(self.output_dir) / DETECTIONS_NAME) as temporary:
                dts.to_feather(temporary)
        if self.format_only:
            logger.info(f"AV2DetectionMetric: detections written to {Path(self.output_dir) / DETECTIONS_NAME}")
            return {}
        sweeps = {sweep_of(prediction) for prediction in predictions}
        split_dir = Path(self.data_root) / self.split
        all_gts = load_av2_ground_truth(self.data_root, self.split)
        gts = restrict_to_sweeps(all_gts, sweeps, str(split_dir))
        unseen = set(sweep_keys(all_gts)) - sweeps
        if unseen:
            logger.warning(f"AV2DetectionMetric: {len(unseen)} annotated sweeps of {split_dir} have no "
                           f"prediction; evaluating on the {len(sweeps)} predicted sweeps only")
        summary = evaluate_av2(dts, gts, self.detection_cfg(), self.n_jobs)
        logger.info(f"AV2 detection ({self.split}, {len(sweeps)} sweeps):\n{summary.to_string()}")
        return summary_to_metrics(summary)
