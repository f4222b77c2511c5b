"""BEVSegmentationHead and BEVGridTransform: axis convention, losses, predictions, learning."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from perception.evaluation.bev_seg_baselines import constant_baseline
from perception.evaluation.bev_seg_metric import evaluate_bev_seg
from perception.models.dense_heads.bev_seg_head import BEVGridTransform, BEVSegmentationHead
from perception.registry import MODELS
from perception.structures import DetSample
from perception.structures.geometry import BEVGrid

SMALL_GRID = dict(x_range=(-4.0, 4.0), y_range=(-2.0, 2.0), resolution=0.5)  # 8 rows x 16 cols


def coordinate_maps(x_range: tuple[float, float], y_range: tuple[float, float], res: float) -> torch.Tensor:
    """``(1, 2, H, W)``: channel 0 holds each cell centre's x, channel 1 its y (stack convention)."""
    grid = BEVGrid(x_range, y_range, res)
    height, width = grid.shape
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    centres = grid.center_of(np.stack([rows.ravel(), cols.ravel()], 1)).reshape(height, width, 2)
    return torch.tensor(centres, dtype=torch.float32).permute(2, 0, 1)[None]


def test_grid_transform_is_identity_on_equal_grids() -> None:
    features = torch.randn(2, 3, 8, 16)
    transform = BEVGridTransform(((-4.0, 4.0), (-2.0, 2.0)), SMALL_GRID)
    torch.testing.assert_close(transform(features), features)


def test_grid_transform_resamples_metric_positions() -> None:
    """An input map holding (x, y) of each cell centre, resampled to a finer, smaller grid, holds
    the output cells' own centres (bilinear interpolation of a linear ramp is exact inside)."""
    source = coordinate_maps((-8.0, 8.0), (-6.0, 6.0), 1.0)
    transform = BEVGridTransform(((-8.0, 8.0), (-6.0, 6.0)), SMALL_GRID)
    out = transform(source)
    assert out.shape == (1, 2, 8, 16)
    torch.testing.assert_close(out, coordinate_maps((-4.0, 4.0), (-2.0, 2.0), 0.5), atol=1e-5, rtol=0)


def test_grid_transform_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="input_range"):
        BEVGridTransform(((4.0, -4.0), (-2.0, 2.0)), SMALL_GRID)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        BEVGridTransform(((-4.0, 4.0), (-2.0, 2.0)), SMALL_GRID)(torch.zeros(3, 8, 16))


def make_sample(target: torch.Tensor | None, metainfo: dict | None = None, token: str = "s") -> DetSample:
    return DetSample(token=token, class_names=("car",), lidar2global=np.eye(4), gt_boxes=np.zeros((0, 9)),
                     gt_labels=np.zeros(0), gt_bev_seg=target, metainfo=metainfo or {})


def small_head(**kwargs) -> BEVSegmentationHead:
    cfg = dict(type="BEVSegmentationHead", in_channels=4, input_range=((-4.0, 4.0), (-2.0, 2.0)),
               grid=SMALL_GRID, classes=("a", "b"), mid_channels=8, **kwargs)
    return MODELS.build(cfg)


@pytest.mark.parametrize("loss", ["focal", "bce"])
def test_loss_keys_and_gradients(loss: str) -> None:
    head = small_head(loss=loss)
    bev = torch.randn(2, 4, 8, 16, requires_grad=True)
    targets = [torch.rand(2, 8, 16) > 0.5 for _ in range(2)]
    losses = head.loss(bev, [make_sample(t) for t in targets])
    assert sorted(losses) == ["loss_seg_a", "loss_seg_b"]
    total = sum(losses.values())
    assert torch.isfinite(total) and total > 0
    total.backward()
    assert bev.grad is not None and bev.grad.abs().sum() > 0


def test_loss_errors_name_the_problem() -> None:
    head = small_head()
    bev = torch.randn(1, 4, 8, 16)
    with pytest.raises(ValueError, match="no gt_bev_seg"):
        head.loss(bev, [make_sample(None)])
    with pytest.raises(ValueError, match=r"shape \(2, 4, 4\)"):
        head.loss(bev, [make_sample(torch.zeros(2, 4, 4, dtype=torch.bool))])
    stale = {"bev_seg_aug_matrix": np.eye(4), "aug": {"lidar_aug_matrix": np.diag([-1.0, 1, 1, 1]), "flow": ["VF"]}}
    with pytest.raises(ValueError, match="after LoadBEVSegmentation"):
        head.loss(bev, [make_sample(torch.zeros(2, 8, 16, dtype=torch.bool), stale)])
    with pytest.raises(ValueError, match="loss must be"):
        small_head(loss="dice")


def test_predict_fills_probabilities() -> None:
    head = small_head().eval()
    samples = [make_sample(None, token="p0"), make_sample(None, token="p1")]
    with torch.no_grad():
        out = head.predict([torch.randn(2, 4, 8, 16)], samples)
    assert [s.token for s in out] == ["p0", "p1"] and samples[0].pred_bev_seg is None
    probs = out[0].pred_bev_seg
    assert probs.shape == (2, 8, 16) and 0.0 <= probs.min() and probs.max() <= 1.0


class TinyBEVModel(nn.Module):
    """A LiDAR-style BEV model: 'occupancy' channels -> one conv -> the segmentation head."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Conv2d(2, 4, 3, padding=1)
        self.head = small_head()

    def forward(self, occupancy: torch.Tensor) -> torch.Tensor:
        return self.encoder(occupancy)


def test_composed_bev_model_learns_a_layout() -> None:
    """Class a = cells left of a random vertical line, b = a horizontal band; the input shows the
    line and the band's edges (like kerbs in LiDAR).  Sixty steps beat the all-ones constant by far."""
    torch.manual_seed(0)
    inputs, samples = [], []
    for k in range(8):
        split, band = 3 + k % 10, 1 + k % 5
        occupancy = torch.zeros(2, 8, 16)
        occupancy[0, :, split] = 1.0
        occupancy[1, [band, band + 2], :] = 1.0
        target = torch.zeros(2, 8, 16, dtype=torch.bool)
        target[0, :, :split] = True
        target[1, band:band + 3, :] = True
        inputs.append(occupancy)
        samples.append(make_sample(target, token=str(k)))
    batch = torch.stack(inputs)
    model = TinyBEVModel()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(60):
        optimizer.zero_grad()
        sum(model.head.loss(model(batch), samples).values()).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        preds = model.head.predict(model(batch), samples)
    scores = evaluate_bev_seg([p.pred_bev_seg for p in preds], [s.gt_bev_seg for s in samples], ("a", "b"))
    baseline = constant_baseline([s.gt_bev_seg for s in samples], ("a", "b"))["all_ones"]["mIoU"]
    assert baseline < 0.5 and scores["mIoU"] > 0.8, (scores, baseline)
