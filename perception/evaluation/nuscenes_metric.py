"""``NuScenesMetric``: the official nuScenes detection evaluation as an mmengine metric.

``process`` keeps, per predicted sample, what the submission needs (sample token, the
LiDAR-to-global pose, class names and the LiDAR-frame ``pred`` boxes); ``compute_metrics``
writes the submission JSON (every sample of ``eval_set``: the devkit asserts they are all
present, so samples without predictions get an empty list) and scores it with the devkit's
``DetectionEval`` through :func:`.nuscenes_detection.evaluate_nuscenes`.

When the metric saw only part of ``eval_set`` (a run limited with ``--cfg-options``), the
devkit would count every box of the unseen samples as missed; instead the evaluation is
restricted to the seen samples (:func:`evaluate_nuscenes_samples` drops the other samples'
ground truth after the devkit loaded and filtered it) and a warning says so.
"""
from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from ..registry import METRICS
from ..structures import Boxes3D
from ..utils.atomic import atomic_open
from .nuscenes_detection import DetectionMetrics, boxes_to_submission, evaluate_nuscenes, write_submission

SUBMISSION_NAME = "results_nusc.json"
METRICS_NAME = "metrics_summary.json"
TP_ERROR_KEYS: Mapping[str, str] = {
    "trans_err": "mATE", "scale_err": "mASE", "orient_err": "mAOE", "vel_err": "mAVE", "attr_err": "mAAE",
}
"""Devkit TP-error name -> the metric key (mmdetection3d's names)."""


@dataclass(frozen=True, eq=False)
class Prediction:
    """What a metric keeps of one predicted sample (plain numpy, picklable for collection)."""

    token: str
    lidar2global: np.ndarray
    class_names: tuple[str, ...]
    boxes: Boxes3D
    metainfo: Mapping[str, Any]


def sample_field(sample: Any, name: str) -> Any:
    """Field ``name`` of a ``DetSample`` (attribute) or of its dict form (key)."""
    if isinstance(sample, Mapping):
        if name not in sample:
            raise KeyError(f"data sample has no {name!r} (keys: {sorted(sample)})")
        return sample[name]
    if not hasattr(sample, name):
        raise AttributeError(f"data sample {type(sample).__name__} has no attribute {name!r}")
    return getattr(sample, name)


def read_prediction(sample: Any) -> Prediction:
    """A :class:`Prediction` from a ``DetSample``-like object with ``pred`` set by ``model.predict``."""
    token = str(sample_field(sample, "token"))
    pred = sample_field(sample, "pred")
    if pred is None:
        raise ValueError(f"sample {token}: pred is None; metrics need the output of model.predict")
    if not isinstance(pred, Boxes3D):
        raise TypeError(f"sample {token}: pred must be a Boxes3D, got {type(pred).__name__}")
    lidar2global = np.asarray(sample_field(sample, "lidar2global"), dtype=np.float64)
    if lidar2global.shape != (4, 4) or not np.isfinite(lidar2global).all():
        raise ValueError(f"sample {token}: lidar2global must be a finite 4x4 matrix, got {lidar2global.shape}")
    class_names = tuple(str(c) for c in sample_field(sample, "class_names"))
    if len(pred) and (pred.labels.min() < 0 or pred.labels.max() >= len(class_names)):
        raise ValueError(f"sample {token}: pred labels {sorted(set(pred.labels.tolist()))} do not index "
                         f"class_names {class_names}")
    metainfo = sample.get("metainfo", {}) if isinstance(sample, Mapping) else getattr(sample, "metainfo", {})
    return Prediction(token, lidar2global, class_names, pred[np.arange(len(pred))], dict(metainfo or {}))


def unique_predictions(results: Sequence[Prediction]) -> dict[str, Prediction]:
    """``{token: prediction}``; a sample seen twice (padded distributed batches) keeps the last."""
    return {prediction.token: prediction for prediction in results}


def split_sample_tokens(nusc: Any, eval_set: str) -> list[str]:
    """Sample tokens of ``eval_set``: an official split, or one of ``<version>/splits.json``."""
    from nuscenes.eval.common.loaders import get_samples_of_scenes, get_scenes_of_custom_split
    from nuscenes.utils.splits import create_splits_scenes, is_predefined_split

    if is_predefined_split(eval_set):
        scenes = create_splits_scenes()[eval_set]
    else:
        try:
            scenes = get_scenes_of_custom_split(split_name=eval_set, nusc=nusc)
        except (AssertionError, FileNotFoundError, KeyError) as error:
            raise ValueError(f"eval_set {eval_set!r} is neither an official nuScenes split nor in "
                             f"{Path(nusc.table_root) / 'splits.json'}: {error}") from error
    return get_samples_of_scenes(scene_names=list(scenes), nusc=nusc)


def evaluate_nuscenes_samples(nusc: Any, result_path: str | Path, eval_set: str, output_dir: str | Path,
                              sample_tokens: Collection[str], config_name: str = "detection_cvpr_2019",
                              ) -> DetectionMetrics:
    """The devkit's ``DetectionEval`` on the samples ``sample_tokens`` of ``eval_set`` only.

    The devkit loads and range-filters ground truth and predictions of the whole split as
    usual; the other samples are then removed from both before ``evaluate`` (matching,
    AP and TP errors are the devkit's, on fewer samples).
    """
    from nuscenes.eval.common.config import config_factory
    from nuscenes.eval.common.data_classes import EvalBoxes
    from nuscenes.eval.detection.evaluate import DetectionEval

    evaluator = DetectionEval(nusc, config_factory(config_name), str(result_path), eval_set, str(output_dir),
                              verbose=False)
    keep = set(sample_tokens)
    missing = keep - set(evaluator.gt_boxes.sample_tokens)
    if missing:
        raise ValueError(f"{len(missing)} sample tokens are not in eval_set {eval_set!r}, e.g. {sorted(missing)[0]}")
    for name in ("gt_boxes", "pred_boxes"):
        restricted = EvalBoxes()
        for token in sorted(keep):
            restricted.add_boxes(token, getattr(evaluator, name)[token])
        setattr(evaluator, name, restricted)
    evaluator.sample_tokens = evaluator.gt_boxes.sample_tokens
    metrics, _ = evaluator.evaluate()
    summary = metrics.serialize()
    return DetectionMetrics(
        mean_ap=float(summary["mean_ap"]),
        nd_score=float(summary["nd_score"]),
        tp_errors={key: float(value) for key, value in summary["tp_errors"].items()},
        class_aps={key: float(value) for key, value in summary["mean_dist_aps"].items()},
    )


def with_out_of_range_sentinel(submission: Mapping[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """``submission`` plus one car 1000 km from anything: the devkit cannot filter a submission
    without any box (it reads the box type off the first one), and its class-range filter
    drops this box before matching, so the scores are those of the empty submission."""
    token = next(iter(submission))
    sentinel = {"sample_token": token, "translation": [1e6, 1e6, 0.0], "size": [1.0, 1.0, 1.0],
                "rotation": [1.0, 0.0, 0.0, 0.0], "velocity": [0.0, 0.0], "detection_name": "car",
                "detection_score": 0.0, "attribute_name": "vehicle.parked"}
    return {**submission, token: [*submission[token], sentinel]}


def metrics_dict(metrics: DetectionMetrics) -> dict[str, float]:
    """``{"mAP", "NDS", "mATE", ..., "AP_<class>"}`` from the devkit's summary."""
    out = {"mAP": metrics.mean_ap, "NDS": metrics.nd_score}
    out.update({TP_ERROR_KEYS.get(name, name): value for name, value in metrics.tp_errors.items()})
    out.update({f"AP_{name}": value for name, value in metrics.class_aps.items()})
    return out


@METRICS.register_module()
class NuScenesMetric(BaseMetric):
    """nuScenes detection metric (mAP, NDS, TP errors, per-class AP) from the official devkit.

    Args:
        data_root: nuScenes root (holding ``<version>/*.json``).
        version: table version, e.g. ``v1.0-trainval``, ``v1.0-mini``, ``v1.0-synthetic``.
        eval_set: split to score: ``val``, ``mini_val``, ... or a custom ``splits.json`` split.
        eval_config: the devkit's detection config name.
        jsonfile_prefix: folder for ``results_nusc.json``, ``metrics_summary.json`` (the returned
            values) and the devkit's output folder ``eval/`` (kept);
            ``None`` uses a temporary folder removed after evaluation.
        format_only: only write the submission (e.g. for the test split); needs ``jsonfile_prefix``.
    """

    default_prefix = "nuscenes"

    def __init__(self, data_root: str, version: str = "v1.0-trainval", eval_set: str = "val",
                 eval_config: str = "detection_cvpr_2019", jsonfile_prefix: str | None = None,
                 format_only: bool = False, collect_device: str = "cpu", prefix: str | None = "nuscenes",
                 ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if format_only and jsonfile_prefix is None:
            raise ValueError("NuScenesMetric: format_only=True needs jsonfile_prefix (where to keep the submission)")
        self.data_root = str(data_root)
        self.version = version
        self.eval_set = eval_set
        self.eval_config = eval_config
        self.jsonfile_prefix = jsonfile_prefix
        self.format_only = format_only
        self._nusc: Any = None

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Keep token, pose, class names and predicted boxes of each sample."""
        self.results.extend(read_prediction(sample) for sample in data_samples)

    def devkit(self) -> Any:
        """The ``NuScenes`` tables, loaded once per metric instance."""
        if self._nusc is None:
            from nuscenes.nuscenes import NuScenes

            table_dir = Path(self.data_root) / self.version
            if not table_dir.is_dir():
                raise FileNotFoundError(f"NuScenesMetric: nuScenes tables not found: {table_dir}")
            self._nusc = NuScenes(version=self.version, dataroot=self.data_root, verbose=False)
        return self._nusc

    def build_submission(self, predictions: Mapping[str, Prediction], split_tokens: Sequence[str],
                         ) -> dict[str, list[dict[str, Any]]]:
        """Entries of every sample of the split (``[]`` where nothing was predicted)."""
        from nuscenes.eval.common.config import config_factory

        config = config_factory(self.eval_config)
        allowed = set(config.class_names)
        submission: dict[str, list[dict[str, Any]]] = {token: [] for token in split_tokens}
        for token, prediction in predictions.items():
            boxes = prediction.boxes
            used = {prediction.class_names[label] for label in boxes.labels}
            if used - allowed:
                raise ValueError(f"sample {token}: classes {sorted(used - allowed)} are not nuScenes detection "
                                 f"classes {sorted(allowed)}")
            if len(boxes) > config.max_boxes_per_sample:
                MMLogger.get_current_instance().warning(
                    f"NuScenesMetric: sample {token} has {len(boxes)} boxes; keeping the "
                    f"{config.max_boxes_per_sample} best scored (the devkit's limit)")
                scores = np.ones(len(boxes)) if boxes.scores is None else boxes.scores
                boxes = boxes[np.argsort(-scores, kind="stable")[: config.max_boxes_per_sample]]
            submission[token] = boxes_to_submission(boxes, prediction.lidar2global, prediction.class_names, token)
        return submission

    def compute_metrics(self, results: list) -> dict[str, float]:
        """Write the submission and run the devkit; returns mAP, NDS, mATE... and AP per class."""
        logger = MMLogger.get_current_instance()
        predictions = unique_predictions(results)
        if not predictions:
            raise ValueError("NuScenesMetric: no predictions were processed")
        nusc = self.devkit()
        split_tokens = split_sample_tokens(nusc, self.eval_set)
        unknown = sorted(set(predictions) - set(split_tokens))
        if unknown:
            raise ValueError(f"NuScenesMetric: {len(unknown)} predicted samples are not in eval_set "
                             f"{self.eval_set!r} of {self.version} (e.g. {unknown[0]}); check eval_set")
        submission = self.build_submission(predictions, split_tokens)
        with self._output_folder() as folder:
            path = write_submission(submission, folder / SUBMISSION_NAME)
            if self.format_only:
                logger.info(f"NuScenesMetric: submission written to {path} (format_only)")
                return {}
            if not any(submission.values()):
                path = write_submission(with_out_of_range_sentinel(submission), folder / "eval" / SUBMISSION_NAME)
            if len(predictions) == len(split_tokens):
                metrics = evaluate_nuscenes(nusc, path, self.eval_set, folder / "eval", self.eval_config)
            else:
                logger.warning(f"NuScenesMetric: predictions cover {len(predictions)} of {len(split_tokens)} "
                               f"samples of {self.eval_set!r}; evaluating on those samples only")
                metrics = evaluate_nuscenes_samples(nusc, path, self.eval_set, folder / "eval", list(predictions),
                                                    self.eval_config)
        logger.info(f"nuScenes detection ({self.eval_set}, {len(predictions)} samples):\n{metrics.table()}")
        values = metrics_dict(metrics)
        if self.jsonfile_prefix is not None:
            with atomic_open(Path(self.jsonfile_prefix) / METRICS_NAME, "w") as stream:
                json.dump(values, stream, indent=1)
        return values

    @contextlib.contextmanager
    def _output_folder(self) -> Iterator[Path]:
        """``jsonfile_prefix`` (kept) or a temporary folder (removed afterwards)."""
        if self.jsonfile_prefix is not None:
            folder = Path(self.jsonfile_prefix)
            folder.mkdir(parents=True, exist_ok=True)
            yield folder
            return
        with tempfile.TemporaryDirectory(prefix="nuscenes_metric_") as name:
            yield Path(name)
