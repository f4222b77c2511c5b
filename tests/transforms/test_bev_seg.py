"""LoadBEVSegmentation: hand-made geometry lands in known cells; augmentations move the target
with the points; the synthetic world's map puts its cars on the drivable area."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from shapely.geometry import LineString, Polygon

from perception.structures import NUSCENES_CLASSES, Frame, make_transform, yaw_matrix
from perception.structures.geometry import BEVGrid
from perception.transforms import GlobalRotScaleTrans, RandomFlip3D
from perception.transforms import bev_seg as bev_seg_module
from perception.transforms.bev_seg import LoadBEVSegmentation, check_bev_seg_consistent
from perception.transforms.bev_seg_raster import (BEV_SEG_CLASSES, BEVSegAugmentationError, planar_augmentation,
                                                  rasterize, world_to_pixel)

GRID = BEVGrid((-10.0, 10.0), (-10.0, 10.0), 1.0)


def square(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    return Polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])


def expected_cells(x0: float, y0: float, x1: float, y1: float, grid: BEVGrid = GRID) -> np.ndarray:
    """Cells whose centre is strictly inside the axis-aligned box (computed independently)."""
    height, width = grid.shape
    centres = grid.center_of(np.stack(np.meshgrid(np.arange(height), np.arange(width), indexing="ij"), -1))
    inside = (centres[:, 0] > x0) & (centres[:, 0] < x1) & (centres[:, 1] > y0) & (centres[:, 1] < y1)
    return inside.reshape(height, width)


def test_square_lands_in_known_cells() -> None:
    mask = rasterize([square(2.0, 3.0, 5.0, 7.0)], world_to_pixel(np.eye(4), GRID), GRID.shape)
    rows, cols = np.nonzero(mask)
    assert set(rows.tolist()) == {13, 14, 15, 16}  # y centres 3.5 .. 6.5
    assert set(cols.tolist()) == {12, 13, 14}  # x centres 2.5 .. 4.5
    assert mask.sum() == 12


def test_pose_yaw_and_translation() -> None:
    """A LiDAR at world (100, 200) turned 90 deg: world (100, 203) is LiDAR (3, 0)."""
    lidar2global = make_transform(yaw_matrix(np.pi / 2), [100.0, 200.0, 1.8])
    mask = rasterize([square(99.0, 202.0, 101.0, 204.0)], world_to_pixel(lidar2global, GRID), GRID.shape)
    np.testing.assert_array_equal(mask, expected_cells(2.0, -1.0, 4.0, 1.0))


@pytest.mark.parametrize("flip", [(1.0, 1.0), (-1.0, 1.0), (1.0, -1.0)])
def test_augmentation_moves_the_target_like_points(flip: tuple[float, float]) -> None:
    """Rotating by 90 deg, scaling by 2 and mirroring maps the square to the mapped corners."""
    aug = np.diag([flip[0], flip[1], 1.0, 1.0]) @ make_transform(2.0 * yaw_matrix(np.pi / 2), [1.0, 0.0, 0.0])
    mask = rasterize([square(1.0, 1.0, 3.0, 2.0)], world_to_pixel(np.eye(4), GRID, aug), GRID.shape)
    corners = np.array([[1.0, 1.0, 0.0, 1.0], [3.0, 2.0, 0.0, 1.0]]) @ aug.T
    x0, x1 = sorted(corners[:, 0])
    y0, y1 = sorted(corners[:, 1])
    np.testing.assert_array_equal(mask, expected_cells(x0, y0, x1, y1))
    assert mask.sum() == 8  # a 4 m x 2 m rectangle


def test_tilting_augmentation_is_refused() -> None:
    tilt = make_transform(np.array([[1.0, 0, 0], [0, np.cos(0.1), -np.sin(0.1)], [0, np.sin(0.1), np.cos(0.1)]]),
                          [0, 0, 0])
    with pytest.raises(BEVSegAugmentationError, match="ground plane"):
        planar_augmentation(tilt)
    with pytest.raises(BEVSegAugmentationError, match="rotation/scale/mirror"):
        planar_augmentation(np.diag([1.0, 2.0, 1.0, 1.0]))


class FakeMap:
    """The part of NuScenesMap that the rasterizer reads."""

    def __init__(self) -> None:
        self.polygons = {"p_road": square(-10, -2, 10, 2), "p_walk": square(-10, 2, 10, 4),
                         "p_stop": square(5, -2, 6, 0)}
        self.lines = {"l_div": LineString([(-10, 0), (10, 0)])}
        self.road_segment = [{"token": "r", "polygon_token": "p_road"}]
        self.lane = []
        self.walkway = [{"token": "w", "polygon_token": "p_walk"}]
        self.stop_line = [{"token": "s", "polygon_token": "p_stop"}]
        self.ped_crossing = []
        self.carpark_area = []
        self.lane_divider = [{"token": "d", "line_token": "l_div"}]
        self.road_divider = []

    def extract_polygon(self, token: str) -> Polygon:
        return self.polygons[token]

    def extract_line(self, token: str) -> LineString:
        return self.lines[token]


def frame_at(lidar2global: np.ndarray, location: str = "fake") -> Frame:
    return Frame(token="t", timestamp=0.0, dataset="nuscenes", points=np.zeros((4, 3), np.float32),
                 point_features=("x", "y", "z"), lidar2ego=np.eye(4), ego2global=lidar2global,
                 class_names=NUSCENES_CLASSES, location=location)


@pytest.fixture
def fake_loader(monkeypatch: pytest.MonkeyPatch) -> LoadBEVSegmentation:
    monkeypatch.setattr(bev_seg_module, "load_nuscenes_map", lambda root, location: FakeMap())
    return LoadBEVSegmentation("unused", x_range=(-10, 10), y_range=(-10, 10), resolution=1.0, line_width=1.0)


def test_transform_layers_and_divider_width(fake_loader: LoadBEVSegmentation) -> None:
    results = fake_loader({"frame": frame_at(np.eye(4))})
    target = results["gt_bev_seg"]
    assert target.shape == (len(BEV_SEG_CLASSES), 20, 20) and target.dtype == bool
    channel = dict(zip(BEV_SEG_CLASSES, target))
    np.testing.assert_array_equal(channel["drivable_area"], expected_cells(-10, -2, 10, 2))
    np.testing.assert_array_equal(channel["walkway"], expected_cells(-10, 2, 10, 4))
    np.testing.assert_array_equal(channel["stop_line"], expected_cells(5, -2, 6, 0))
    np.testing.assert_array_equal(channel["divider"], expected_cells(-10, -0.5, 10, 0.5))  # 1 m wide line
    assert not channel["ped_crossing"].any() and not channel["carpark_area"].any()


def test_transform_follows_recorded_augmentation(fake_loader: LoadBEVSegmentation) -> None:
    """A horizontal flip (y -> -y) recorded in results['aug'] mirrors the walkway to y < 0."""
    results = RandomFlip3D(1.0, 0.0)({"frame": frame_at(np.eye(4))})
    walkway = fake_loader(results)["gt_bev_seg"][BEV_SEG_CLASSES.index("walkway")]
    np.testing.assert_array_equal(walkway, expected_cells(-10, -4, 10, -2))
    check_bev_seg_consistent(results)  # drawn after the flip: fine
    RandomFlip3D(0.0, 1.0)(results)  # a later flip makes the target stale
    with pytest.raises(BEVSegAugmentationError, match="after LoadBEVSegmentation"):
        check_bev_seg_consistent(results)


def test_transform_errors(fake_loader: LoadBEVSegmentation) -> None:
    with pytest.raises(ValueError, match="no map location"):
        fake_loader({"frame": frame_at(np.eye(4), location="")})
    with pytest.raises(KeyError, match="needs a 'frame'"):
        fake_loader({})


def test_data_root_none_reads_the_dataset_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """``data_root=None`` opens the map under ``results['data_root']`` (one index per root)."""
    opened: list[str] = []
    monkeypatch.setattr(bev_seg_module, "load_nuscenes_map",
                        lambda root, location: opened.append(str(root)) or FakeMap())
    loader = LoadBEVSegmentation(None, x_range=(-10, 10), y_range=(-10, 10), resolution=1.0)
    first = loader({"frame": frame_at(np.eye(4)), "data_root": "/world_a"})["gt_bev_seg"]
    loader({"frame": frame_at(np.eye(4)), "data_root": "/world_b"})
    loader({"frame": frame_at(np.eye(4)), "data_root": "/world_a"})
    assert opened == ["/world_a", "/world_b"] and first.any()
    with pytest.raises(ValueError, match="data_root=None needs"):
        loader({"frame": frame_at(np.eye(4))})
    fixed = LoadBEVSegmentation("/configured", x_range=(-10, 10), y_range=(-10, 10), resolution=1.0)
    fixed({"frame": frame_at(np.eye(4)), "data_root": "/world_c"})
    assert opened[-1] == "/configured"  # an explicit root wins


def test_missing_map_file_is_named() -> None:
    with pytest.raises(FileNotFoundError, match="nuScenes map expansion not found"):
        LoadBEVSegmentation("/nonexistent").rasterize_frame(frame_at(np.eye(4)))


def test_synthetic_world_cars_on_road_under_augmentation(tiny_synthetic_root: Path) -> None:
    """On the generated world, after rotation/scale/flip, every car centre lies on drivable area
    and every pedestrian on a walkway or crossing, and the target is not trivially full."""
    from perception.datasets.nuscenes.dataset import NuScenesDataset

    dataset = NuScenesDataset(ann_file="nuscenes_infos_train.pkl", data_root=str(tiny_synthetic_root),
                              with_cameras=False)
    loader = LoadBEVSegmentation(str(tiny_synthetic_root))
    np.random.seed(0)
    checked = SimpleNamespace(cars=0, peds=0)
    for index in range(0, len(dataset), 4):
        results = {"frame": dataset.get_frame(index)}
        results = RandomFlip3D(0.5, 0.5)(GlobalRotScaleTrans((-3.1, 3.1), (0.9, 1.1))(results))
        target = loader(results)["gt_bev_seg"]
        channel = dict(zip(BEV_SEG_CLASSES, target))
        assert 0.05 < channel["drivable_area"].mean() < 0.95
        boxes = results["frame"].boxes
        for labels, layer, counter in ((("car",), channel["drivable_area"], "cars"),
                                       (("pedestrian",), channel["walkway"] | channel["ped_crossing"], "peds")):
            keep = np.isin(np.asarray(boxes.labels), [NUSCENES_CLASSES.index(n) for n in labels])
            cells = loader.grid.cell_of(boxes.centers[keep, :2])
            cells = cells[cells[:, 0] >= 0]
            assert layer[cells[:, 0], cells[:, 1]].all()
            setattr(checked, counter, getattr(checked, counter) + len(cells))
    assert checked.cars >= 3 and checked.peds >= 3
