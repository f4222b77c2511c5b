"""End-to-end: frames -> detector (+ optional map head) -> tracker -> planner -> planned path, as a BEV PNG.

:class:`EndToEndPipeline` is fed frames in time order.  Its detector is any callable
``frame -> Boxes3D`` (LiDAR frame, scores set): :func:`detector_from_model` wraps a model
built by :func:`perception.apis.init_model` (``inference_detector``), and
:class:`GroundTruthDetector` gives the frame's own boxes with noise (to exercise the rest of
the chain without a trained detector).  The optional map head is a callable ``frame ->
MapInstances`` in the LiDAR frame (:func:`map_head_from_model` wraps a trained vector-map
model); its elements are moved to the world frame and put in the scene.  The planner is anything with ``plan(scene)``; :func:`default_planner` takes the STR
model when one is given, else the constant-velocity baseline.

:func:`synthetic_frames` turns a simulated synthetic scene into :class:`Frame`\\ s (LiDAR at
10 Hz, the AV2 / motion-forecasting rate, so plans are at the 0.1 s step of the other planning
data) with their ground-truth boxes; :func:`draw_end_to_end` writes the BEV picture.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..structures import Boxes3D, Frame, invert_transform  # noqa: E402
from ..structures.conventions import NUSCENES_CLASSES  # noqa: E402
from ..structures.geometry import apply_transform  # noqa: E402
from ..structures.map_elements import MapElement  # noqa: E402
from ..utils.atomic import atomic_path  # noqa: E402
from .baselines import ConstantVelocityPlanner  # noqa: E402
from .scene import PlanningScene  # noqa: E402
from .tracker import MultiObjectTracker, TrackerConfig, build_planning_scene  # noqa: E402

Detector = Callable[[Frame], Boxes3D]
MapHead = Callable[[Frame], Any]  # frame -> MapInstances (LiDAR frame)
SYNTHETIC_POINT_FEATURES = ("x", "y", "z", "intensity", "time_lag")


def detector_from_model(model: Any) -> Detector:
    """``frame -> Boxes3D`` calling :func:`perception.apis.inference_detector` on ``model``."""
    from ..apis import inference_detector

    return lambda frame: inference_detector(model, frame)


def map_head_from_model(model: Any, score_threshold: float = 0.3) -> MapHead:
    """``frame -> MapInstances`` (the frame's LiDAR frame) from a vector-map model built by
    :func:`perception.apis.init_model` (``MapDetector`` + ``MapTRHead``).

    The synthetic map models train on the AV2-style sensor logs, whose points are in the ego
    frame (x forward) with one sweep; the frame's newest sweep is moved there for the model and
    the predicted elements (score >= ``score_threshold``) are moved back to the LiDAR frame."""
    import torch
    from mmengine.dataset import pseudo_collate

    from ..apis.inference import build_test_pipeline
    from ..structures.map_instances import MapInstances

    pipeline = build_test_pipeline(model.cfg)

    def head(frame: Frame) -> MapInstances:
        points = frame.points
        if "time_lag" in frame.point_features:
            points = points[points[:, frame.point_features.index("time_lag")] <= 1e-6]
        points = points.copy()
        points[:, :3] = apply_transform(np.asarray(frame.lidar2ego, np.float64), points[:, :3].astype(np.float64))
        ego_frame = replace(frame, points=points, lidar2ego=np.eye(4))
        data = pipeline({"frame": ego_frame, "sample_idx": 0})
        with torch.no_grad():
            pred = model.test_step(pseudo_collate([data]))[0].pred_map
        keep = np.ones(len(pred.labels), dtype=bool) if pred.scores is None else pred.scores >= score_threshold
        ego2lidar = invert_transform(np.asarray(frame.lidar2ego, np.float64))
        xy = pred.points[keep].astype(np.float64)
        flat = np.concatenate([xy.reshape(-1, 2), np.zeros((xy.size // 2, 1))], axis=1)
        local = apply_transform(ego2lidar, flat)[:, :2].reshape(xy.shape).astype(np.float32)
        return MapInstances(local, pred.labels[keep], pred.class_names, pred.closed[keep],
                            None if pred.scores is None else pred.scores[keep])

    return head


@dataclass
class GroundTruthDetector:
    """The frame's ground-truth boxes with Gaussian centre noise (m) and random misses."""

    position_noise: float = 0.0
    miss_rate: float = 0.0
    seed: int = 0
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def __call__(self, frame: Frame) -> Boxes3D:
        boxes = frame.boxes[self.rng.uniform(size=len(frame.boxes)) >= self.miss_rate]
        data = boxes.data.copy()
        data[:, :2] += self.rng.normal(0.0, self.position_noise, (len(data), 2))
        return Boxes3D(data, boxes.labels, [""] * len(data), scores=np.ones(len(data)))


def default_planner(str_model: Any | None = None, num_future: int = 30) -> Any:
    """The STR model when given (anything with ``plan(scene)``), else constant velocity."""
    if str_model is not None:
        if not hasattr(str_model, "plan"):
            raise TypeError(f"{type(str_model).__name__} has no plan(scene) method")
        return str_model
    return ConstantVelocityPlanner(num_future=num_future)


def map_instances_to_world(instances: Any, lidar2global: np.ndarray) -> list[MapElement]:
    """:class:`MapInstances` (LiDAR-frame BEV) as world-frame :class:`MapElement`\\ s."""
    out = []
    for k, (points, label, closed) in enumerate(zip(instances.points, instances.labels, instances.closed)):
        xyz = np.concatenate([points.astype(np.float64), np.zeros((len(points), 1))], axis=1)
        world = apply_transform(lidar2global, xyz)[:, :2]
        out.append(MapElement(instances.class_names[int(label)], world, bool(closed), f"pred/{k}"))
    return out


@dataclass
class StepResult:
    """What one frame produced: detections above the score threshold (LiDAR frame), the scene given
    to the planner, the plan (world frame) and the map elements (world frame)."""

    frame: Frame
    detections: Boxes3D
    scene: PlanningScene
    plan: np.ndarray
    map_elements: list[MapElement]


class EndToEndPipeline:
    """Detector -> tracker -> planner, one frame at a time.  With a map head, the scene's map is
    its predicted elements plus the frame's own elements of ``base_map_categories`` (e.g. the
    lane centrelines a route map provides, which a vector-map head does not predict)."""

    def __init__(self, detector: Detector, planner: Any | None = None, map_head: MapHead | None = None,
                 tracker: MultiObjectTracker | None = None, history_steps: int = 20,
                 score_threshold: float = 0.3, max_distance: float = 80.0,
                 base_map_categories: Sequence[str] = ()) -> None:
        self.detector, self.map_head = detector, map_head
        self.base_map_categories = tuple(base_map_categories)
        self.planner = planner if planner is not None else default_planner()
        if tracker is None:
            tracker = MultiObjectTracker(TrackerConfig(score_threshold=score_threshold))
        self.tracker = tracker
        self.history_steps, self.max_distance, self.score_threshold = history_steps, max_distance, score_threshold
        self.poses: list[np.ndarray] = []

    def step(self, frame: Frame) -> StepResult:
        detections = self.detector(frame)
        if not isinstance(detections, Boxes3D):
            raise TypeError(f"frame {frame.token}: the detector returned {type(detections).__name__}, not Boxes3D")
        if detections.scores is not None:
            detections = detections[detections.scores >= self.score_threshold]
        self.tracker.update(detections, frame.lidar2global, frame.class_names, frame.timestamp)
        self.poses.append(np.asarray(frame.ego2global, dtype=np.float64))
        elements = list(frame.map_elements)
        if self.map_head is not None:
            kept = [e for e in frame.map_elements if e.category in self.base_map_categories]
            elements = kept + map_instances_to_world(self.map_head(frame), frame.lidar2global)
        scene = build_planning_scene(self.tracker, self.poses, frame.token, elements, frame.location,
                                     self.max_distance, self.history_steps)
        plan = np.asarray(self.planner.plan(scene), dtype=np.float64)
        if plan.ndim != 2 or plan.shape[1] != 3:
            raise ValueError(f"frame {frame.token}: the planner returned shape {plan.shape}, expected (T, 3)")
        return StepResult(frame, detections, scene, plan, elements)

    def run(self, frames: Sequence[Frame] | Iterator[Frame]) -> list[StepResult]:
        return [self.step(frame) for frame in frames]


DETECTION_NAMES: dict[str, str] = {
    "movable_object.barrier": "barrier", "vehicle.bicycle": "bicycle", "vehicle.bus.bendy": "bus",
    "vehicle.bus.rigid": "bus", "vehicle.car": "car", "vehicle.construction": "construction_vehicle",
    "vehicle.motorcycle": "motorcycle", "human.pedestrian.adult": "pedestrian", "human.pedestrian.child": "pedestrian",
    "human.pedestrian.construction_worker": "pedestrian", "human.pedestrian.police_officer": "pedestrian",
    "movable_object.trafficcone": "traffic_cone", "vehicle.trailer": "trailer", "vehicle.truck": "truck",
}
"""nuScenes category -> detection class (the devkit's rule, kept here to spare importing the devkit)."""


def _gt_boxes(objects: Sequence[Any], global2lidar: np.ndarray, class_names: Sequence[str]) -> Boxes3D:
    rows, labels, ids = [], [], []
    for obj in objects:
        name = DETECTION_NAMES.get(obj.category)
        if name is None or name not in class_names:
            continue
        rows.append([*obj.center, *obj.size, obj.yaw, *obj.velocity[:2]])
        labels.append(class_names.index(name))
        ids.append(obj.track_id)
    return Boxes3D(np.asarray(rows).reshape(-1, 9), labels, ids).transform(global2lidar)


def synthetic_frames(name: str = "e2e", seed: int = 0, duration_s: float = 3.0, every: int = 2, sweeps: int = 0,
                     num_beams: int = 32, azimuth_steps: int = 1084, location: str = "synth-town",
                     with_map: bool = True, progress: bool = False) -> list[Frame]:
    """Frames of a freshly simulated synthetic scene, every ``every``-th 20 Hz LiDAR tick, with
    ground-truth boxes (nuScenes classes) and, with ``with_map``, the road map's elements.

    ``sweeps`` earlier ticks are merged into each frame (moved into its LiDAR frame, ``time_lag``
    = keyframe time minus sweep time), as the nuScenes loader does for multi-sweep detectors."""
    from ..datasets.synthetic.simulate import generate_scene
    from .closed_loop_world import road_map_elements

    scene = generate_scene(name, seed, location=location, sensor_duration_s=duration_s, history_s=0.0,
                           future_s=0.0, with_images=False, num_beams=num_beams, azimuth_steps=azimuth_steps,
                           progress=progress)
    elements = road_map_elements(scene.road_map) if with_map else []
    classes = tuple(NUSCENES_CLASSES)
    lidar2globals = [np.asarray(t.ego2global) @ scene.lidar2ego for t in scene.ticks]
    frames = []
    for k in range(0, len(scene.ticks), every):
        tick, lidar2global = scene.ticks[k], lidar2globals[k]
        global2lidar = invert_transform(lidar2global)
        parts = []
        for j in range(k, max(-1, k - sweeps - 1), -1):
            points = np.asarray(scene.ticks[j].points, dtype=np.float32).copy()
            if j != k:
                points[:, :3] = apply_transform(global2lidar @ lidar2globals[j], points[:, :3].astype(np.float64))
            points[:, 4] = tick.timestamp - scene.ticks[j].timestamp  # time lag replaces the ring column
            parts.append(points)
        frames.append(Frame(f"{name}-{k // every:03d}", float(tick.timestamp), "synthetic", np.concatenate(parts),
                            SYNTHETIC_POINT_FEATURES, scene.lidar2ego, np.asarray(tick.ego2global), classes,
                            _gt_boxes(tick.objects, global2lidar, classes),
                            map_elements=elements, scene=name, location=scene.location))
    return frames


def draw_end_to_end(path: str | Path, result: StepResult, extent_m: float = 50.0, title: str | None = None) -> Path:
    """BEV PNG in the frame's LiDAR frame: points, map, GT boxes (solid), detections (dashed),
    track histories (grey tails) and the planned ego path (red)."""
    from ..visualization.bev import draw_boxes, draw_map

    frame = result.frame
    global2lidar = invert_transform(frame.lidar2global)
    figure, axes = plt.subplots(figsize=(8, 8), dpi=110)
    axes.set_facecolor("black")
    points = frame.points[(np.abs(frame.points[:, 0]) < extent_m) & (np.abs(frame.points[:, 1]) < extent_m)]
    axes.scatter(points[:, 0], points[:, 1], c=points[:, 2], s=0.4, cmap="viridis", vmin=-2.5, vmax=2.0,
                 linewidths=0)
    draw_map(axes, replace(frame, map_elements=result.map_elements))
    draw_boxes(axes, frame.boxes, frame.class_names)
    draw_boxes(axes, result.detections, frame.class_names, dashed=True)

    def local(xy: np.ndarray) -> np.ndarray:
        xyz = np.concatenate([xy, np.zeros((len(xy), 1))], axis=1)
        return apply_transform(global2lidar, xyz)[:, :2]

    for agent in result.scene.agents:
        tail = local(agent.states[agent.valid, :2])
        axes.plot(tail[:, 0], tail[:, 1], color="#cccccc", linewidth=1.2, alpha=0.8)
    ego = result.scene.ego
    past = local(ego.states[ego.valid, :2])
    axes.plot(past[:, 0], past[:, 1], color="#ffffff", linewidth=2.0, label="ego history")
    plan = local(result.plan[:, :2])
    axes.plot(plan[:, 0], plan[:, 1], color="#ff3030", linewidth=2.5, marker="o", markersize=2.5,
              label=f"plan ({len(plan)} steps)")
    axes.set_xlim(-extent_m, extent_m)
    axes.set_ylim(-extent_m, extent_m)
    axes.set_aspect("equal")
    axes.legend(loc="upper right", fontsize=8)
    axes.set_title(title or f"{frame.token}: detector -> tracker ({len(result.scene.agents)} tracks) -> planner")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temp:
        figure.savefig(temp, format="png")
    plt.close(figure)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m perception.planning.end_to_end --out PNG [--config C --checkpoint W] [--str-config ...
    --str-checkpoint ...] [--map-config ... --map-checkpoint ...]``: runs the chain on a simulated
    synthetic scene and draws the last frame."""
    import argparse

    from tqdm import tqdm

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--config", type=Path, default=None, help="detector config (default: noisy ground truth)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="detector weights")
    parser.add_argument("--str-config", type=Path, default=None, help="STR config (default: constant velocity)")
    parser.add_argument("--str-checkpoint", type=Path, default=None, help="STR weights")
    parser.add_argument("--map-config", type=Path, default=None,
                        help="vector-map model config (default: the simulator's map)")
    parser.add_argument("--map-checkpoint", type=Path, default=None, help="vector-map model weights")
    parser.add_argument("--map-score-threshold", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of frames")
    parser.add_argument("--sweeps", type=int, default=9, help="earlier LiDAR ticks merged per frame")
    parser.add_argument("--score-threshold", type=float, default=0.3)
    args = parser.parse_args(argv)
    if args.config is not None:
        from ..apis import init_model

        detector: Detector = detector_from_model(init_model(args.config, args.checkpoint))
        source = f"{args.config.stem}"
    else:
        detector, source = GroundTruthDetector(position_noise=0.2, miss_rate=0.1, seed=args.seed), "noisy GT boxes"
    planner, planner_name = default_planner(), "constant velocity"
    if args.str_config is not None:
        from .str_planner import STRPlanner

        planner, planner_name = STRPlanner.from_config(args.str_config, args.str_checkpoint), "STR"
    map_head, map_name = None, ""
    if args.map_config is not None:
        from ..apis import init_model

        map_head = map_head_from_model(init_model(args.map_config, args.map_checkpoint), args.map_score_threshold)
        map_name = f" + {args.map_config.stem}"
    frames = synthetic_frames("e2e-demo", args.seed, duration_s=args.duration, sweeps=args.sweeps, progress=True)
    pipeline = EndToEndPipeline(detector, planner, map_head=map_head, score_threshold=args.score_threshold,
                                base_map_categories=("lane_centerline",))
    results = pipeline.run(tqdm(frames, desc="end-to-end"))
    last = results[-1]
    path = draw_end_to_end(args.out, last, title=f"{source}{map_name} -> tracker ({len(last.scene.agents)} tracks) "
                                                  f"-> {planner_name}")
    print(f"end-to-end: {len(frames)} frames, {len(last.detections)} detections, {len(last.map_elements)} map "
          f"elements and {len(last.scene.agents)} tracks in the last one, plan of {len(last.plan)} steps; wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
