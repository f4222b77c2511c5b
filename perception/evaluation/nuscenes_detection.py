"""nuScenes detection results: the official submission JSON and the devkit's ``DetectionEval``.

Predictions are LiDAR-frame :class:`~perception.structures.Boxes3D` per keyframe; they are
moved to the global frame, written in the submission format (size as ``(w, l, h)``, yaw as a
quaternion, global velocity) and scored by ``nuscenes.eval.detection.evaluate.DetectionEval``
unchanged: mAP, NDS, the five TP errors and per-class AP all come from the devkit.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pyquaternion import Quaternion

from ..structures import Boxes3D
from ..utils.atomic import atomic_open

DEFAULT_ATTRIBUTES: Mapping[str, str] = {
    "car": "vehicle.parked",
    "truck": "vehicle.parked",
    "trailer": "vehicle.parked",
    "bus": "vehicle.moving",
    "construction_vehicle": "vehicle.parked",
    "bicycle": "cycle.without_rider",
    "motorcycle": "cycle.without_rider",
    "pedestrian": "pedestrian.standing",
    "traffic_cone": "",
    "barrier": "",
}
"""Attribute of a box that does not move (the rule mmdetection3d's nuScenes output uses)."""
MOVING_ATTRIBUTES: Mapping[str, str] = {
    "car": "vehicle.moving",
    "truck": "vehicle.moving",
    "trailer": "vehicle.moving",
    "bus": "vehicle.moving",
    "construction_vehicle": "vehicle.moving",
    "bicycle": "cycle.with_rider",
    "motorcycle": "cycle.with_rider",
    "pedestrian": "pedestrian.moving",
}
MOVING_SPEED = 0.2
"""m/s above which a box counts as moving for its attribute."""

SUBMISSION_META: Mapping[str, bool] = {
    "use_camera": False, "use_lidar": True, "use_radar": False, "use_map": False, "use_external": False,
}


def attribute_of(name: str, velocity: np.ndarray) -> str:
    """nuScenes attribute of a detection from its class and speed."""
    speed = float(np.hypot(*np.nan_to_num(velocity[:2])))
    if speed > MOVING_SPEED and name in MOVING_ATTRIBUTES:
        return MOVING_ATTRIBUTES[name]
    return DEFAULT_ATTRIBUTES.get(name, "")


def boxes_to_submission(
    boxes: Boxes3D, lidar2global: np.ndarray, class_names: tuple[str, ...], sample_token: str
) -> list[dict[str, Any]]:
    """Submission entries of one keyframe's LiDAR-frame boxes (scores 1 when ``scores`` is None)."""
    world = boxes.transform(lidar2global)
    scores = np.ones(len(boxes)) if boxes.scores is None else boxes.scores
    entries = []
    for index in range(len(world)):
        name = class_names[int(world.labels[index])]
        velocity = np.nan_to_num(world.velocities[index])
        length, width, height = world.sizes[index]
        entries.append({
            "sample_token": sample_token,
            "translation": world.centers[index].tolist(),
            "size": [float(width), float(length), float(height)],
            "rotation": list(Quaternion(axis=[0.0, 0.0, 1.0], radians=float(world.yaws[index])).elements),
            "velocity": velocity.tolist(),
            "detection_name": name,
            "detection_score": float(scores[index]),
            "attribute_name": attribute_of(name, velocity),
        })
    return entries


def write_submission(results: Mapping[str, list[dict[str, Any]]], path: str | Path,
                     meta: Mapping[str, bool] = SUBMISSION_META) -> Path:
    """Write ``{"meta", "results"}`` atomically (temporary file, then rename)."""
    with atomic_open(path, "w") as stream:
        json.dump({"meta": dict(meta), "results": dict(results)}, stream)
    return Path(path)


@dataclass(frozen=True)
class DetectionMetrics:
    """The devkit's summary: mAP, NDS, mean TP errors and per-class AP."""

    mean_ap: float
    nd_score: float
    tp_errors: dict[str, float]
    class_aps: dict[str, float]

    def table(self) -> str:
        """A plain-text table for logs and the README."""
        lines = [f"mAP {self.mean_ap:.4f}  NDS {self.nd_score:.4f}"]
        lines += [f"  {name:<5} {value:.4f}" for name, value in self.tp_errors.items()]
        lines += [f"  AP {name:<22} {value:.4f}" for name, value in self.class_aps.items()]
        return "\n".join(lines)


def evaluate_nuscenes(nusc: Any, result_path: str | Path, eval_set: str, output_dir: str | Path,
                      config_name: str = "detection_cvpr_2019") -> DetectionMetrics:
    """Score a submission with the official ``DetectionEval`` on ``eval_set`` (an official
    split, or a custom one from ``<version>/splits.json`` such as ``synthetic_val``)."""
    from nuscenes.eval.common.config import config_factory
    from nuscenes.eval.detection.evaluate import DetectionEval

    evaluator = DetectionEval(nusc, config_factory(config_name), str(result_path), eval_set, str(output_dir),
                              verbose=False)
    metrics, _ = evaluator.evaluate()
    summary = metrics.serialize()
    return DetectionMetrics(
        mean_ap=float(summary["mean_ap"]),
        nd_score=float(summary["nd_score"]),
        tp_errors={key: float(value) for key, value in summary["tp_errors"].items()},
        class_aps={key: float(value) for key, value in summary["mean_dist_aps"].items()},
    )


def frames_to_submission(frames: Iterable[Any], predictions: Iterable[Boxes3D] | None = None) -> dict[str, list]:
    """``{sample_token: entries}`` from frames and their predictions (ground truth if None)."""
    frames = list(frames)
    boxes_per_frame = [frame.boxes for frame in frames] if predictions is None else list(predictions)
    return {
        frame.token: boxes_to_submission(boxes, frame.lidar2global, frame.class_names, frame.token)
        for frame, boxes in zip(frames, boxes_per_frame)
    }
