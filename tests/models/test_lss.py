"""Camera branch: GeneralizedLSSFPN, LSSTransform (BEV convention shared with the LiDAR branch,
plan cache, gradients), DepthLSSTransform's LiDAR depth image, and the fusers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from perception.models.fusers import AddFuser, ConvFuser
from perception.models.necks.lss_fpn import GeneralizedLSSFPN
from perception.models.voxel_encoders import HardVoxelizer
from perception.models.vtransforms import CameraInputs, DepthLSSTransform, LSSTransform, project_depth
from perception.registry import MODELS
from perception.structures import BEVGrid

# A camera at the LiDAR origin looking along +y (nuScenes' CAM_FRONT axis): camera x -> +x,
# camera y (down) -> -z, camera z (optical axis) -> +y.  32 x 64 image, stride-8 features.
CAM2LIDAR = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)
FX, CX, CY = 20.0, 32.0, 16.0
LSS = dict(in_channels=8, out_channels=4, image_size=(32, 64), feature_size=(4, 8), xbound=(-4.8, 4.8, 0.3),
           ybound=(-4.8, 4.8, 0.3), zbound=(-10.0, 10.0, 20.0), dbound=(1.0, 5.0, 0.5))


def cameras(img_aug: np.ndarray | None = None, lidar_aug: np.ndarray | None = None) -> CameraInputs:
    cam2img = np.array([[FX, 0, CX], [0, FX, CY], [0, 0, 1.0]])
    lidar2img = np.eye(4)
    lidar2img[:3, :3] = cam2img
    lidar2img = lidar2img @ np.linalg.inv(CAM2LIDAR)
    t = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    return CameraInputs(cam2img=t(cam2img)[None, None], cam2lidar=t(CAM2LIDAR)[None, None],
                        lidar2img=t(lidar2img)[None, None],
                        img_aug=t(np.eye(4) if img_aug is None else img_aug)[None, None],
                        lidar_aug=t(np.eye(4) if lidar_aug is None else lidar_aug)[None])


def frustum_point(row: int, col: int, depth: float) -> np.ndarray:
    """LiDAR-frame point of feature pixel (row, col) at ``depth``, by hand: BEVFusion's frustum
    spreads the 8 columns over pixels [0, 63] and the 4 rows over [0, 31]."""
    u, v = col * 63 / 7, row * 31 / 3
    cam = np.array([(u - CX) * depth / FX, (v - CY) * depth / FX, depth, 1.0])
    return (CAM2LIDAR @ cam)[:3]


def test_lss_fpn_concatenates_top_down() -> None:
    fpn = GeneralizedLSSFPN([16, 32, 64], 24, num_outs=2).eval()
    feats = [torch.randn(2, 16, 16, 32), torch.randn(2, 32, 8, 16), torch.randn(2, 64, 4, 8)]
    outs = fpn(feats)
    assert [tuple(o.shape) for o in outs] == [(2, 24, 16, 32), (2, 24, 8, 16)]
    assert fpn.lateral_convs[1].conv.in_channels == 32 + 64 and fpn.lateral_convs[0].conv.in_channels == 16 + 24
    with pytest.raises(ValueError, match="num_outs"):
        GeneralizedLSSFPN([16, 32, 64], 24, num_outs=3)
    with pytest.raises(ValueError, match="input 1"):
        fpn([feats[0], torch.randn(2, 31, 8, 16), feats[2]])


def test_camera_and_lidar_branches_put_a_point_in_the_same_bev_cell() -> None:
    row, col, k = 2, 6, 5  # feature pixel and depth bin 1 + 0.5 * 5 = 3.5 m
    point = frustum_point(row, col, 1.0 + 0.5 * k)
    fine, coarse = BEVGrid((-4.8, 4.8), (-4.8, 4.8), 0.3), BEVGrid((-4.8, 4.8), (-4.8, 4.8), 0.6)
    # camera: one-hot depth at bin k and context only at that pixel -> exactly one pooled cell
    lss = LSSTransform(**LSS).eval()
    depth = torch.zeros(1, 1, lss.num_bins, 4, 8)
    depth[0, 0, k, row, col] = 1.0
    context = torch.zeros(1, 1, 4, 8, 4)
    context[0, 0, row, col] = torch.tensor([1.0, 2.0, 3.0, 4.0])
    bev = lss.pool(depth.flatten(0, 1), context.permute(0, 1, 4, 2, 3).flatten(0, 1), lss.plan(cameras()), 1, 1)
    assert bev.shape == (1, 4, 32, 32)
    hits = (bev[0, 0] != 0).nonzero().tolist()
    assert hits == [fine.cell_of(point[:2])[0].tolist()]
    assert torch.equal(bev[0, :, hits[0][0], hits[0][1]], torch.tensor([1.0, 2.0, 3.0, 4.0]))
    # LiDAR: the same point through the 0.075 m voxelizer and a stride-8 sparse encoder
    rng = [-4.8, -4.8, -5.0, 4.8, 4.8, 3.0]
    voxels = HardVoxelizer(voxel_size=[0.075, 0.075, 0.2], point_cloud_range=rng, max_num_points=4, max_voxels=10)(
        [torch.tensor([[*point, 1.0]], dtype=torch.float32)])
    b, _, y, x = voxels["coors"][0].tolist()
    expected = coarse.cell_of(point[:2])[0].tolist()
    assert [y // 8, x // 8] == expected == [hits[0][0] // 2, hits[0][1] // 2]
    encoder = MODELS.build(dict(type="SparseEncoder", in_channels=4, sparse_shape=[41, 128, 128], output_channels=8,
                                base_channels=4, encoder_channels=[[4], [4, 4], [4, 4], [4, 4]],
                                encoder_paddings=[[1], [1, 1], [1, 1], [1, 1]], block_type="conv_module")).eval()
    with torch.no_grad():
        for p in encoder.parameters():
            if p.dim() > 1:
                p.uniform_(0.1, 0.2)
        lidar_bev = encoder(torch.ones(1, 4), voxels["coors"], 1)
    assert lidar_bev.shape[-2:] == (16, 16) == tuple(LSSTransform(**{**LSS, "downsample": 2}).eval()(
        torch.randn(1, 1, 8, 4, 8), cameras()).shape[-2:])
    support = (lidar_bev[0].abs().sum(0) != 0).nonzero().tolist()
    assert expected in support  # strided sparse convs may also touch the next cell up
    assert all(0 <= r - expected[0] <= 1 and 0 <= c - expected[1] <= 1 for r, c in support)


def test_lss_forward_caches_the_plan_and_trains() -> None:
    lss = LSSTransform(**{**LSS, "downsample": 2})
    feats = torch.randn(1, 1, 8, 4, 8)
    out = lss(feats, cameras())
    assert out.shape == (1, 4, 16, 16) and lss.num_bins == 8
    out.square().sum().backward()
    assert lss.depthnet.weight.grad is not None and lss.depthnet.weight.grad.abs().sum() > 0
    lss(feats, cameras())
    assert (lss.plan_cache.misses, lss.plan_cache.hits) == (1, 1)
    lss(feats, cameras(img_aug=np.diag([0.5, 0.5, 1.0, 1.0])))
    assert lss.plan_cache.misses == 2
    with pytest.raises(ValueError, match="image features"):
        lss(torch.randn(1, 1, 8, 4, 9), cameras())


def test_default_depth_bins_are_1_to_60_m_by_half_metres() -> None:
    lss = LSSTransform(in_channels=8, out_channels=4, image_size=(256, 704), feature_size=(32, 88),
                       xbound=(-54, 54, 0.3), ybound=(-54, 54, 0.3), zbound=(-10, 10, 20))
    assert lss.num_bins == 118 and lss.bev_shape == (360, 360)
    assert float(lss.frustum[0, 0, 0, 2]) == 1.0 and float(lss.frustum[-1, 0, 0, 2]) == 59.5


def test_project_depth_follows_both_augmentations() -> None:
    point = frustum_point(2, 6, 3.5)
    u, v = 54.0, 31 / 3 * 2
    depth = project_depth([torch.tensor([[*point, 0.0]], dtype=torch.float32)], cameras(), (32, 64))
    assert depth.shape == (1, 1, 1, 32, 64)
    assert (depth != 0).nonzero().tolist() == [[0, 0, 0, int(v), int(u)]]
    assert float(depth[0, 0, 0, int(v), int(u)]) == pytest.approx(3.5)
    # points rotated by the LiDAR augmentation and an image scaled by 0.5 + shifted 3 px
    angle = 0.3
    rot = np.eye(4)
    rot[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    img_aug = np.diag([0.5, 0.5, 1.0, 1.0])
    img_aug[0, 3] = 3.0
    moved = (rot[:3, :3] @ point)[None]
    depth = project_depth([torch.tensor(moved, dtype=torch.float32)], cameras(img_aug, rot), (32, 64))
    assert (depth != 0).nonzero().tolist() == [[0, 0, 0, int(v * 0.5), int(u * 0.5 + 3)]]


def test_depth_lss_uses_the_lidar_depth() -> None:
    torch.manual_seed(0)
    lss = DepthLSSTransform(**LSS, depth_channels=8).eval()
    feats = torch.randn(1, 1, 8, 4, 8)
    cams = cameras()
    near = lss(feats, cams, [torch.tensor([[*frustum_point(2, 6, 3.5), 0.0]], dtype=torch.float32)])
    empty = lss(feats, cams, [torch.zeros(0, 4)])
    assert near.shape == (1, 4, 32, 32) and not torch.allclose(near, empty)
    with pytest.raises(ValueError, match="point cloud"):
        lss(feats, cams, None)


def test_fusers() -> None:
    cam, lidar = torch.randn(2, 3, 8, 8), torch.randn(2, 5, 8, 8)
    conv = ConvFuser([3, 5], 6).eval()
    assert conv([cam, lidar]).shape == (2, 6, 8, 8)
    assert conv.fuse.conv.in_channels == 8
    add = AddFuser([3, 5], 6).eval()
    out = add([cam, lidar])
    expected = (add.transforms[0](cam) + add.transforms[1](lidar)) / 2
    assert torch.allclose(out, expected, atol=1e-6)
    with pytest.raises(ValueError, match="one BEV grid"):
        conv([cam, torch.randn(2, 5, 8, 9)])
    with pytest.raises(ValueError, match="channels"):
        conv([lidar, cam])
