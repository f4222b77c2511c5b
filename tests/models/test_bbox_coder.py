"""CenterPointBBoxCoder encode/decode and the gaussian heatmap helpers, with hand numbers."""
from __future__ import annotations

import math

import pytest
import torch

from perception.models.task_modules import (CenterPointBBoxCoder, draw_heatmap_gaussian,
                                            gaussian_radius)
from perception.registry import MODELS

# x in [-8, 8), y in [-4, 8): 0.25 m voxels, stride 2 -> 0.5 m cells, W=32 cols, H=24 rows
CODER = dict(type="CenterPointBBoxCoder", pc_range=[-8.0, -4.0], out_size_factor=2,
             voxel_size=[0.25, 0.25], max_num=50, code_size=9)


def test_gaussian_radius_hand_value() -> None:
    # (10, 10) cells at min_overlap 0.1: roots 14.26, 26.32 and (-4 + sqrt(16 + 144)) / 2
    r = gaussian_radius((10.0, 10.0), min_overlap=0.1)
    assert float(r) == pytest.approx((-4 + math.sqrt(16 + 4 * 0.4 * 90)) / 2, rel=1e-9)
    assert float(r) == pytest.approx(4.3246, abs=1e-4)
    batch = gaussian_radius((torch.tensor([10.0, 4.0]), torch.tensor([10.0, 2.0])), 0.1)
    assert batch.shape == (2,) and batch[0] == pytest.approx(float(r)) and batch[1] < batch[0]


def test_draw_gaussian_values_and_border_clipping() -> None:
    heatmap = torch.zeros(6, 7)
    draw_heatmap_gaussian(heatmap, (0, 1), radius=2)  # (col, row)
    sigma = 5 / 6
    assert heatmap[1, 0] == 1.0 and heatmap.argmax() == 1 * 7 + 0
    assert heatmap[1, 1] == pytest.approx(math.exp(-1 / (2 * sigma ** 2)), rel=1e-6)
    assert heatmap[3, 2] == pytest.approx(math.exp(-8 / (2 * sigma ** 2)), rel=1e-6)
    assert heatmap[:, 3:].abs().sum() == 0 and heatmap[4:].abs().sum() == 0
    draw_heatmap_gaussian(heatmap, (1, 1), radius=2, k=0.5)  # max, not sum
    assert heatmap[1, 0] == 1.0 and heatmap[1, 1] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="outside the 6x7 heatmap"):
        draw_heatmap_gaussian(heatmap, (7, 0), radius=2)


def test_encode_known_box() -> None:
    coder = MODELS.build(CODER)
    boxes = torch.tensor([[3.3, -1.7, 0.4, 4.0, 2.0, 1.5, 0.5, 1.0, float("nan")]])
    cells, targets = coder.encode(boxes)
    assert cells.tolist() == [[4, 22]]  # row from y: (-1.7 + 4) / 0.5; col from x: (3.3 + 8) / 0.5
    expected = [0.6, 0.6, 0.4, math.log(4), math.log(2), math.log(1.5), math.sin(0.5),
                math.cos(0.5), 1.0]
    assert torch.allclose(targets[0, :9], torch.tensor(expected), atol=1e-5)
    assert torch.isnan(targets[0, 9])
    outside = coder.encode(torch.tensor([[-8.2, 0.0, 0, 1, 1, 1, 0, 0, 0]]))[0]
    assert outside[0, 1] == -1  # floor, not truncation: the box is left of the grid


def test_decode_inverts_encode_and_filters() -> None:
    coder = MODELS.build(dict(CODER, score_threshold=0.3,
                              post_center_range=[-8, -4, -2, 8, 8, 2]))
    boxes = torch.tensor([[3.3, -1.7, 0.4, 4.0, 2.0, 1.5, -3.1, 1.0, -2.0],
                          [-7.9, 7.9, -1.0, 0.5, 0.6, 1.7, 1.2, 0.0, 0.3],
                          [0.2, 0.2, 5.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]])  # z outside range
    cells, targets = coder.encode(boxes)
    heat = torch.zeros(1, 3, 24, 32)
    maps = torch.zeros(1, 10, 24, 32)
    for k, (label, score) in enumerate([(2, 0.9), (0, 0.6), (1, 0.8)]):
        heat[0, label, cells[k, 0], cells[k, 1]] = score
        maps[0, :, cells[k, 0], cells[k, 1]] = targets[k]
    heat[0, 1, 0, 0] = 0.2  # below score_threshold
    out = coder.decode(heat, maps[:, 6:7], maps[:, 7:8], maps[:, 2:3], maps[:, 3:6],
                       maps[:, 8:10], maps[:, 0:2])
    assert len(out) == 1 and out[0]["labels"].tolist() == [2, 0]
    assert torch.allclose(out[0]["scores"], torch.tensor([0.9, 0.6]))
    assert torch.allclose(out[0]["bboxes"], boxes[:2], atol=1e-5)
    no_reg = coder.decode(heat, maps[:, 6:7], maps[:, 7:8], maps[:, 2:3], maps[:, 3:6],
                          maps[:, 8:10], reg=None)[0]["bboxes"]
    assert no_reg[0, :2].tolist() == pytest.approx([3.25, -1.75])  # cell centre


def test_decode_rejects_bad_maps() -> None:
    coder = MODELS.build(CODER)
    heat = torch.zeros(2, 3, 24, 32)
    one, three = torch.zeros(2, 1, 24, 32), torch.zeros(2, 3, 24, 32)
    two = torch.zeros(2, 2, 24, 32)
    with pytest.raises(ValueError, match="dim must be \\(2, 3, 24, 32\\)"):
        coder.decode(heat, one, one, one, two, two, two)
    with pytest.raises(ValueError, match="code_size 9 needs a velocity map"):
        coder.decode(heat, one, one, one, three, None, two)
    with pytest.raises(ValueError, match="code_size must be 7"):
        CenterPointBBoxCoder([-8, -4], 2, [0.25, 0.25], code_size=8)
    with pytest.raises(ValueError, match="boxes must be"):
        coder.encode(torch.zeros(3, 7))


def _vote_maps(coder: CenterPointBBoxCoder) -> tuple[torch.Tensor, ...]:
    """One class, a peak at (row 10, col 12) predicting offset (0.2, 0.6) and three
    neighbours: two agree (they predict centres 0.1 cell away), one points elsewhere."""
    heat = torch.zeros(1, 1, 24, 32)
    reg = torch.zeros(1, 2, 24, 32)
    heat[0, 0, 10, 12], reg[0, :, 10, 12] = 0.8, torch.tensor([0.2, 0.6])
    heat[0, 0, 10, 13], reg[0, :, 10, 13] = 0.4, torch.tensor([-0.7, 0.6])  # centre x 12.3
    heat[0, 0, 11, 12], reg[0, :, 11, 12] = 0.4, torch.tensor([0.2, -0.5])  # centre y 10.5
    heat[0, 0, 9, 11], reg[0, :, 9, 11] = 0.5, torch.tensor([0.5, 0.5])  # centre (11.5, 9.5)
    zeros = torch.zeros(1, 1, 24, 32)
    return heat, zeros, zeros, zeros, torch.zeros(1, 3, 24, 32), torch.zeros(1, 2, 24, 32), reg


def test_center_vote_averages_agreeing_neighbours_only() -> None:
    plain = MODELS.build(dict(CODER, max_num=1))
    voted = MODELS.build(dict(CODER, max_num=1, center_vote_kernel=3, center_vote_gate=0.5))
    maps = _vote_maps(plain)
    base = plain.decode(*maps)[0]["bboxes"][0]
    assert base[:2].tolist() == pytest.approx([(12.2 * 0.5) - 8, (10.6 * 0.5) - 4])
    box = voted.decode(*maps)[0]["bboxes"][0]
    # weights 0.8, 0.4, 0.4 on x = 12.2, 12.3, 12.2 and y = 10.6, 10.6, 10.5 (cells)
    x_cells = (0.8 * 12.2 + 0.4 * 12.3 + 0.4 * 12.2) / 1.6
    y_cells = (0.8 * 10.6 + 0.4 * 10.6 + 0.4 * 10.5) / 1.6
    assert box[:2].tolist() == pytest.approx([x_cells * 0.5 - 8, y_cells * 0.5 - 4], abs=1e-5)
    assert torch.equal(box[2:], base[2:])  # only the centre is voted
    wide = MODELS.build(dict(CODER, max_num=1, center_vote_kernel=3, center_vote_gate=2.0))
    pulled = wide.decode(*maps)[0]["bboxes"][0]  # the stray neighbour now votes too
    assert pulled[0] < box[0] and pulled[1] < box[1]


def test_center_vote_at_the_border_and_bad_arguments() -> None:
    voted = MODELS.build(dict(CODER, max_num=1, center_vote_kernel=5, center_vote_gate=1.0))
    heat, *rest = _vote_maps(voted)
    heat = torch.zeros_like(heat)
    heat[0, 0, 0, 0] = 0.9  # a corner peak: padded neighbours have no heat and do not vote
    rest[-1][0, :, 0, 0] = torch.tensor([0.3, 0.4])
    box = voted.decode(heat, *rest)[0]["bboxes"][0]
    assert box[:2].tolist() == pytest.approx([0.3 * 0.5 - 8, 0.4 * 0.5 - 4])
    for kernel, gate in ((2, 1.0), (0, 1.0), (3, 0.0)):
        with pytest.raises(ValueError, match="center_vote_kernel must be a positive odd"):
            CenterPointBBoxCoder([-8, -4], 2, [0.25, 0.25], center_vote_kernel=kernel,
                                 center_vote_gate=gate)
