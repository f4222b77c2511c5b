"""Geometry of the map heads: the BEV sampling lands on the right cell (columns +x, rows +y,
also when the map range is a window of a larger BEV), arc-length resampling, sinusoidal
embeddings, and the ground-truth conversion by class name."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from perception.models.map.geometry import (MapGeometryError, check_range, denormalize, normalize,
                                            resample_polyline, sine_embedding, to_grid)
from perception.models.map.layers import BEVPointAttention
from perception.models.map.targets import instances_to_targets
from perception.structures.geometry import BEVGrid
from perception.structures.map_instances import MapInstances

import map_head_testing

one_thread = map_head_testing.one_thread


def hot_bev(x: float, y: float, grid: BEVGrid) -> torch.Tensor:
    """A (1, 1, H, W) map with one hot cell, the shared BEVGrid's cell of metric (x, y)."""
    bev = torch.zeros(1, 1, *grid.shape)
    row, col = grid.cell_of(np.array([[x, y]]))[0]
    bev[0, 0, row, col] = 1.0
    return bev


@pytest.mark.parametrize("bev_range", [(-15.0, -30.0, 15.0, 30.0), (-51.2, -51.2, 51.2, 51.2)])
def test_grid_sampling_reads_the_cell_under_the_point(bev_range: tuple[float, ...]) -> None:
    map_range = (-15.0, -30.0, 15.0, 30.0)
    res = 0.4 if bev_range == map_range else 0.8
    grid = BEVGrid(x_range=(bev_range[0], bev_range[2]), y_range=(bev_range[1], bev_range[3]), resolution=res)
    x, y = 7.3, -21.9
    bev = hot_bev(x, y, grid)
    x0, y0 = bev_range[:2]
    centre = (x0 + (np.floor((x - x0) / res) + 0.5) * res, y0 + (np.floor((y - y0) / res) + 0.5) * res)
    point = normalize(torch.tensor([[centre]], dtype=torch.float32), map_range)
    value = F.grid_sample(bev, to_grid(point, map_range, bev_range)[None], align_corners=False)
    assert value.item() == pytest.approx(1.0, abs=1e-5)
    off = normalize(torch.tensor([[(centre[0] + res, centre[1])]], dtype=torch.float32), map_range)
    assert F.grid_sample(bev, to_grid(off, map_range, bev_range)[None], align_corners=False).item() < 1e-5


def test_point_attention_samples_around_the_reference() -> None:
    """With offsets zeroed, every head samples the reference point itself."""
    attention = BEVPointAttention(embed_dims=4, num_heads=2, num_samples=3)
    with torch.no_grad():
        attention.offsets.bias.zero_()
        attention.value_proj.weight.copy_(torch.eye(4)[:, :, None, None])
        attention.output_proj.weight.copy_(torch.eye(4))
    bev = torch.zeros(1, 4, 10, 20)
    bev[0, :, 3, 15] = 2.0
    ref = torch.tensor([[[(15.5 / 20) * 2 - 1, (3.5 / 10) * 2 - 1], [-0.9, -0.9]]])
    out = attention(torch.zeros(1, 2, 4), ref, bev)
    torch.testing.assert_close(out[0, 0], torch.full((4,), 2.0))
    torch.testing.assert_close(out[0, 1], torch.zeros(4))


def test_normalize_round_trip_and_range_checks() -> None:
    points = torch.tensor([[-15.0, -30.0], [15.0, 30.0], [0.0, 6.0]])
    norm = normalize(points, (-15, -30, 15, 30))
    torch.testing.assert_close(norm, torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.5, 0.6]]))
    torch.testing.assert_close(denormalize(norm, (-15, -30, 15, 30)), points)
    assert check_range([-1, -2, -3, 1, 2, 3]) == (-1.0, -2.0, 1.0, 2.0)
    with pytest.raises(MapGeometryError, match="max > min"):
        check_range([1, 0, -1, 2])


def test_resample_polyline_open_and_closed() -> None:
    line = resample_polyline(np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]]), 5, closed=False)
    np.testing.assert_allclose(line, [[0, 0], [5, 0], [10, 0], [10, 5], [10, 10]], atol=1e-5)
    square = resample_polyline(np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]]), 8, closed=True)
    assert len(square) == 8 and np.allclose(square[0], 0) and np.allclose(square[4], [2, 2])
    steps = np.linalg.norm(np.diff(np.vstack([square, square[:1]]), axis=0), axis=1)
    np.testing.assert_allclose(steps, 1.0, atol=1e-5)


def test_sine_embedding_shape_and_distinct() -> None:
    emb = sine_embedding(torch.tensor([[0.1, 0.2], [0.1, 0.3]]), 16)
    assert emb.shape == (2, 32) and not torch.allclose(emb[0], emb[1])
    with pytest.raises(MapGeometryError):
        sine_embedding(torch.zeros(1, 2), 15)


def test_targets_map_classes_by_name_and_resample() -> None:
    gt = MapInstances(np.array([[[0, 0], [3, 0], [6, 0]], [[-15, -30], [0, 0], [15, 30]]], dtype=np.float32),
                      [0, 1], ("boundary", "stop_line"), [False, False])
    targets = instances_to_targets(gt, ("divider", "ped_crossing", "boundary"), 5, (-15, -30, 15, 30),
                                   torch.device("cpu"))
    assert targets.labels.tolist() == [2]  # boundary kept, unknown class dropped
    assert targets.points.shape == (1, 5, 2)
    torch.testing.assert_close(denormalize(targets.points, (-15, -30, 15, 30))[0, :, 0],
                               torch.tensor([0.0, 1.5, 3.0, 4.5, 6.0]))
