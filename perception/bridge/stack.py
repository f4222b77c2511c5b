"""The model stack behind the bridge: a callable ``Frame -> StackOutput`` with per-stage latencies.

:class:`DetectorStack` chains a detector (the public inference API, ``init_model`` +
``inference_detector``), the planning layer's tracker and an optional planner; tests and
future heads plug in anything that satisfies :class:`Stack`.  The bridge never reaches into
models beyond this interface.
"""
from __future__ import annotations

import dataclasses
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Protocol

import numpy as np

from ..structures import Boxes3D, Frame, apply_transform, invert_transform
from .planner_stage import Planner, path_in_lidar_frame
from .results import MapPolyline, StackOutput
from .tracking_stage import BridgeTracker

Detector = Callable[[Frame], Boxes3D]


class Stack(Protocol):
    """Anything that turns a frame into boxes / map / path with stage timings."""

    def __call__(self, frame: Frame) -> StackOutput: ...


class StageTimer:
    """Collects ``stage -> milliseconds`` in execution order."""

    def __init__(self) -> None:
        self.latencies_ms: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.latencies_ms[name] = self.latencies_ms.get(name, 0.0) + (time.perf_counter() - start) * 1e3


def selected_features(cfg) -> tuple[str, ...]:
    """The point columns the config's test pipeline selects (``PointsSelectFeatures``), or ()."""
    try:
        steps = cfg.test_dataloader.dataset.pipeline
    except AttributeError:
        return ()
    for step in steps:
        if step.get("type") == "PointsSelectFeatures":
            return tuple(step["features"])
    return ()


def with_features(frame: Frame, features: tuple[str, ...]) -> Frame:
    """``frame`` with zero columns appended for every wanted feature it lacks.

    A live cloud often has no ``time_lag`` (single sweep) or no ``intensity``; the model
    still needs the columns, and zeros are what a single sweep / unknown return means.
    """
    missing = [name for name in features if name not in frame.point_features]
    if not missing:
        return frame
    zeros = np.zeros((len(frame.points), len(missing)), dtype=np.float32)
    return dataclasses.replace(frame, points=np.concatenate([frame.points, zeros], axis=1),
                               point_features=tuple(frame.point_features) + tuple(missing))


def map_polylines(frame: Frame, radius: float, categories: tuple[str, ...] | None = None) -> list[MapPolyline]:
    """The frame's (world-frame) map elements in the LiDAR frame, within ``radius`` metres."""
    world2lidar = invert_transform(frame.lidar2global)
    lines = []
    for element in frame.map_elements:
        if categories is not None and element.category not in categories:
            continue
        xyz = element.points if element.points.shape[1] == 3 else np.pad(element.points, ((0, 0), (0, 1)))
        local = apply_transform(world2lidar, xyz)
        if np.hypot(local[:, 0], local[:, 1]).min() > radius:
            continue
        if element.points.shape[1] == 2:
            local[:, 2] = -frame.lidar2ego[2, 3]  # 2D map on the ground below the sensor
        lines.append(MapPolyline(element.category, local, element.closed))
    return lines


class DetectorStack:
    """Detector -> tracker -> map -> planner, one frame at a time.

    The detector is any ``frame -> Boxes3D`` (LiDAR frame, scores set); :meth:`from_model`
    wraps a model built by :func:`perception.apis.init_model`.  Stages timed: ``adapt``
    (feature columns), ``detector``, ``tracker`` (:class:`BridgeTracker`: track ids on the
    boxes), ``map`` and ``planner`` (when one is given: the planning scene from the track
    histories and ego poses, ``plan(scene)``, the path moved into the LiDAR frame).  Boxes
    under ``score_threshold`` are dropped before tracking.
    """

    def __init__(self, detector: Detector, class_names: tuple[str, ...] = (), features: tuple[str, ...] = (),
                 score_threshold: float = 0.2, tracker: BridgeTracker | None = None,
                 planner: Planner | None = None, map_radius: float = 60.0,
                 map_categories: tuple[str, ...] | None = ("divider", "ped_crossing", "boundary",
                                                           "lane_divider", "road_divider")) -> None:
        self.detector = detector
        self.features = tuple(features)
        self.class_names = tuple(class_names)
        self.score_threshold = float(score_threshold)
        self.tracker = tracker if tracker is not None else BridgeTracker()
        self.planner = planner
        self.map_radius = float(map_radius)
        self.map_categories = map_categories

    @classmethod
    def from_model(cls, model, **kwargs) -> "DetectorStack":
        """A stack around a built detector (its config gives class names and point features)."""
        from ..apis import inference_detector

        return cls(lambda frame: inference_detector(model, frame), tuple(model.cfg.get("class_names", ())),
                   selected_features(model.cfg), **kwargs)

    @classmethod
    def from_files(cls, config: str | Path, checkpoint: str | Path | None, device: str = "cpu",
                   **kwargs) -> "DetectorStack":
        """Build the model with :func:`perception.apis.init_model` (random weights when no checkpoint).

        Live frames get one network run each: a config's flip test-time augmentation
        (``test_cfg.pts.flip_tta``, four runs per frame, for offline evaluation) is turned off.
        """
        from ..apis import init_model
        from ..config import load_config

        cfg = load_config(Path(config))
        if ((cfg.get("model", {}).get("test_cfg") or {}).get("pts") or {}).get("flip_tta"):
            cfg.merge_from_dict({"model.test_cfg.pts.flip_tta": False})
        return cls.from_model(init_model(cfg, None if checkpoint is None else str(checkpoint),
                                         device=device), **kwargs)

    def __call__(self, frame: Frame) -> StackOutput:
        timer = StageTimer()
        with timer.stage("adapt"):
            model_frame = with_features(frame, self.features)
        with timer.stage("detector"):
            boxes = self.detector(model_frame)
        if not isinstance(boxes, Boxes3D):
            raise TypeError(f"frame {frame.token}: the detector returned {type(boxes).__name__}, not Boxes3D")
        boxes = boxes[boxes.scores >= self.score_threshold] if boxes.scores is not None else boxes
        names = self.class_names or tuple(frame.class_names)
        with timer.stage("tracker"):
            boxes = self.tracker(frame, boxes, names)
        with timer.stage("map"):
            lines = map_polylines(frame, self.map_radius, self.map_categories)
        path = None
        if self.planner is not None:
            with timer.stage("planner"):
                plan = self.planner.plan(self.tracker.scene(frame))
                path = path_in_lidar_frame(plan, frame.lidar2global)
        return StackOutput(boxes, names, lines, path, timer.latencies_ms)
