"""The auxiliary BEV segmentation loss of the map heads (perception/models/map/aux_seg.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from perception.models.map import MapTRHead
from perception.models.map.aux_seg import AuxSegInputError, MapAuxSegmentation
from perception.structures.det_sample import DetSample
from perception.structures.map_instances import MapInstances

CLASSES = ("divider", "ped_crossing", "boundary")
RANGE = (-30.0, -15.0, 30.0, 15.0)


def sample() -> DetSample:
    """A divider along y = 5 from x = -20 to 20 (ego-aligned range) and nothing else."""
    line = np.stack([np.linspace(-20, 20, 10), np.full(10, 5.0)], 1)
    gt = MapInstances(line[None].astype(np.float32), [0], CLASSES, [False])
    return DetSample("s", ("car",), np.eye(4), np.zeros((0, 9)), np.zeros(0), gt_map=gt)


def test_targets_draw_the_line_in_the_bev_layout() -> None:
    aux = MapAuxSegmentation(8, 3, RANGE, half_width=0.6)
    target = aux.targets([sample()], CLASSES, 30, 60, torch.device("cpu"))  # 1 m cells, rows along +y
    assert target.shape == (1, 3, 30, 60) and target[0, 1:].sum() == 0
    rows, cols = torch.nonzero(target[0, 0], as_tuple=True)
    assert set(rows.tolist()) == {19, 20}  # y = 5 is the edge between rows 19 (4.5) and 20 (5.5)
    assert cols.min() == 10 and cols.max() == 49  # x in [-20, 20]


def test_loss_prefers_the_right_raster_and_rejects_bad_grids() -> None:
    aux = MapAuxSegmentation(8, 3, RANGE)
    target = aux.targets([sample()], CLASSES, 30, 60, torch.device("cpu"))
    with torch.no_grad():  # replace the conv branch by the target itself (good) or its negation (bad)
        aux.net = torch.nn.Identity()
    good = aux.loss((target * 2 - 1) * 6, [sample()], CLASSES)["loss_seg"]
    bad = aux.loss((1 - 2 * target) * 6, [sample()], CLASSES)["loss_seg"]
    assert good < 1e-3 < bad
    with pytest.raises(AuxSegInputError, match="non-square"):
        aux.targets([sample()], CLASSES, 30, 30, torch.device("cpu"))


def test_head_adds_loss_seg_with_gradients_to_the_bev() -> None:
    head = MapTRHead(in_channels=8, map_range=RANGE, class_names=CLASSES, embed_dims=16, num_queries=4,
                     num_points=10, num_layers=1, num_heads=2, ffn_dims=16, aux_seg=dict(weight=2.0))
    bev = torch.randn(1, 8, 30, 60, requires_grad=True)
    losses = head.loss(bev, [sample()])
    assert "loss_seg" in losses and torch.isfinite(losses["loss_seg"])
    losses["loss_seg"].backward()
    assert bev.grad.abs().sum() > 0
    plain = MapTRHead(in_channels=8, map_range=RANGE, class_names=CLASSES, embed_dims=16, num_queries=4,
                      num_points=10, num_layers=1, num_heads=2, ffn_dims=16)
    assert "loss_seg" not in plain.loss(bev, [sample()])
