"""ObjectSample: non-colliding objects pasted with their points, scene points inside removed."""
from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest
from det_frames import FEATURES, make_frame

from perception.structures import Boxes3D, FrameError, NUSCENES_CLASSES, yaw_matrix
from perception.transforms.object_sample import ObjectSample, bev_collisions

FREE_A = [20.0, -5.0, -1.0, 4.0, 1.8, 1.5, 0.1, 1.0, 0.5]
FREE_B = [-5.0, 25.0, -1.0, 4.2, 1.9, 1.6, -2.0, np.nan, np.nan]
NEAR_A = [20.5, -4.0, -1.0, 4.0, 1.8, 1.5, 0.4, 0.0, 0.0]  # overlaps FREE_A
ON_CAR = [11.0, 5.5, -1.0, 4.0, 1.8, 1.5, 1.2, 0.0, 0.0]  # overlaps the frame's car at (10, 5)
PED = [30.0, 30.0, -1.0, 0.7, 0.6, 1.8, 0.0, 0.5, 0.0]


def write_db(root: Path, objects: list[tuple[str, list[float], int]], features=FEATURES) -> Path:
    """A database of ``(class, box, number of points)``; point ids (column 3) start at 10000."""
    rng = np.random.default_rng(0)
    (root / "db").mkdir(parents=True, exist_ok=True)
    dbinfos: dict[str, list] = {}
    next_id = 10000
    for index, (name, box, count) in enumerate(objects):
        box = np.asarray(box, dtype=np.float64)
        local = rng.uniform(-0.4, 0.4, size=(count, 3)) * box[3:6] @ yaw_matrix(box[6]).T
        points = np.zeros((count, len(features)), np.float32)
        points[:, :3] = local
        points[:, 3] = np.arange(next_id, next_id + count)
        next_id += count
        points.tofile(root / "db" / f"{index}.bin")
        dbinfos.setdefault(name, []).append({"name": name, "path": f"db/{index}.bin", "box3d_lidar": box,
                                             "num_points_in_gt": count, "difficulty": 0, "group_id": index,
                                             "track_id": f"obj{index}"})
    path = root / "test_dbinfos_train.pkl"
    with path.open("wb") as handle:
        pickle.dump({"metainfo": {"point_features": features}, "dbinfos": dbinfos}, handle)
    return path


def _sampler(info: Path, **overrides) -> ObjectSample:
    cfg = dict(type="DataBaseSampler", info_path=str(info), data_root=str(info.parent), rate=1.0,
               prepare=dict(filter_by_difficulty=[-1], filter_by_min_points=dict(car=5, pedestrian=5)),
               classes=list(NUSCENES_CLASSES), sample_groups=dict(car=3, pedestrian=2))
    cfg.update(overrides)
    return ObjectSample(db_sampler=cfg)


def test_pastes_free_objects_with_points_and_velocity(tmp_path: Path) -> None:
    info = write_db(tmp_path, [("car", FREE_A, 40), ("car", FREE_B, 30), ("pedestrian", PED, 3)])
    frame = make_frame()
    np.random.seed(0)
    results = _sampler(info)({"frame": frame})
    out = results["frame"]
    assert results["aug"]["object_sample"] == {"car": 2, "pedestrian": 0}  # the 3-point pedestrian is filtered
    assert len(out.boxes) == 6
    pasted = out.boxes[[4, 5]]
    order = np.argsort(pasted.data[:, 0])[::-1]  # FREE_A (x=20) first
    np.testing.assert_array_equal(pasted.data[order], np.array([FREE_A, FREE_B]))
    assert pasted.labels.tolist() == [0, 0] and sorted(pasted.num_lidar_pts.tolist()) == [30, 40]
    np.testing.assert_array_equal(out.boxes.data[:4], frame.boxes.data)
    # the points inside each pasted box are exactly its object points; scene points there are gone
    inside = pasted.points_in_boxes(out.points)
    ids = out.points[:, 3]
    for column in range(2):
        expected = np.arange(10000, 10040) if pasted.data[column, 0] == FREE_A[0] else np.arange(10040, 10070)
        np.testing.assert_array_equal(np.sort(ids[inside[:, column]]), expected)
    removed = Boxes3D(np.array([FREE_A, FREE_B]), [0, 0]).points_in_boxes(frame.points).any(axis=1)
    assert removed.sum() > 0  # the background had points there
    assert len(out.points) == len(frame.points) - removed.sum() + 70
    assert (out.points[:70, 3] >= 10000).all()  # object points come first
    assert len(frame.boxes) == 4  # the input frame is untouched


def test_collisions_with_scene_and_between_candidates(tmp_path: Path) -> None:
    frame = make_frame()
    on_car = _sampler(write_db(tmp_path / "a", [("car", ON_CAR, 20)]))
    out = on_car({"frame": frame})["frame"]
    assert len(out.boxes) == 4 and out.points is frame.points
    empty = dataclasses.replace(frame, boxes=Boxes3D.empty())
    out = on_car({"frame": empty})["frame"]
    np.testing.assert_array_equal(out.boxes.data, [ON_CAR])  # nothing left to collide with
    pair = _sampler(write_db(tmp_path / "b", [("car", FREE_A, 20), ("car", NEAR_A, 20)]))
    for seed in range(5):
        np.random.seed(seed)
        out = pair({"frame": frame})["frame"]
        assert len(out.boxes) == 5 and out.boxes.data[4, 0] in (FREE_A[0], NEAR_A[0])


def test_counts_rate_and_filters(tmp_path: Path) -> None:
    objects = [("car", [x, -30.0, -1.0, 4.0, 1.8, 1.5, 0.0, 0.0, 0.0], 10) for x in range(-30, 31, 6)]
    info = write_db(tmp_path, objects + [("pedestrian", PED, 3)])
    frame = make_frame()
    counts = lambda **kw: _sampler(info, **kw)({"frame": frame})["aug"]["object_sample"]  # noqa: E731
    assert counts(sample_groups=dict(car=1)) == {"car": 0}  # the frame already has one car
    assert counts(sample_groups=dict(car=5)) == {"car": 4}
    assert counts(sample_groups=dict(car=5), rate=0.5) == {"car": 2}
    assert counts(sample_groups=dict(car=5), prepare=dict(filter_by_difficulty=[0])) == {"car": 0}
    assert counts(sample_groups=dict(car=5), prepare=dict(filter_by_min_points=dict(car=11))) == {"car": 0}
    assert counts(sample_groups=dict(pedestrian=2), prepare=dict(filter_by_min_points=dict(pedestrian=3))) == {
        "pedestrian": 1}


def test_bev_collisions_use_rotated_footprints() -> None:
    boxes = np.array([
        [0.0, 0.0, 0.0, 4.0, 1.0, 1.0, 0.0],
        [0.0, 1.2, 0.0, 4.0, 1.0, 1.0, 0.0],  # parallel, 0.2 m gap
        [6.0, 0.0, 0.0, 4.0, 1.0, 1.0, np.pi / 2],  # far right, alone
    ])
    assert not bev_collisions(boxes).any()
    boxes[1, 6] = np.pi / 2  # turned across box 0
    assert bev_collisions(boxes)[0, 1] and bev_collisions(boxes)[1, 0] and not bev_collisions(boxes)[2].any()
    diagonal = np.array([[0.0, 0.0, 0.0, 4.0, 0.5, 1.0, np.pi / 4], [1.5, -1.5, 0.0, 4.0, 0.5, 1.0, np.pi / 4]])
    assert not bev_collisions(diagonal).any()  # their axis-aligned boxes overlap, the boxes do not


def test_clear_errors(tmp_path: Path) -> None:
    info = write_db(tmp_path, [("car", FREE_A, 20)])
    frame = make_frame()
    lagged = dataclasses.replace(frame, points=np.concatenate([frame.points, np.zeros((len(frame.points), 1),
                                                                                      np.float32)], axis=1),
                                 point_features=FEATURES + ("time_lag",))
    with pytest.raises(FrameError, match=r"missing \['time_lag'\]"):
        _sampler(info)({"frame": lagged})
    (tmp_path / "db" / "0.bin").unlink()
    with pytest.raises(FileNotFoundError, match=r"db/0\.bin"):
        _sampler(info)({"frame": frame})
    with pytest.raises(FileNotFoundError, match="gt-database"):
        _sampler(tmp_path / "absent.pkl")
    bad = tmp_path / "mmdet3d_dbinfos.pkl"
    bad.write_bytes(pickle.dumps({"car": []}))
    with pytest.raises(FrameError, match="no 'dbinfos'"):
        _sampler(bad)
    with pytest.raises(ValueError, match="prepare keys"):
        _sampler(info, prepare=dict(filter_by_min_pts=dict(car=5)))
    with pytest.raises(ValueError, match="not in classes"):
        _sampler(info, classes=["car"])
    with pytest.raises(ValueError, match="bad db_sampler arguments"):
        _sampler(info, sample_group=dict(car=2))


def test_points_loader_picks_columns(tmp_path: Path) -> None:
    """A database with an extra stored column, read with mmdet3d-style load_dim/use_dim."""
    info = write_db(tmp_path, [("car", FREE_A, 20)], features=FEATURES + ("extra",))
    frame = make_frame()
    sampler = _sampler(info, points_loader=dict(type="LoadPointsFromFile", load_dim=6, use_dim=[0, 1, 2, 3, 4]))
    out = sampler({"frame": frame})["frame"]
    assert len(out.boxes) == 5 and out.points.shape[1] == 5
    np.testing.assert_array_equal(np.sort(out.points[:20, 3]), np.arange(10000, 10020))
