"""GlobalRasterMap: BEV convention of crops, growth by tiles, fusion modes, merge, save/load."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from perception.models.map.hrmap_global_map import GlobalMapError, GlobalRasterMap, bev_grid
from perception.models.map.hrmap_rasterize import rasterize_instances
from perception.structures.geometry import BEVGrid, make_transform, yaw_matrix
from perception.structures.map_instances import MapInstances

GRID = bev_grid((-15, 15), (-30, 30), 0.5)  # (120, 60): rows along y, columns along x


def pose(x: float, y: float, yaw: float) -> np.ndarray:
    return make_transform(yaw_matrix(yaw), [x, y, 1.8])


def blob(grid: BEVGrid, x: float, y: float, channel: int, channels: int = 3, radius: float = 1.5) -> torch.Tensor:
    """A raster with a disc of ones around lidar-frame ``(x, y)`` in ``channel``."""
    height, width = grid.shape
    xs = grid.x_range[0] + (torch.arange(width) + 0.5) * grid.resolution
    ys = grid.y_range[0] + (torch.arange(height) + 0.5) * grid.resolution
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    out = torch.zeros(channels, height, width)
    out[channel] = (((gx - x) ** 2 + (gy - y) ** 2) <= radius ** 2).float()
    return out


def peak_xy(raster: torch.Tensor, grid: BEVGrid, channel: int) -> np.ndarray:
    """Weighted centre ``(x, y)`` of ``raster[channel]`` in the grid's metric frame."""
    height, width = grid.shape
    weights = raster[channel].double()
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    total = weights.sum()
    col = float((weights * cols).sum() / total)
    row = float((weights * rows).sum() / total)
    return np.array([grid.x_range[0] + (col + 0.5) * grid.resolution,
                     grid.y_range[0] + (row + 0.5) * grid.resolution])


def test_update_then_crop_moves_content_with_the_pose() -> None:
    gmap = GlobalRasterMap(num_classes=3, resolution=0.3)
    first = pose(100.0, -40.0, np.pi / 2)  # lidar +x points to world +y
    gmap.update("town", first, blob(GRID, 4.0, 10.0, channel=1), GRID)
    gmap.commit()
    # the same pose sees the blob where it was drawn
    same = gmap.crop_to_ego("town", first, GRID)
    np.testing.assert_allclose(peak_xy(same, GRID, 1), [4.0, 10.0], atol=0.2)
    assert same[0].max() == 0 and same[2].max() == 0
    # world position of the blob: R(90deg) @ (4, 10) + t = (-10, 4) + (100, -40)
    other = pose(90.0, -30.0, 0.0)
    crop = gmap.crop_to_ego("town", other, GRID)
    np.testing.assert_allclose(peak_xy(crop, GRID, 1), [0.0, -6.0], atol=0.2)
    assert crop[1].max() > 0.9
    assert gmap.crop_to_ego("elsewhere", other, GRID).abs().sum() == 0


def test_bounds_grow_by_tiles_and_keep_content() -> None:
    gmap = GlobalRasterMap(num_classes=3, resolution=0.3, tile_cells=64)
    gmap.update("town", pose(0, 0, 0), blob(GRID, 0, 0, 0), GRID)
    gmap.commit()
    tile = 64 * 0.3
    extent = gmap.world_extent("town")
    assert all(abs(v / tile - round(v / tile)) < 1e-9 for v in extent)  # tile lattice
    assert extent[0] <= -15 and extent[1] >= 15 and extent[2] <= -30 and extent[3] >= 30
    gmap.update("town", pose(500.0, 300.0, 0.3), blob(GRID, 0, 0, 2), GRID)
    gmap.commit()
    grown = gmap.world_extent("town")
    assert grown[0] == extent[0] and grown[2] == extent[2] and grown[1] >= 515 and grown[3] >= 330
    assert gmap.crop_to_ego("town", pose(0, 0, 0), GRID)[0].max() > 0.9  # old content intact
    assert gmap.crop_to_ego("town", pose(500.0, 300.0, 0.3), GRID)[2].max() > 0.9


def test_max_fusion_keeps_the_highest_probability() -> None:
    gmap = GlobalRasterMap(num_classes=3, fusion="max", online=True)
    where = pose(10, 10, 0)
    gmap.update("town", where, 0.8 * blob(GRID, 0, 0, 0, radius=3), GRID)
    gmap.update("town", where, 0.3 * blob(GRID, 0, 0, 0, radius=3), GRID)
    centre = gmap.crop_to_ego("town", where, GRID)[0, 60, 30]
    assert centre == pytest.approx(round(0.8 * 255) / 255, abs=1e-6)


def test_probabilistic_increment_decay_and_clamp() -> None:
    gmap = GlobalRasterMap(num_classes=3, fusion="probabilistic", increment=100, decay=30, online=True)
    where = pose(0, 0, 0)
    positive = blob(GRID, 0, 0, 0, radius=3)
    for _ in range(4):  # 4 x 100 clamps at 255
        gmap.update("town", where, positive, GRID)
    assert gmap.crop_to_ego("town", where, GRID)[0, 60, 30] == pytest.approx(1.0)
    gmap.update("town", where, torch.zeros(3, *GRID.shape), GRID)  # observed negative: decay
    assert gmap.crop_to_ego("town", where, GRID)[0, 60, 30] == pytest.approx(225 / 255)
    for _ in range(20):
        gmap.update("town", where, torch.zeros(3, *GRID.shape), GRID)
    assert gmap.crop_to_ego("town", where, GRID).max() == 0  # clamped at 0, never negative


def frames(count: int, seed: int) -> list[tuple[np.ndarray, torch.Tensor]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        x, y, yaw = rng.uniform(-60, 60), rng.uniform(-60, 60), rng.uniform(-np.pi, np.pi)
        probs = torch.from_numpy(rng.uniform(0, 1, (3, *GRID.shape)).astype(np.float32))
        out.append((pose(x, y, yaw), probs))
    return out


@pytest.mark.parametrize("fusion", ["max", "probabilistic"])
def test_merge_of_split_maps_equals_one_map(fusion: str) -> None:
    observations = frames(6, seed=0)
    whole = GlobalRasterMap(num_classes=3, fusion=fusion, tile_cells=64)
    parts = [GlobalRasterMap(num_classes=3, fusion=fusion, tile_cells=64) for _ in range(2)]
    for index, (where, probs) in enumerate(observations):
        whole.update("town", where, probs, GRID)
        parts[index % 2].update("town", where, probs, GRID)
    for order in ((0, 1), (1, 0)):
        merged = GlobalRasterMap(num_classes=3, fusion=fusion, tile_cells=64)
        for index in order:
            merged.merge_from(parts[index])
        merged.commit()
        reference = GlobalRasterMap(num_classes=3, fusion=fusion, tile_cells=64)
        reference.merge_from(whole)
        reference.commit()
        assert merged.world_extent("town") == reference.world_extent("town")
        np.testing.assert_array_equal(merged.locations["town"].base, reference.locations["town"].base)
    assert reference.locations["town"].base.max() > 0


def test_save_load_round_trip(tmp_path) -> None:
    gmap = GlobalRasterMap(num_classes=3, fusion="probabilistic", tile_cells=64)
    for where, probs in frames(2, seed=1):
        gmap.update("a", where, probs, GRID)
        gmap.update("b", where, probs, GRID)
    with pytest.raises(GlobalMapError, match="pending"):
        gmap.save(tmp_path / "map.npz")
    gmap.commit()
    gmap.save(tmp_path / "map.npz")
    loaded = GlobalRasterMap.load(tmp_path / "map.npz", online=True)
    assert loaded.online and loaded.fusion == "probabilistic"
    for name in ("a", "b"):
        np.testing.assert_array_equal(loaded.locations[name].base, gmap.locations[name].base)
        assert loaded.world_extent(name) == gmap.world_extent(name)
    with pytest.raises(GlobalMapError, match="cannot override"):
        GlobalRasterMap.load(tmp_path / "map.npz", resolution=0.5)


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(GlobalMapError, match="fusion"):
        GlobalRasterMap(num_classes=3, fusion="mean")
    gmap = GlobalRasterMap(num_classes=3)
    with pytest.raises(GlobalMapError, match=r"probs must be \(3, 120, 60\)"):
        gmap.update("town", pose(0, 0, 0), torch.zeros(2, 120, 60), GRID)
    with pytest.raises(GlobalMapError, match="4x4"):
        gmap.update("town", np.eye(3), torch.zeros(3, 120, 60), GRID)


def test_rasterize_instances_draws_lines_and_outlines_with_scores() -> None:
    instances = MapInstances(
        points=np.array([[[-10, 5], [10, 5], [10, 5.0]],        # divider along x at y = 5
                         [[0, -20], [4, -20], [4, -16]]], np.float32),  # ped-crossing triangle
        labels=np.array([0, 1]), class_names=("divider", "ped_crossing", "boundary"),
        closed=np.array([False, True]), scores=np.array([0.7, 0.9]))
    raster = rasterize_instances(instances, GRID, half_width=0.5)
    row, col = GRID.cell_of(np.array([[0.1, 5.1]]))[0]
    assert raster[0, row, col] == pytest.approx(0.7)
    row, col = GRID.cell_of(np.array([[0.1, 8.0]]))[0]
    assert raster[0, row, col] == 0
    row, col = GRID.cell_of(np.array([[2.1, -17.9]]))[0]  # on the closing edge (4,-16) -> (0,-20)
    assert raster[1, row, col] == pytest.approx(0.9)
    assert raster[2].max() == 0
    low = rasterize_instances(instances, GRID, score_threshold=0.8)
    assert low[0].max() == 0 and low[1].max() == pytest.approx(0.9)


def test_windowed_crop_equals_sampling_the_whole_raster() -> None:
    import torch.nn.functional as F

    gmap = GlobalRasterMap(num_classes=3, resolution=0.3, tile_cells=64)
    for where, probs in frames(4, seed=2):
        gmap.update("town", where, probs, GRID)
    gmap.commit()
    raster = gmap.locations["town"]
    x0, y0 = gmap.world_origin("town")
    for where in (pose(3.0, -7.0, 0.7), pose(-55.0, 58.0, -2.0), pose(400.0, 0.0, 0.0)):
        crop = gmap.crop_to_ego("town", where, GRID)
        height, width = GRID.shape
        xs = GRID.x_range[0] + (np.arange(width) + 0.5) * GRID.resolution
        ys = GRID.y_range[0] + (np.arange(height) + 0.5) * GRID.resolution
        gx, gy = np.meshgrid(xs, ys)
        world = np.stack([gx.ravel(), gy.ravel()], 1) @ where[:2, :2].T + where[:2, 3]
        h, w = raster.shape
        norm = np.stack([2 * (world[:, 0] - x0) / (w * 0.3) - 1, 2 * (world[:, 1] - y0) / (h * 0.3) - 1], 1)
        full = F.grid_sample(torch.from_numpy(raster.base).float()[None] / 255,
                             torch.from_numpy(norm).float().view(1, height, width, 2), align_corners=False)[0]
        torch.testing.assert_close(crop, full, atol=1e-4, rtol=0)  # float32 coordinates differ slightly
