"""NuScenesMetric on the generated synthetic val split (1 scene, 2 keyframes, all ten classes):
ground truth as predictions scores AP 1; predictions moved by 1.5 m / 3 m, each in a
direction that keeps it farther (by 0.1 m) from every other box of its class than from its
own and on the same side of its class range, find nothing at the distance thresholds below
the shift and exactly their own box at those above, so precision is 1 at full recall there
and the devkit's AP is exactly (thresholds of 0.5/1/2/4 m above the shift) / 4: 0.5 and 0.25."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from mmengine.evaluator import Evaluator
from mmengine.registry import DefaultScope

from perception.evaluation.nuscenes_metric import NuScenesMetric, read_prediction
from perception.structures import Boxes3D
from perception.structures.conventions import NUSCENES_CLASSES

CLEARANCE_MARGIN = 0.1
"""A box moved by ``d`` stays ``d + CLEARANCE_MARGIN`` from every other box of its class, so its
own box is the nearest one and no other box is within a threshold its own box misses."""
DIRECTIONS = np.arange(72) * np.pi / 36


@pytest.fixture(scope="module")
def val(tiny_synthetic_root):
    """The val frames of the tiny synthetic world and its root."""
    from perception.datasets import NuScenesDataset

    dataset = NuScenesDataset(ann_file="nuscenes_infos_val.pkl", data_root=str(tiny_synthetic_root),
                              with_cameras=False)
    frames = [dataset.get_frame(i) for i in range(len(dataset))]
    return SimpleNamespace(root=tiny_synthetic_root, frames=frames)


def _metric(root, **kwargs) -> NuScenesMetric:
    return NuScenesMetric(data_root=str(root), version="v1.0-synthetic", eval_set="synthetic_val", **kwargs)


def _sample(frame, pred: Boxes3D) -> SimpleNamespace:
    """A DetSample-like prediction (duck-typed: token, lidar2global, class_names, pred)."""
    return SimpleNamespace(token=frame.token, lidar2global=frame.lidar2global, class_names=frame.class_names,
                           pred=pred, metainfo={})


def _scored(boxes: Boxes3D, seed: int) -> Boxes3D:
    """Ground truth as predictions with distinct scores."""
    scores = np.random.default_rng(seed).permutation(len(boxes)) / max(len(boxes), 1) * 0.8 + 0.2
    return Boxes3D(boxes.data.copy(), boxes.labels.copy(), scores=scores)


def _isolated_shift(frame, distance: float) -> Boxes3D:
    """Each box moved ``distance`` m in the plane, in the direction (of 72) farthest from the other
    boxes of its class that keeps it on its side of the class range (the devkit drops boxes
    beyond it); that clearance must exceed ``distance + CLEARANCE_MARGIN``."""
    from nuscenes.eval.common.config import config_factory

    class_range = config_factory("detection_cvpr_2019").class_range
    world = frame.boxes.transform(frame.lidar2global)
    ego_xy = frame.ego2global[:2, 3]
    steps = distance * np.stack([np.cos(DIRECTIONS), np.sin(DIRECTIONS)], axis=1)
    data = frame.boxes.data.copy()
    for index in range(len(world)):
        centre = world.centers[index, :2]
        limit = class_range[frame.class_names[world.labels[index]]]
        others = world.centers[(world.labels == world.labels[index]) & (np.arange(len(world)) != index), :2]
        moved = centre + steps
        ego_distance = np.linalg.norm(moved - ego_xy, axis=1)
        same_side = ((ego_distance < limit) == (np.linalg.norm(centre - ego_xy) < limit)) \
            & (np.abs(ego_distance - limit) > 0.05)
        clearance = np.linalg.norm(moved[:, None] - others[None], axis=2).min(axis=1, initial=np.inf)
        best = int(np.argmax(np.where(same_side, clearance, -1.0)))
        assert same_side[best] and clearance[best] > distance + CLEARANCE_MARGIN, (frame.token, index)
        data[index, :3] += frame.lidar2global[:3, :3].T @ np.array([*steps[best], 0.0])
    return Boxes3D(data, frame.boxes.labels.copy(), scores=np.linspace(1.0, 0.2, len(data)))


def _evaluate(metric: NuScenesMetric, samples: list) -> dict[str, float]:
    metric.process({}, samples)
    return metric.evaluate(len(samples))


def test_read_prediction_copies_and_validates():
    pred = Boxes3D(np.ones((2, 9)), [0, 9], scores=[0.5, 0.4])
    sample = SimpleNamespace(token="t", lidar2global=np.eye(4).tolist(), class_names=list(NUSCENES_CLASSES),
                             pred=pred, metainfo={"log_id": "x"})
    record = read_prediction(sample)
    pred.data[:] = 7.0  # the record holds a copy
    assert record.boxes.data[0, 0] == 1.0 and record.class_names == NUSCENES_CLASSES
    assert record.lidar2global.dtype == np.float64 and record.metainfo == {"log_id": "x"}
    as_dict = read_prediction({"token": "d", "lidar2global": np.eye(4), "class_names": NUSCENES_CLASSES,
                               "pred": Boxes3D.empty()})
    assert as_dict.token == "d" and len(as_dict.boxes) == 0
    with pytest.raises(ValueError, match="sample t: pred is None"):
        read_prediction(SimpleNamespace(**{**vars(sample), "pred": None}))
    with pytest.raises(ValueError, match="do not index"):
        read_prediction(SimpleNamespace(**{**vars(sample), "class_names": ("car",)}))
    with pytest.raises(ValueError, match="finite 4x4"):
        read_prediction(SimpleNamespace(**{**vars(sample), "lidar2global": np.eye(3)}))
    with pytest.raises(ValueError, match="jsonfile_prefix"):
        NuScenesMetric(data_root="x", format_only=True)


def test_submission_keeps_the_devkits_500_best_boxes_per_sample():
    rows = np.zeros((501, 9))
    rows[:, 0] = np.arange(501)
    rows[:, 3:6] = 1.0
    scores = np.linspace(0.0, 1.0, 501)[::-1]  # the box at x = 500 has the lowest score
    sample = SimpleNamespace(token="t", lidar2global=np.eye(4), class_names=NUSCENES_CLASSES,
                             pred=Boxes3D(rows, np.zeros(501, int), scores=scores))
    submission = _metric("unused").build_submission({"t": read_prediction(sample)}, ["t", "u"])
    assert len(submission["t"]) == 500 and submission["u"] == []
    assert max(entry["translation"][0] for entry in submission["t"]) == 499.0


def test_perfect_predictions_through_mmengine_evaluator(val, tmp_path):
    assert len(val.frames) == 2
    with DefaultScope.overwrite_default_scope("perception"):
        evaluator = Evaluator(dict(type="NuScenesMetric", data_root=str(val.root), version="v1.0-synthetic",
                                   eval_set="synthetic_val", jsonfile_prefix=str(tmp_path)))
    samples = [_sample(frame, _scored(frame.boxes, seed)) for seed, frame in enumerate(val.frames)]
    evaluator.process(data_samples=samples[:1], data_batch={})
    evaluator.process(data_samples=samples[1:], data_batch={})
    metrics = evaluator.evaluate(len(samples))
    assert metrics["nuscenes/mAP"] == pytest.approx(1.0)
    assert all(metrics[f"nuscenes/AP_{name}"] == pytest.approx(1.0) for name in NUSCENES_CLASSES), metrics
    for key in ("mATE", "mASE", "mAOE", "mAVE"):
        assert metrics[f"nuscenes/{key}"] < 1e-3, (key, metrics)
    assert metrics["nuscenes/mAAE"] < 0.3  # attributes are guessed from class and speed
    assert metrics["nuscenes/NDS"] >= 0.95
    submission = json.loads((tmp_path / "results_nusc.json").read_text())
    assert set(submission["results"]) == {f.token for f in val.frames}
    assert sum(map(len, submission["results"].values())) == sum(len(f.boxes) for f in val.frames)
    saved = json.loads((tmp_path / "metrics_summary.json").read_text())
    assert saved["mAP"] == metrics["nuscenes/mAP"] and saved["NDS"] == metrics["nuscenes/NDS"]


@pytest.mark.parametrize("distance, hits", [(1.5, 2), (3.0, 1)])
def test_shifted_predictions_score_the_thresholds_they_pass(val, distance, hits):
    metrics = _evaluate(_metric(val.root), [_sample(f, _isolated_shift(f, distance)) for f in val.frames])
    expected = hits / 4  # thresholds 0.5, 1, 2, 4 m; every box is found at the ones above the shift
    for name in NUSCENES_CLASSES:
        assert metrics[f"nuscenes/AP_{name}"] == pytest.approx(expected, abs=1e-9), name
    assert metrics["nuscenes/mAP"] == pytest.approx(expected, abs=1e-9)
    if distance < 2.0:  # TP errors come from the 2 m matches: 1.5 m off, sizes and yaws exact
        assert metrics["nuscenes/mATE"] == pytest.approx(distance, abs=1e-6)
        assert metrics["nuscenes/mASE"] < 1e-6 and metrics["nuscenes/mAOE"] < 1e-6
    else:  # no match at 2 m: every TP error is 1 and NDS = 5 * mAP / 10
        assert all(metrics[f"nuscenes/{k}"] == 1.0 for k in ("mATE", "mASE", "mAOE", "mAVE", "mAAE"))
        assert metrics["nuscenes/NDS"] == pytest.approx(expected / 2, abs=1e-9)


def test_empty_predictions_score_zero(val):
    metrics = _evaluate(_metric(val.root), [_sample(f, Boxes3D.empty()) for f in val.frames])
    assert metrics["nuscenes/mAP"] == 0.0 and metrics["nuscenes/NDS"] == 0.0
    assert all(metrics[f"nuscenes/AP_{name}"] == 0.0 for name in NUSCENES_CLASSES)


def test_subset_of_samples_is_evaluated_on_those_samples(val, tmp_path):
    first, second = val.frames
    metrics = _evaluate(_metric(val.root, jsonfile_prefix=str(tmp_path)), [_sample(first, _scored(first.boxes, 0))])
    assert metrics["nuscenes/mAP"] == pytest.approx(1.0)  # the unseen sample's boxes are not counted as missed
    results = json.loads((tmp_path / "results_nusc.json").read_text())["results"]
    assert results[second.token] == [] and len(results[first.token]) == len(first.boxes)
    # the same prediction and an empty one for the second sample: the second's boxes are missed
    both = _evaluate(_metric(val.root), [_sample(first, _scored(first.boxes, 0)), _sample(second, Boxes3D.empty())])
    assert 0.2 < both["nuscenes/mAP"] < 0.9


def test_format_only_and_bad_input(val, tmp_path):
    metric = _metric(val.root, jsonfile_prefix=str(tmp_path / "sub"), format_only=True)
    assert _evaluate(metric, [_sample(f, _scored(f.boxes, 1)) for f in val.frames]) == {}
    assert (tmp_path / "sub" / "results_nusc.json").is_file() and not (tmp_path / "sub" / "eval").exists()
    stranger = SimpleNamespace(token="0" * 32, lidar2global=np.eye(4), class_names=NUSCENES_CLASSES,
                               pred=Boxes3D.empty())
    with pytest.raises(ValueError, match="not in eval_set 'synthetic_val'"):
        _metric(val.root).compute_metrics([read_prediction(stranger)])
    wrong_class = _sample(val.frames[0], Boxes3D(np.ones((1, 9)), [0], scores=[1.0]))
    wrong_class.class_names = ("REGULAR_VEHICLE",)
    with pytest.raises(ValueError, match="not nuScenes detection classes"):
        _metric(val.root).compute_metrics([read_prediction(wrong_class)])
    with pytest.raises(ValueError, match="no predictions"):
        _metric(val.root).compute_metrics([])
    with pytest.raises(FileNotFoundError, match="v1.0-trainval"):
        NuScenesMetric(data_root=str(val.root)).compute_metrics([read_prediction(stranger)])
