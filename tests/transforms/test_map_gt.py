"""``LoadVectorMapGT`` (perception/transforms/map_gt.py): LiDAR frame, augmentations, packing, datasets."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perception.datasets.vector_map_gt import VectorMapGTConfig, build_map_instances
from perception.evaluation.map_ap import evaluate_map
from perception.registry import TRANSFORMS
from perception.structures import Frame, MapElement, MapInstances, invert_transform, make_transform, yaw_matrix
from perception.transforms import GlobalRotScaleTrans, PackDetInputs, RandomFlip3D
from perception.transforms.map_gt import LoadVectorMapGT, MapGTStaleError, check_map_gt_current

LIDAR2GLOBAL = make_transform(yaw_matrix(0.7), np.array([500.0, -200.0, 10.0]))
RANGE = (-15.0, -30.0, 15.0, 30.0)


def to_world(local_xy: np.ndarray) -> np.ndarray:
    xyz = np.c_[local_xy, np.zeros(len(local_xy))]
    return xyz @ LIDAR2GLOBAL[:3, :3].T + LIDAR2GLOBAL[:3, 3]


def make_frame() -> Frame:
    """Elements well inside the range (in the LiDAR frame), and LiDAR points on the divider's vertices."""
    divider = np.array([[-4.0, -6.0], [-3.0, 2.0], [-3.5, 9.0]])
    crossing = np.array([[2.0, 5.0], [6.0, 5.0], [6.0, 8.0], [2.0, 8.0]])
    area = np.array([[-6.0, -10.0], [7.0, -10.0], [7.0, 12.0], [-6.0, 12.0]])
    elements = [MapElement("divider", to_world(divider)), MapElement("ped_crossing", to_world(crossing), closed=True),
                MapElement("drivable_area", to_world(area), closed=True)]
    points = np.c_[divider, np.zeros(3), np.ones(3)].astype(np.float32)
    return Frame(token="t0", timestamp=1.0, dataset="test", points=points, point_features=("x", "y", "z", "intensity"),
                 lidar2ego=np.eye(4), ego2global=LIDAR2GLOBAL, class_names=("car",), map_elements=elements)


def test_ground_truth_in_the_lidar_frame() -> None:
    step = TRANSFORMS.build(dict(type="LoadVectorMapGT", pc_range=RANGE, num_points=10))
    gt = step({"frame": make_frame()})["gt_map"]
    assert np.bincount(gt.labels, minlength=3).tolist() == [1, 1, 1] and gt.points.shape == (3, 10, 2)
    divider = gt.points[gt.labels == 0][0]
    np.testing.assert_allclose(divider[[0, -1]], [[-4.0, -6.0], [-3.5, 9.0]], atol=1e-4)
    crossing = gt.points[gt.labels == 1][0]
    np.testing.assert_allclose([crossing[:, 0].min(), crossing[:, 0].max(), crossing[:, 1].min(), crossing[:, 1].max()],
                               [2.0, 6.0, 5.0, 8.0], atol=1e-4)
    boundary = gt.points[gt.labels == 2][0]  # the drivable rectangle's outline, whole inside the range
    assert np.abs(boundary[:, 0]).max() == pytest.approx(7.0, abs=1e-4) and boundary[:, 1].min() == pytest.approx(-10.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ground_truth_follows_rotation_scale_and_flips(seed: int) -> None:
    np.random.seed(seed)
    plain = LoadVectorMapGT(pc_range=RANGE, num_points=10)({"frame": make_frame()})["gt_map"]
    results = RandomFlip3D(0.5, 0.5)(GlobalRotScaleTrans((-3.1, 3.1), (0.9, 1.1), 0.5)({"frame": make_frame()}))
    results = LoadVectorMapGT(pc_range=RANGE, num_points=10)(results)
    aug = results["aug"]["lidar_aug_matrix"]
    assert not np.allclose(aug, np.eye(4))
    gt = results["gt_map"]
    # arc-length resampling commutes with similarity maps: the augmented GT is the plain GT mapped
    for label in range(3):
        moved = plain.points[plain.labels == label] @ aug[:2, :2].T + aug[:2, 3]
        got = gt.points[gt.labels == label]
        if label == 0:
            np.testing.assert_allclose(got, moved, atol=1e-3)
        else:  # rings: same point set up to the start vertex and direction (a flip reverses them)
            distance = np.linalg.norm(got[0][:, None] - moved[0][None], axis=2)
            assert distance.min(axis=1).max() < 0.7 and abs(got[0].mean(0) - moved[0].mean(0)).max() < 0.2
    # the LiDAR points that sat on the divider's vertices still do
    divider = gt.points[gt.labels == 0][0]
    ends = results["frame"].points[[0, 2], :2]
    np.testing.assert_allclose(divider[[0, -1]], ends, atol=1e-3)
    check_map_gt_current(results)
    stale = GlobalRotScaleTrans((0.5, 0.5), (1.0, 1.0))(results)
    with pytest.raises(MapGTStaleError, match="after GlobalRotScaleTrans"):
        check_map_gt_current(stale)


def test_range_clipping_in_the_augmented_frame() -> None:
    frame = make_frame()
    frame.map_elements.append(MapElement("divider", to_world(np.array([[10.0, -50.0], [10.0, 50.0]]))))
    np.random.seed(0)
    results = GlobalRotScaleTrans((np.pi / 2, np.pi / 2), (1.0, 1.0))({"frame": frame})  # x_aug = -y, y_aug = x
    gt = LoadVectorMapGT(pc_range=RANGE)(results)["gt_map"]
    dividers = gt.points[gt.labels == 0]
    long_line = dividers[np.ptp(dividers[:, :, 0], axis=1).argmax()]  # now along x at y = 10: clipped to |x| <= 15
    np.testing.assert_allclose(long_line[:, 1], 10.0, atol=1e-4)
    np.testing.assert_allclose(sorted(long_line[[0, -1], 0]), [-15.0, 15.0], atol=1e-4)


def test_packed_into_the_sample() -> None:
    results = LoadVectorMapGT(pc_range=RANGE)({"frame": make_frame(), "sample_idx": 0})
    packed = PackDetInputs()(results)
    assert packed["data_samples"].gt_map is results["gt_map"] and len(packed["data_samples"].gt_map) == 3


def test_options_and_errors() -> None:
    step = LoadVectorMapGT(pc_range=RANGE, class_names=("boundary",), boundary_source="lines", min_length=0.5)
    assert step.config == VectorMapGTConfig(pc_range=RANGE, class_names=("boundary",), boundary_source="lines",
                                            min_length=0.5)
    assert len(step({"frame": make_frame()})["gt_map"]) == 0  # no boundary lines, drivable area ignored
    frame = make_frame()
    frame.map_elements = []
    with pytest.raises(ValueError, match="with_map=True"):
        LoadVectorMapGT()({"frame": frame})
    assert len(LoadVectorMapGT(require_map=False)({"frame": frame})["gt_map"]) == 0
    with pytest.raises(KeyError, match="frame"):
        LoadVectorMapGT()({"points": np.zeros((1, 3))})
    with pytest.raises(ValueError, match="pc_range"):
        LoadVectorMapGT(pc_range=(0, 0, 0, 0))


@pytest.mark.slow
def test_synthetic_datasets_end_to_end(tiny_synthetic_root: Path) -> None:
    """Both on-disk formats of the generated world give GT of all three classes through the pipeline,
    and the nuScenes and AV2 loaders agree on the world."""
    from perception.datasets import AV2SensorDataset, NuScenesDataset

    nusc = NuScenesDataset(ann_file="nuscenes_infos_train.pkl", data_root=str(tiny_synthetic_root),
                           with_cameras=False, with_map=True)
    pipeline = [GlobalRotScaleTrans((-0.5, 0.5), (0.95, 1.05)), RandomFlip3D(0.5, 0.5),
                LoadVectorMapGT(pc_range=RANGE), PackDetInputs()]
    np.random.seed(0)
    counts = np.zeros(3, int)
    for index in range(0, len(nusc), max(1, len(nusc) // 4)):
        results = {"frame": nusc.get_frame(index), "sample_idx": index}
        for step in pipeline:
            results = step(results)
        gt = results["data_samples"].gt_map
        assert np.all(np.abs(gt.points[..., 0]) <= 15 + 1e-3) and np.all(np.abs(gt.points[..., 1]) <= 30 + 1e-3)
        counts += np.bincount(gt.labels, minlength=3)
    assert (counts > 0).all(), counts
    sensor = tiny_synthetic_root / "av2" / "sensor"
    if not (sensor / "av2_infos_train.pkl").is_file():
        pytest.skip("the shared tiny world has no AV2 logs")
    # the AV2 writer's drivable areas / crossings and the nuScenes writer's road segments / crossings
    # give the same boundaries and crossings at the same instant (dividers differ: see the report)
    av2 = AV2SensorDataset(ann_file="av2_infos_train.pkl", data_root=str(sensor), with_map=True)
    by_time = {round(float(av2.get_data_info(i)["timestamp"]), 3): i for i in range(len(av2))}
    config = VectorMapGTConfig(pc_range=(-30.0, -15.0, 30.0, 15.0))
    preds, gts = [], []
    for index in range(0, len(nusc), max(1, len(nusc) // 3)):
        match = by_time.get(round(float(nusc.get_data_info(index)["timestamp"]), 3))
        if match is None:
            continue
        frame = av2.get_frame(match)
        world2lidar = invert_transform(frame.lidar2global)
        gts.append(LoadVectorMapGT(pc_range=config.pc_range)({"frame": frame})["gt_map"])
        other = build_map_instances(nusc.get_frame(index).map_elements, world2lidar, config)
        preds.append(MapInstances(other.points, other.labels, other.class_names, other.closed, np.ones(len(other))))
    assert gts, "no instant in both formats"
    result = evaluate_map(preds, gts)
    assert result.num_gt["boundary"] > 0 and result.num_gt["ped_crossing"] > 0
    assert result.class_ap["standard"]["boundary"] > 0.5 and result.class_ap["standard"]["ped_crossing"] > 0.5, result
