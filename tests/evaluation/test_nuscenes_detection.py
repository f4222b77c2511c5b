"""nuScenes detection evaluation: the submission format, and the official ``DetectionEval`` on a
generated synthetic val split (ground truth scores AP 1 for all ten classes; shifted or missing
boxes score less)."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from pyquaternion import Quaternion

from perception.evaluation.nuscenes_detection import (
    DetectionMetrics, attribute_of, boxes_to_submission, evaluate_nuscenes, frames_to_submission, write_submission)
from perception.structures import Boxes3D, make_transform, yaw_matrix
from perception.structures.conventions import NUSCENES_CLASSES

LIDAR2GLOBAL = make_transform(yaw_matrix(np.pi / 2), [100.0, -50.0, 2.0])
"""LiDAR x -> world y, LiDAR y -> world -x, origin at (100, -50, 2)."""
CLASS = {name: index for index, name in enumerate(NUSCENES_CLASSES)}


def _boxes(rows: list[list[float]], names: list[str], scores: list[float] | None = None) -> Boxes3D:
    return Boxes3D(np.asarray(rows, dtype=float), np.array([CLASS[n] for n in names]),
                   scores=None if scores is None else np.asarray(scores, dtype=float))


def test_boxes_to_submission_moves_box_to_global_in_devkit_layout():
    boxes = _boxes([[1.0, 2.0, 0.5, 4.0, 2.0, 1.5, 0.3, 3.0, 0.0]], ["car"], [0.7])
    (entry,) = boxes_to_submission(boxes, LIDAR2GLOBAL, NUSCENES_CLASSES, "tok")
    assert entry["sample_token"] == "tok" and entry["detection_name"] == "car"
    np.testing.assert_allclose(entry["translation"], [100.0 - 2.0, -50.0 + 1.0, 2.5])
    assert entry["size"] == [2.0, 4.0, 1.5]  # (w, l, h)
    rotation = Quaternion(entry["rotation"])
    np.testing.assert_allclose(rotation.elements, [np.cos((0.3 + np.pi / 2) / 2), 0, 0, np.sin((0.3 + np.pi / 2) / 2)],
                               atol=1e-12)
    assert rotation.yaw_pitch_roll[0] == pytest.approx(0.3 + np.pi / 2)
    np.testing.assert_allclose(entry["velocity"], [0.0, 3.0], atol=1e-12)  # rotated, not translated
    assert entry["detection_score"] == pytest.approx(0.7)
    assert entry["attribute_name"] == "vehicle.moving"


def test_nan_velocity_static_attributes_and_default_scores():
    names = ["car", "pedestrian", "bus", "bicycle", "traffic_cone", "barrier", "pedestrian", "motorcycle"]
    velocity = [[np.nan, np.nan], [0.0, 0.0], [0.1, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 1.2], [2.0, 2.0]]
    rows = [[float(k), 0.0, 0.5, 1.0, 1.0, 1.0, 0.0, *v] for k, v in enumerate(velocity)]
    entries = boxes_to_submission(_boxes(rows, names), np.eye(4), NUSCENES_CLASSES, "s")
    assert entries[0]["velocity"] == [0.0, 0.0] and all(np.isfinite(e["velocity"]).all() for e in entries)
    assert [e["attribute_name"] for e in entries] == [
        "vehicle.parked", "pedestrian.standing", "vehicle.moving", "cycle.without_rider", "", "",
        "pedestrian.moving", "cycle.with_rider"]
    assert all(e["detection_score"] == 1.0 for e in entries)
    assert attribute_of("truck", np.array([0.15, 0.0])) == "vehicle.parked"
    assert attribute_of("truck", np.array([0.25, 0.0])) == "vehicle.moving"


def test_frames_to_submission_and_atomic_write(tmp_path):
    frame = SimpleNamespace(token="a" * 32, lidar2global=LIDAR2GLOBAL, class_names=NUSCENES_CLASSES,
                            boxes=_boxes([[1.0, 0.0, 0.5, 4.0, 2.0, 1.5, 0.0, 0.0, 0.0]], ["truck"]))
    empty = SimpleNamespace(token="b" * 32, lidar2global=np.eye(4), class_names=NUSCENES_CLASSES, boxes=Boxes3D.empty())
    results = frames_to_submission([frame, empty])
    assert set(results) == {"a" * 32, "b" * 32} and results["b" * 32] == []
    assert results["a" * 32][0]["detection_name"] == "truck"
    shifted = _boxes([[2.0, 0.0, 0.5, 4.0, 2.0, 1.5, 0.0, 0.0, 0.0]], ["truck"])
    moved = frames_to_submission([frame], [shifted])["a" * 32][0]
    np.testing.assert_allclose(moved["translation"], [100.0, -48.0, 2.5])
    path = write_submission(results, tmp_path / "sub" / "results.json")
    content = json.loads(path.read_text())
    assert content["meta"]["use_lidar"] is True and content["meta"]["use_camera"] is False
    assert content["results"] == json.loads(json.dumps(results))
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]  # no temporary left


# --------------------------------------------------------------------------- DetectionEval

@pytest.fixture(scope="module")
def synthetic_val(tmp_path_factory):
    """A two-scene synthetic nuScenes set (scene 1 is val), its val frames and the devkit."""
    from nuscenes.nuscenes import NuScenes

    from perception.datasets import NuScenesDataset
    from perception.datasets.synthetic.create import Settings, create_dataset

    root = tmp_path_factory.mktemp("synthetic") / "data"
    create_dataset(Settings(out=root, scenes=2, seed=3, sensor_duration=2.0, with_images=False,
                            formats=("nuscenes",), val_fraction=0.5, workers=1))
    dataset = NuScenesDataset(ann_file="nuscenes_infos_val.pkl", data_root=str(root), with_cameras=False)
    frames = [dataset.get_frame(i) for i in range(len(dataset))]
    nusc = NuScenes("v1.0-synthetic", str(root), verbose=False)
    return SimpleNamespace(root=root, frames=frames, nusc=nusc, out=tmp_path_factory.mktemp("eval"))


def _predictions(frames, shift: float = 0.0, keep: float = 1.0, seed: int = 0) -> list[Boxes3D]:
    """Ground-truth boxes as predictions, ``shift`` metres along LiDAR x, a random ``keep``
    fraction of them, with distinct scores: with tied scores the devkit reports each class's
    TP errors of one box only (it interpolates them over the confidences)."""
    rng = np.random.default_rng(seed)
    out = []
    for frame in frames:
        boxes = frame.boxes
        data = boxes.data.copy()
        data[:, 0] += shift
        kept = np.flatnonzero(rng.uniform(size=len(boxes)) < keep)
        out.append(Boxes3D(data, boxes.labels, boxes.track_ids, boxes.num_lidar_pts,
                           rng.uniform(0.2, 1.0, len(boxes)))[kept])
    return out


def _score(data, predictions: list[Boxes3D], name: str) -> DetectionMetrics:
    path = write_submission(frames_to_submission(data.frames, predictions), data.out / f"{name}.json")
    return evaluate_nuscenes(data.nusc, path, "synthetic_val", data.out / name)


@pytest.mark.slow
def test_ground_truth_scores_perfect_and_degrades(synthetic_val):
    data = synthetic_val
    assert len(data.frames) == 4  # 2 s at 2 Hz
    perfect = _score(data, _predictions(data.frames), "gt")
    print("\nground truth:\n" + perfect.table())
    assert set(perfect.class_aps) == set(NUSCENES_CLASSES)
    assert all(ap == pytest.approx(1.0) for ap in perfect.class_aps.values()), perfect.class_aps
    assert perfect.mean_ap == pytest.approx(1.0)
    for name in ("trans_err", "scale_err", "orient_err", "vel_err"):
        assert perfect.tp_errors[name] < 1e-3, (name, perfect.tp_errors)
    # attributes: the submission guesses them from class and speed; the bus waiting at its
    # stop (``vehicle.stopped``, guessed ``vehicle.moving``), vehicles stopped at a light
    # (guessed ``vehicle.parked``) and agents starting or stopping disagree with that guess
    assert perfect.tp_errors["attr_err"] < 0.3
    assert perfect.nd_score >= 0.95

    worse = _score(data, _predictions(data.frames, shift=1.0), "shifted")
    print("shifted by 1 m:\n" + worse.table())
    assert all(worse.class_aps[name] < 0.9 for name in NUSCENES_CLASSES), worse.class_aps
    assert worse.tp_errors["trans_err"] > 0.5 and worse.nd_score < perfect.nd_score - 0.1

    kept = _predictions(data.frames, keep=0.7, seed=1)
    assert 0.55 < sum(map(len, kept)) / sum(len(f.boxes) for f in data.frames) < 0.85
    fewer = _score(data, kept, "dropped")
    print("30% dropped:\n" + fewer.table())
    assert fewer.mean_ap < perfect.mean_ap - 0.1 and fewer.nd_score < perfect.nd_score
    assert max(fewer.class_aps.values()) <= 1.0 + 1e-9 and fewer.tp_errors["trans_err"] < 1e-3  # devkit float sums
