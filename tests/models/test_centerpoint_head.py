"""CenterHead: BEV target geometry, encode -> decode round trip through predict (both NMS
types), losses (values, NaN velocities, training progress) and clear errors on bad input."""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from perception.models.dense_heads import CenterHead
from perception.models.losses import GaussianFocalLoss, L1Loss
from perception.registry import MODELS
from perception.structures import NUSCENES_CLASSES, Boxes3D

PC_RANGE = [-8.0, -4.0, -3.0, 8.0, 8.0, 3.0]  # 0.25 m voxels, stride 2: H=24 rows, W=32 cols
VOXEL = [0.25, 0.25, 0.2]
SAMPLE_CLASSES = ("bicycle", "car", "truck", "pedestrian")  # not the tasks' order on purpose
NAN = float("nan")
HEAD = dict(
    type="CenterHead", in_channels=[16], share_conv_channel=16,
    tasks=[dict(num_class=1, class_names=["car"]),
           dict(num_class=2, class_names=["pedestrian", "bicycle"])],
    common_heads=dict(reg=(2, 2), height=(1, 2), dim=(3, 2), rot=(2, 2), vel=(2, 2)),
    bbox_coder=dict(type="CenterPointBBoxCoder", pc_range=PC_RANGE[:2], max_num=100,
                    post_center_range=[-10, -6, -5, 10, 10, 5], score_threshold=0.1,
                    out_size_factor=2, voxel_size=VOXEL[:2], code_size=9),
    separate_head=dict(type="SeparateHead", init_bias=-2.19, final_kernel=3),
    train_cfg=dict(point_cloud_range=PC_RANGE, grid_size=[64, 48, 30], voxel_size=VOXEL,
                   out_size_factor=2, dense_reg=1, gaussian_overlap=0.1, max_objs=50,
                   min_radius=2, code_weights=[1.0] * 8 + [0.2, 0.2]),
    test_cfg=dict(post_center_limit_range=[-10, -6, -5, 10, 10, 5], score_threshold=0.1,
                  out_size_factor=2, voxel_size=VOXEL[:2], nms_type="circle",
                  min_radius=[4, 0.175], pre_max_size=1000, post_max_size=83, nms_thr=0.2))


@dataclass
class FakeSample:
    """The fields of DetSample the head reads."""

    gt_boxes: torch.Tensor
    gt_labels: torch.Tensor
    class_names: tuple[str, ...] = SAMPLE_CLASSES
    token: str = "sample-0"


def sample(rows: list[list[float]], labels: list[int], **kw) -> FakeSample:
    return FakeSample(torch.tensor(rows, dtype=torch.float32).reshape(-1, 9),
                      torch.tensor(labels, dtype=torch.int64), **kw)


MERGED = ("bbox_coder", "train_cfg", "test_cfg")


def build(**overrides) -> CenterHead:
    """The test head; dict overrides of MERGED keys update the base dict, others replace."""
    cfg = copy.deepcopy(HEAD)
    for key, value in overrides.items():
        cfg[key] = dict(cfg[key], **value) if key in MERGED and value is not None else value
    torch.manual_seed(0)
    return MODELS.build(cfg)


ROUND_TRIP = sample([[3.3, -1.7, 0.4, 4.2, 1.9, 1.6, 3.14159, 2.0, -1.0],       # car, yaw ~ +pi
                     [-5.1, 6.2, -0.8, 4.5, 2.0, 1.7, -3.14159, NAN, NAN],     # car, yaw ~ -pi
                     [0.7, 2.2, 0.1, 0.7, 0.6, 1.8, math.pi - 1e-5, NAN, NAN],  # pedestrian
                     [-2.3, -3.1, 0.0, 1.8, 0.6, 1.2, -1.0, 0.5, 0.2],         # bicycle
                     [6.0, 6.0, 0.0, 8.0, 2.5, 3.0, 0.0, 0.0, 0.0]],           # truck: no task
                    [1, 1, 3, 0, 2])


def test_heatmap_peak_at_the_box_cell() -> None:
    head = build()
    targets = head.get_targets([sample([[3.3, -1.7, 0.4, 4.2, 1.9, 1.6, 0.3, 1, 2]], [1])])
    car = targets[0]
    assert car.heatmap.shape == (1, 1, 24, 32)
    row, col = 4, 22  # rows from y: (-1.7 + 4) / 0.5 = 4.6; cols from x: (3.3 + 8) / 0.5 = 22.6
    assert divmod(int(car.heatmap[0, 0].argmax()), 32) == (row, col)
    assert car.heatmap[0, 0, row, col] == 1 and (car.heatmap == 1).sum() == 1
    assert car.ind[0, 0] == row * 32 + col and car.mask[0].tolist() == [True] + [False] * 49
    assert car.anno_box[0, 0].tolist() == pytest.approx(
        [0.6, 0.6, 0.4, math.log(4.2), math.log(1.9), math.log(1.6), math.sin(0.3),
         math.cos(0.3), 1.0, 2.0], abs=1e-5)
    assert targets[1].heatmap.sum() == 0 and not targets[1].mask.any()  # other task empty


def test_targets_skip_out_of_grid_and_respect_max_objs() -> None:
    head = build(train_cfg=dict(max_objs=2))
    boxes = [[-8.2, 0, 0, 2, 2, 2, 0, 0, 0], [1, 1, 0, 2, 2, 2, 0, 0, 0],
             [4, 4, 0, 2, 2, 2, 0, 0, 0]]
    car = head.get_targets([sample(boxes, [1, 1, 1])])[0]
    assert car.mask[0].tolist() == [False, True]  # first is left of the grid, third over max
    assert (car.heatmap == 1).sum() == 1


def perfect_preds(head: CenterHead, samples: list[FakeSample]) -> list[dict[str, torch.Tensor]]:
    """Head outputs that are exactly the targets: logit +-20 heatmaps, regression at centres."""
    preds = []
    for target in head.get_targets(samples):
        batch, _, height, width = target.heatmap.shape
        maps = torch.zeros(batch, 10, height * width)
        for b in range(batch):
            ind = target.ind[b][target.mask[b]]
            maps[b][:, ind] = target.anno_box[b][target.mask[b]].T
        maps = maps.view(batch, 10, height, width)
        preds.append(dict(heatmap=torch.where(target.heatmap == 1, 20.0, -20.0),
                          reg=maps[:, 0:2], height=maps[:, 2:3], dim=maps[:, 3:6],
                          rot=maps[:, 6:8], vel=maps[:, 8:10]))
    return preds


@pytest.mark.parametrize("nms_type", ["circle", "rotate"])
def test_encode_decode_round_trip(nms_type: str) -> None:
    head = build(test_cfg=dict(nms_type=nms_type))
    empty = sample([], [], token="empty")
    samples = [ROUND_TRIP, empty]
    out = head.predict(perfect_preds(head, samples), samples)
    assert len(out) == 2 and isinstance(out[0], Boxes3D) and len(out[1]) == 0
    pred = out[0]
    gt = ROUND_TRIP.gt_boxes.double().numpy()[:4]
    order = np.lexsort((pred.data[:, 0], pred.labels))
    expected = np.lexsort((gt[:, 0], ROUND_TRIP.gt_labels.numpy()[:4]))
    assert pred.labels[order].tolist() == ROUND_TRIP.gt_labels.numpy()[:4][expected].tolist()
    got, want = pred.data[order], gt[expected]
    np.testing.assert_allclose(got[:, [0, 1, 2, 3, 4, 5]], want[:, [0, 1, 2, 3, 4, 5]], atol=1e-4)
    yaw_error = (got[:, 6] - want[:, 6] + np.pi) % (2 * np.pi) - np.pi
    assert np.abs(yaw_error).max() < 1e-4
    assert (got[:, 6] >= -np.pi).all() and (got[:, 6] < np.pi).all()
    np.testing.assert_allclose(got[:, 7:], want[:, 7:], atol=1e-4)  # NaN where NaN
    assert np.isnan(got[:, 7:]).sum() == 4
    assert pred.scores is not None and (pred.scores > 0.99).all()


def test_predict_suppresses_duplicates() -> None:
    head = build(test_cfg=dict(nms_type="rotate"))
    one = sample([[3.3, -1.7, 0.4, 4.2, 1.9, 1.6, 0.2, 0, 0]], [1])
    preds = perfect_preds(head, [one])
    heat = preds[0]["heatmap"]
    heat[0, 0, 4, 23] = 5.0  # a second, weaker peak next door: same box shifted 0.5 m
    for name in ("height", "dim", "rot", "vel"):
        preds[0][name][0, :, 4, 23] = preds[0][name][0, :, 4, 22]
    assert len(head.predict(preds, [one])[0]) == 1
    head.test_cfg["nms_thr"] = 0.95  # the shifted copy overlaps ~0.78: now both survive
    boxes = head.predict(preds, [one])[0]
    assert len(boxes) == 2 and boxes.scores[0] > boxes.scores[1]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny convs gain nothing from threads, and OpenMP spin-waits make them ~50x slower
    when the test machine's cores are busy; restore the setting afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def total(losses: dict[str, torch.Tensor]) -> torch.Tensor:
    return sum(losses.values())


def test_loss_decreases_when_training_the_head() -> None:
    head = build()
    torch.manual_seed(1)
    feats = [torch.randn(2, 16, 24, 32)]
    samples = [ROUND_TRIP, sample([[1.0, 1.0, 0.0, 4.0, 2.0, 1.5, 0.5, 1.0, 0.0],
                                   [-4.0, 3.0, 0.2, 0.8, 0.7, 1.7, -2.0, NAN, NAN]],
                                  [1, 3], token="sample-1")]
    optimizer = torch.optim.Adam(head.parameters(), lr=3e-3)
    history = []
    for _ in range(30):
        losses = head.loss(head(feats), samples)
        assert set(losses) == {"task0.loss_heatmap", "task0.loss_bbox",
                               "task1.loss_heatmap", "task1.loss_bbox"}
        loss = total(losses)
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    print("losses", [round(v, 3) for v in history])
    assert history[-1] < 0.5 * history[0], history


def test_nan_velocity_is_masked() -> None:
    head = build().eval()
    feats = [torch.randn(1, 16, 24, 32, requires_grad=True)]
    box = [2.0, 1.0, 0.0, 4.0, 2.0, 1.5, 0.5]
    nan_loss = head.loss(head(feats), [sample([box + [NAN, NAN]], [1])])
    assert all(torch.isfinite(v) for v in nan_loss.values())
    total(nan_loss).backward()
    assert torch.isfinite(feats[0].grad).all() and feats[0].grad.abs().sum() > 0
    # same as a known velocity whose code weight is zero
    zero_vel = build(train_cfg=dict(code_weights=[1.0] * 8 + [0.0, 0.0])).eval()
    known = zero_vel.loss(zero_vel(feats), [sample([box + [5.0, -3.0]], [1])])
    assert known["task0.loss_bbox"].item() == pytest.approx(nan_loss["task0.loss_bbox"].item())
    with_vel = head.loss(head(feats), [sample([box + [5.0, -3.0]], [1])])
    assert with_vel["task0.loss_bbox"] > nan_loss["task0.loss_bbox"]


def test_losses_hand_values() -> None:
    pred = torch.tensor([[0.9, 0.2], [0.5, 0.1]])
    target = torch.tensor([[1.0, 0.5], [0.0, 0.0]])
    expected = (-math.log(0.9) * 0.1 ** 2 - math.log(0.8) * 0.2 ** 2 * 0.5 ** 4
                - math.log(0.5) * 0.5 ** 2 - math.log(0.9) * 0.1 ** 2)
    assert GaussianFocalLoss()(pred, target, avg_factor=1).item() == pytest.approx(expected, 1e-5)
    l1 = L1Loss(loss_weight=0.25)
    weight = torch.tensor([[1.0, 0.0], [2.0, 1.0]])
    value = l1(pred, torch.tensor([[1.0, NAN], [0.0, 0.0]]), weight, avg_factor=2)
    assert value.item() == pytest.approx(0.25 * (0.1 + 2 * 0.5 + 0.1) / 2, rel=1e-5)


def test_bad_input_raises_clear_errors() -> None:
    head = build()
    with pytest.raises(ValueError, match="feature has 8 channels, in_channels is 16"):
        head([torch.zeros(1, 8, 24, 32)])
    with pytest.raises(ValueError, match="one \\(B, C, H, W\\) tensor"):
        head([torch.zeros(1, 16, 24, 32)] * 2)
    preds = head([torch.zeros(1, 16, 20, 32)])
    with pytest.raises(ValueError, match="feature map is \\(20, 32\\).*\\(24, 32\\)"):
        head.loss(preds, [ROUND_TRIP])
    preds = head([torch.zeros(1, 16, 24, 32)])
    wrong_classes = sample([], [], class_names=("car", "truck"))
    with pytest.raises(ValueError, match="class 'pedestrian' is not in the data sample"):
        head.loss(preds, [wrong_classes])
    with pytest.raises(ValueError, match="class 'pedestrian' is not in the data sample"):
        head.predict(preds, [wrong_classes])
    with pytest.raises(ValueError, match="sample bad: gt_boxes has non-finite"):
        head.loss(preds, [sample([[NAN, 0, 0, 1, 1, 1, 0, 0, 0]], [1], token="bad")])
    with pytest.raises(ValueError, match="gt_labels outside"):
        head.loss(preds, [sample([[0, 0, 0, 1, 1, 1, 0, 0, 0]], [7])])


@pytest.mark.parametrize("overrides, message", [
    (dict(tasks=[dict(num_class=2, class_names=["car"])]), "num_class=2 must equal"),
    (dict(tasks=[dict(num_class=1, class_names=["car"])] * 2), "appears in several tasks"),
    (dict(test_cfg=dict(nms_type="soft")), "nms_type must be one of"),
    (dict(test_cfg=dict(min_radius=[4])), "one value per task"),
    (dict(train_cfg=dict(code_weights=[1.0] * 9)), "code_weights has 9 values"),
    (dict(test_cfg=dict(voxel_size=[0.1, 0.1])), "test_cfg.voxel_size.*disagrees"),
    (dict(train_cfg=dict(grid_size=[64, 64, 30])), "grid_size.*does not match"),
    (dict(train_cfg=dict(out_size_factor=None)), "train_cfg lacks \\[.out_size_factor.\\]"),
    (dict(train_cfg=dict(point_cloud_range=[-8.0, -8.0, -3.0, 8.0, 8.0, 3.0])),
     "point_cloud_range.*disagrees"),
    (dict(common_heads=dict(reg=(2, 2), height=(1, 2), dim=(3, 2), vel=(2, 2))),
     "missing \\['rot'"),
    (dict(bbox_coder=dict(code_size=7)), "code_size=7 but common_heads has 'vel'"),
])
def test_bad_config_raises(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(**overrides)


def test_mmdet3d_nuscenes_layout() -> None:
    """mmdet3d's nuScenes CenterPoint head config builds, keeps mmdet3d's state-dict keys
    and initializes the heatmap bias to -2.19."""
    tasks = [["car"], ["truck", "construction_vehicle"], ["bus", "trailer"], ["barrier"],
             ["motorcycle", "bicycle"], ["pedestrian", "traffic_cone"]]
    head = build(in_channels=sum([256, 256]),
                 tasks=[dict(num_class=len(t), class_names=t) for t in tasks],
                 bbox_coder=dict(pc_range=[-54.0, -54.0], voxel_size=[0.075, 0.075],
                                 out_size_factor=8, post_center_range=[-61.2] * 2 + [-10.0]
                                 + [61.2] * 2 + [10.0]),
                 share_conv_channel=64, train_cfg=None,
                 test_cfg=dict(voxel_size=[0.075, 0.075], out_size_factor=8,
                               min_radius=[4, 12, 10, 1, 0.85, 0.175]))
    keys = set(head.state_dict())
    for key in ("shared_conv.conv.weight", "shared_conv.bn.running_mean",
                "task_heads.0.heatmap.0.conv.weight", "task_heads.0.heatmap.0.bn.weight",
                "task_heads.0.heatmap.1.bias", "task_heads.5.vel.1.weight",
                "task_heads.3.reg.0.conv.weight"):
        assert key in keys, key
    assert "shared_conv.conv.bias" not in keys  # bias="auto" with BN
    assert torch.all(head.task_heads[2].heatmap[-1].bias == -2.19)
    out = head.eval()([torch.randn(1, 512, 16, 16)])
    assert len(out) == 6 and out[1]["heatmap"].shape == (1, 2, 16, 16)
    assert {k: v.shape[1] for k, v in out[0].items()} == dict(
        reg=2, height=1, dim=3, rot=2, vel=2, heatmap=1)
    fake = sample([], [], class_names=NUSCENES_CLASSES)
    boxes = head.predict(out, [fake])[0]
    assert set(boxes.labels.tolist()) <= set(range(10)) and len(boxes) <= 6 * 83


@pytest.mark.parametrize("dense_reg", [1, 9, 25])
def test_dense_regression_targets_point_every_cell_at_the_true_centre(dense_reg: int) -> None:
    """dense_reg = k * k supervises the k x k cells around each centre; decoding any of them
    with its target offset gives the box centre; a neighbour cell that is another object's
    centre keeps that object's own target, and the heatmap does not change."""
    boxes = [[3.3, -1.7, 0.4, 4.2, 1.9, 1.6, 0.3, 1, 2],
             [3.9, -1.2, 0.4, 4.2, 1.9, 1.6, 0.3, 1, 2],     # centre one cell right of the first
             [-7.9, 7.9, 0.0, 4.0, 2.0, 1.5, 0.0, 0, 0]]     # in the corner cell: neighbours clipped
    head = build(train_cfg=dict(dense_reg=dense_reg))
    target = head.get_targets([sample(boxes, [1, 1, 1])])[0]
    reference = build().get_targets([sample(boxes, [1, 1, 1])])[0]
    assert torch.equal(target.heatmap, reference.heatmap)
    mask = target.mask[0]
    ind, anno = target.ind[0][mask], target.anno_box[0][mask]
    side = round(dense_reg ** 0.5)
    # the corner box keeps only its in-grid neighbours; the two neighbours share a few cells
    assert len(set(ind.tolist())) == len(ind)
    assert int(mask.sum()) <= 3 * dense_reg and (dense_reg == 1 or int(mask.sum()) > 2 * side)
    rows, cols = ind // 32, ind % 32
    x = (cols + anno[:, 0]) * 0.5 - 8.0
    y = (rows + anno[:, 1]) * 0.5 - 4.0
    centres = torch.tensor(boxes)[:, :2]
    distance = (torch.stack([x, y], 1)[:, None] - centres[None]).norm(dim=2).min(1).values
    assert distance.max() < 1e-4
    # each box's own centre cell regresses its own centre (not a neighbour's)
    for box in boxes:
        cell = int((box[1] + 4.0) // 0.5) * 32 + int((box[0] + 8.0) // 0.5)
        at = (ind == cell).nonzero()[0, 0]
        assert torch.allclose(torch.stack([x[at], y[at]]), torch.tensor(box[:2]), atol=1e-4)


def test_dense_reg_must_be_an_odd_square() -> None:
    head = build(train_cfg=dict(dense_reg=4))
    with pytest.raises(ValueError, match="dense_reg"):
        head.get_targets([sample([[3.3, -1.7, 0.4, 4.2, 1.9, 1.6, 0.3, 1, 2]], [1])])
