"""AV2 detection evaluation with av2's own evaluator on a generated synthetic AV2 log (val: one
log, ten annotated sweeps, ten categories present): the stack's boxes convert back to the rows
of ``annotations.feather``; ground truth as predictions scores AP 1 for the present categories;
predictions moved 1.5 m / 3 m (each in the direction farthest from the other boxes of its
category, so only its own box can match) score AP 0.5 / 0.25 (thresholds 0.5/1/2/4 m)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from mmengine.evaluator import Evaluator
from mmengine.registry import DefaultScope

from perception.evaluation.av2_detection import (AV2DetectionMetric, boxes_to_av2_dataframe, load_av2_ground_truth,
                                                 predictions_to_av2_dataframe, sweep_of)
from perception.evaluation.nuscenes_metric import read_prediction
from perception.structures import Boxes3D, make_transform, yaw_matrix
from perception.structures.conventions import NUSCENES_CLASSES

LOG = "c54af9cc-3753-2e8d-231b-574a65c32e67"
DIRECTIONS = np.arange(72) * np.pi / 36


@pytest.fixture(scope="module")
def av2_val(tiny_synthetic_root, tmp_path_factory):
    """Val frames and ground truth of the synthetic world as AV2 sensor logs: the shared tiny
    world's when it is written with AV2 logs too, else the same world generated here."""
    from perception.datasets import AV2SensorDataset
    from perception.datasets.synthetic.create import Settings, create_dataset

    root = tiny_synthetic_root
    if not (root / "av2" / "sensor" / "av2_infos_val.pkl").is_file():
        root = create_dataset(Settings(out=tmp_path_factory.mktemp("synthetic_av2") / "data", scenes=2, seed=3,
                                       sensor_duration=1.0, with_images=False, formats=("av2",),
                                       val_fraction=0.5, workers=1))
    sensor = root / "av2" / "sensor"
    dataset = AV2SensorDataset(ann_file="av2_infos_val.pkl", data_root=str(sensor))
    frames = [dataset.get_frame(i) for i in range(len(dataset))]
    gts = load_av2_ground_truth(sensor, "val")
    return SimpleNamespace(sensor=sensor, frames=frames, gts=gts, present=tuple(sorted(set(gts["category"]))))


def _sample(frame, pred: Boxes3D) -> SimpleNamespace:
    return SimpleNamespace(token=frame.token, lidar2global=frame.lidar2global, class_names=frame.class_names,
                           pred=pred, metainfo={})


def _scored(boxes: Boxes3D) -> Boxes3D:
    return Boxes3D(boxes.data.copy(), boxes.labels.copy(), scores=np.linspace(1.0, 0.1, len(boxes)))


def _isolated_shift(boxes: Boxes3D, distance: float) -> Boxes3D:
    """Each box moved ``distance`` m in the ego plane, in the direction (of 72) farthest from the
    other boxes of its category; that clearance must exceed the shift (plus 0.1 m)."""
    steps = distance * np.stack([np.cos(DIRECTIONS), np.sin(DIRECTIONS), 0 * DIRECTIONS], axis=1)
    data = boxes.data.copy()
    for index in range(len(boxes)):
        others = boxes.centers[(boxes.labels == boxes.labels[index]) & (np.arange(len(boxes)) != index)]
        moved = boxes.centers[index] + steps
        clearance = np.linalg.norm(moved[:, None] - others[None], axis=2).min(axis=1, initial=np.inf)
        best = int(np.argmax(clearance))
        assert clearance[best] > distance + 0.1, index
        data[index, :3] = moved[best]
    return Boxes3D(data, boxes.labels.copy(), scores=np.linspace(1.0, 0.1, len(data)))


def _metric(data, **kwargs) -> AV2DetectionMetric:
    return AV2DetectionMetric(data_root=str(data.sensor), split="val", n_jobs=1, **kwargs)


def _evaluate(metric: AV2DetectionMetric, samples: list) -> dict[str, float]:
    metric.process({}, samples)
    return metric.evaluate(len(samples))


def test_boxes_to_av2_dataframe_layout():
    boxes = Boxes3D([[1.0, 2.0, 0.5, 4.0, 2.0, 1.5, np.pi / 2, 3.0, 0.0], [0, 0, 0, 1, 1, 1, -np.pi, 0, 0]],
                    [0, 1], scores=[0.9, 0.3])
    table = boxes_to_av2_dataframe(boxes, ("REGULAR_VEHICLE", "PEDESTRIAN"), LOG, 1616459265692040000)
    assert list(table.columns) == ["tx_m", "ty_m", "tz_m", "length_m", "width_m", "height_m", "qw", "qx", "qy",
                                   "qz", "score", "log_id", "timestamp_ns", "category"]
    np.testing.assert_allclose(table.iloc[0, :11].to_numpy(float),
                               [1, 2, 0.5, 4, 2, 1.5, np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4), 0.9], atol=1e-12)
    assert abs(table.loc[1, "qz"]) == pytest.approx(1.0) and table.loc[1, "qw"] == pytest.approx(0.0, abs=1e-12)
    assert table["timestamp_ns"].dtype == np.int64 and table.loc[0, "timestamp_ns"] == 1616459265692040000
    assert table["category"].tolist() == ["REGULAR_VEHICLE", "PEDESTRIAN"] and set(table["log_id"]) == {LOG}
    moved = boxes_to_av2_dataframe(boxes, ("REGULAR_VEHICLE", "PEDESTRIAN"), LOG, 1,
                                   lidar2ego=make_transform(yaw_matrix(np.pi / 2), [1.0, 0.0, 2.0]))
    np.testing.assert_allclose(moved.loc[0, ["tx_m", "ty_m", "tz_m", "qw", "qz"]].to_numpy(float),
                               [-1.0, 1.0, 2.5, 0.0, 1.0], atol=1e-12)  # yaw pi/2 + pi/2 = pi
    empty = boxes_to_av2_dataframe(Boxes3D.empty(), (), LOG, 1)
    assert len(empty) == 0 and list(empty.columns) == list(table.columns)


def test_sweep_of_token_forms_and_class_check():
    def record(token, metainfo=None, names=("PEDESTRIAN",)):
        return read_prediction(SimpleNamespace(token=token, lidar2global=np.eye(4), class_names=names,
                                               pred=Boxes3D(np.ones((1, 9)), [0], scores=[1.0]),
                                               metainfo=metainfo or {}))
    assert sweep_of(record(f"{LOG}/315969904359876000")) == (LOG, 315969904359876000)
    assert sweep_of(record(f"{LOG}_315969904359876000")) == (LOG, 315969904359876000)
    assert sweep_of(record("x", {"log_id": "L", "timestamp_ns": 5})) == ("L", 5)
    with pytest.raises(ValueError, match="not '<log_id>/<timestamp_ns>'"):
        sweep_of(record("scene-0001"))
    with pytest.raises(ValueError, match=r"\['car'\] are not AV2 categories"):
        predictions_to_av2_dataframe([record(f"{LOG}_1", names=NUSCENES_CLASSES)])
    with pytest.raises(ValueError, match="output_dir"):
        AV2DetectionMetric(data_root="x", format_only=True)


def test_frames_convert_back_to_annotation_rows(av2_val):
    assert len(av2_val.frames) == 10 and len(av2_val.present) == 10
    table = predictions_to_av2_dataframe([read_prediction(_sample(f, f.boxes)) for f in av2_val.frames])
    key = ["log_id", "timestamp_ns", "category", "tx_m", "ty_m"]
    ours = table.sort_values(key).reset_index(drop=True)
    truth = av2_val.gts.sort_values(key).reset_index(drop=True)
    assert len(ours) == len(truth) == 383  # boxes with LiDAR returns in the tiny world
    assert (ours["log_id"].astype(str) == truth["log_id"].astype(str)).all()
    assert (ours["timestamp_ns"] == truth["timestamp_ns"]).all()
    assert (ours["category"].astype(str) == truth["category"].astype(str)).all()
    cuboid = ["tx_m", "ty_m", "tz_m", "length_m", "width_m", "height_m"]
    np.testing.assert_allclose(ours[cuboid].to_numpy(float), truth[cuboid].to_numpy(float), atol=1e-9)
    dots = np.abs((ours[["qw", "qx", "qy", "qz"]].to_numpy(float) * truth[["qw", "qx", "qy", "qz"]].to_numpy(float))
                  .sum(axis=1))
    np.testing.assert_allclose(dots, 1.0, atol=1e-9)  # same rotation (q and -q alike)


@pytest.mark.slow
def test_perfect_predictions_through_mmengine_evaluator(av2_val, tmp_path):
    with DefaultScope.overwrite_default_scope("perception"):
        evaluator = Evaluator(dict(type="AV2DetectionMetric", data_root=str(av2_val.sensor), n_jobs=1,
                                   output_dir=str(tmp_path)))
    samples = [_sample(f, _scored(f.boxes)) for f in av2_val.frames]
    evaluator.process(data_samples=samples[:5], data_batch={})
    evaluator.process(data_samples=samples[5:], data_batch={})
    metrics = evaluator.evaluate(len(samples))
    for category in av2_val.present:  # official setting: ROI pruning, all 26 categories
        assert metrics[f"av2/AP_{category}"] == 1.0 and metrics[f"av2/CDS_{category}"] == 1.0, category
        assert metrics[f"av2/ATE_{category}"] == 0.0 and metrics[f"av2/AOE_{category}"] == 0.0
    assert metrics["av2/AP_DOG"] == 0.0 and metrics["av2/ATE_DOG"] == 2.0  # absent: av2's defaults
    assert metrics["av2/mAP"] == pytest.approx(round(10 / 26, 3))
    written = pd.read_feather(tmp_path / "detections_av2.feather")
    assert len(written) == 383 and written["score"].between(0.1, 1.0).all()


@pytest.mark.slow
def test_subset_of_sweeps_is_evaluated_on_those_sweeps(av2_val):
    metric = _metric(av2_val, categories=av2_val.present)
    metrics = _evaluate(metric, [_sample(f, _scored(f.boxes)) for f in av2_val.frames[::3]])
    assert metrics["av2/mAP"] == 1.0 and metrics["av2/CDS"] == 1.0  # unseen sweeps' boxes not missed
    assert set(k for k in metrics if k.startswith("av2/AP_")) == {f"av2/AP_{c}" for c in av2_val.present}


@pytest.mark.slow
@pytest.mark.parametrize("distance, hits", [(1.5, 2), (3.0, 1)])
def test_shifted_predictions_score_the_thresholds_they_pass(av2_val, distance, hits):
    metric = _metric(av2_val, categories=av2_val.present, eval_only_roi_instances=False)
    metrics = _evaluate(metric, [_sample(f, _isolated_shift(f.boxes, distance)) for f in av2_val.frames])
    expected = hits / 4
    for category in av2_val.present:
        assert metrics[f"av2/AP_{category}"] == pytest.approx(expected), category
    if distance < 2.0:  # TP errors at av2's 2 m threshold: 1.5 m off; CDS = AP * mean(1 - 1.5 / 2, 1, 1)
        assert metrics["av2/mATE"] == pytest.approx(distance) and metrics["av2/mASE"] == 0.0
        assert metrics["av2/CDS"] == pytest.approx(round(expected * (1 - distance / 2 + 2) / 3, 3))
    else:  # nothing within 2 m: errors at their bounds and CDS 0
        assert metrics["av2/mATE"] == 2.0 and metrics["av2/mASE"] == 1.0
        assert metrics["av2/mAOE"] == pytest.approx(np.pi, abs=1e-3) and metrics["av2/CDS"] == 0.0


@pytest.mark.slow
def test_empty_predictions_score_zero(av2_val):
    metrics = _evaluate(_metric(av2_val), [_sample(f, Boxes3D.empty()) for f in av2_val.frames])
    assert metrics["av2/mAP"] == 0.0 and metrics["av2/CDS"] == 0.0
    assert all(metrics[f"av2/AP_{c}"] == 0.0 for c in av2_val.present)


@pytest.mark.slow
@pytest.mark.real_data
def test_real_log_annotations_as_predictions_score_one(av2_sensor_log_dir):
    """A real AV2 log (real map ROI, 30 categories, boxes without LiDAR points): its annotated
    boxes with points, as predictions on every 20th annotated sweep, score AP 1 per category present."""
    from perception.datasets.av2.categories import AV2_CLASSES
    from perception.structures import quaternion_to_matrix, yaw_of_rotation

    gts = load_av2_ground_truth(av2_sensor_log_dir.parent.parent, "val")
    gts = gts[gts["category"].isin(AV2_CLASSES) & (gts["num_interior_pts"] > 0)]  # av2 ignores boxes without points
    samples, present = [], set()
    for timestamp_ns in sorted(set(gts["timestamp_ns"]))[::20]:
        rows = gts[gts["timestamp_ns"] == timestamp_ns]
        yaws = [yaw_of_rotation(quaternion_to_matrix(q)) for q in rows[["qw", "qx", "qy", "qz"]].to_numpy(float)]
        data = np.concatenate([rows[["tx_m", "ty_m", "tz_m", "length_m", "width_m", "height_m"]].to_numpy(float),
                               np.asarray(yaws)[:, None], np.zeros((len(rows), 2))], axis=1)
        boxes = Boxes3D(data, [AV2_CLASSES.index(c) for c in rows["category"]])
        present.update(rows["category"])
        samples.append(SimpleNamespace(token=f"{av2_sensor_log_dir.name}/{timestamp_ns}", lidar2global=np.eye(4),
                                       class_names=AV2_CLASSES, pred=_scored(boxes), metainfo={}))
    assert len(samples) == 8 and len(present) >= 8
    metric = AV2DetectionMetric(data_root=str(av2_sensor_log_dir.parent.parent), n_jobs=1)
    metrics = _evaluate(metric, samples)
    assert {c for c in AV2_CLASSES if metrics[f"av2/AP_{c}"] > 0} == present
    assert all(metrics[f"av2/AP_{c}"] == 1.0 and metrics[f"av2/ATE_{c}"] == 0.0 for c in present)
    assert metrics["av2/mAP"] == pytest.approx(round(len(present) / 26, 3))
