"""SparseEncoder (mmdet3d-compatible) and the voxelizer / VFE data steps: BEV convention,
shapes of the nuScenes CenterPoint layout, native vs spconv equality, config builds."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from perception.config import load_config
from perception.models import (DynamicSimpleVFE, DynamicVoxelizer, HardSimpleVFE,
                               HardVoxelizer, SparseEncoder)
from perception.registry import MODELS
from perception_ops.sparse.backends import BACKENDS

REPO = Path(__file__).resolve().parents[2]
CENTERPOINT = dict(encoder_channels=((16, 16, 32), (32, 32, 64), (64, 64, 128), (128, 128)),
                   encoder_paddings=((0, 0, 1), (0, 0, 1), (0, 0, [0, 1, 1]), (1, 1)),
                   block_type="basicblock")


def random_voxels(n: int, shape: tuple[int, int, int], batch: int, seed: int, channels: int = 5):
    g = torch.Generator().manual_seed(seed)
    volume = shape[0] * shape[1] * shape[2]
    flat = torch.randint(0, batch * volume, (4 * n,), generator=g).unique()  # sorted, unique
    flat = flat[torch.randperm(flat.numel(), generator=g)[:n]]
    assert flat.numel() == n
    r = flat % volume
    zyx = torch.stack([r // (shape[1] * shape[2]), (r // shape[2]) % shape[1], r % shape[2]], 1)
    coors = torch.cat([(flat // volume)[:, None], zyx], 1).to(torch.int32)
    return torch.rand(n, channels, generator=g), coors


def positive_encoder() -> SparseEncoder:
    """One stage of SubM layers (no xy downsampling), positive weights, identity BN."""
    enc = SparseEncoder(2, (5, 16, 12), base_channels=4, output_channels=3,
                        encoder_channels=((4,),), encoder_paddings=((1,),)).eval()
    with torch.no_grad():
        for p in enc.parameters():
            p.uniform_(0.1, 0.2) if p.dim() > 1 else None
    return enc


def test_voxel_lands_in_its_bev_cell_and_channel():
    enc = positive_encoder()
    # one voxel per batch: (0, z=4, y=3, x=9) and (1, z=4, y=11, x=2)
    coors = torch.tensor([[0, 4, 3, 9], [1, 4, 11, 2]], dtype=torch.int32)
    bev = enc(torch.ones(2, 2), coors, 2)
    # conv_out: kernel (3,1,1) stride (2,1,1), no padding: depth 5 -> 2; z=4 feeds only z'=1
    assert bev.shape == (2, 3 * 2, 16, 12)
    nonzero = (bev != 0).nonzero().tolist()
    assert sorted(nonzero) == sorted([[0, c * 2 + 1, 3, 9] for c in range(3)]
                                     + [[1, c * 2 + 1, 11, 2] for c in range(3)])


def test_centerpoint_layout_shapes_and_keys():
    enc = MODELS.build(dict(type="SparseEncoder", in_channels=5, sparse_shape=[41, 1440, 1440],
                            output_channels=128, **CENTERPOINT)).eval()
    feats, coors = random_voxels(60, (41, 1440, 1440), 1, seed=0)
    with torch.no_grad():
        bev = enc(feats, coors, 1)
    assert bev.shape == (1, 256, 180, 180)  # 128 channels x 2 depth cells, stride 8
    keys = enc.state_dict().keys()
    for key in ("conv_input.0.weight", "conv_input.1.running_mean",
                "encoder_layers.encoder_layer1.0.conv1.weight",
                "encoder_layers.encoder_layer1.0.bn2.weight",
                "encoder_layers.encoder_layer1.2.0.weight",
                "encoder_layers.encoder_layer4.1.conv2.weight", "conv_out.0.weight"):
        assert key in keys, key
    assert enc.encoder_layers.encoder_layer3[2][0].padding == (0, 1, 1)
    assert enc.conv_out[0].weight.shape == (128, 3, 1, 1, 128)


@pytest.mark.skipif(not BACKENDS["spconv"].is_available(), reason="spconv 2.x not installed")
@pytest.mark.parametrize("block_type", ["conv_module", "basicblock"])
def test_native_and_spconv_backends_agree(block_type):
    shape = (21, 40, 40)
    kw = dict(in_channels=5, sparse_shape=shape, base_channels=8, output_channels=16,
              encoder_channels=((8, 16), (16, 16, 32), (32, 32)),
              encoder_paddings=((0, 1), (0, 0, 1), (1, 1)),
              block_type=block_type)
    torch.manual_seed(0)
    ref = SparseEncoder(sparseconv_backend="spconv", **kw)
    ours = SparseEncoder(**kw)
    ours.load_state_dict(ref.state_dict(), strict=True)
    feats, coors = random_voxels(400, shape, 2, seed=1)
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # the CPU-only spconv wheel is wrong with several threads
    try:
        for mode in ("eval", "train"):
            getattr(ref, mode)(), getattr(ours, mode)()
            a, b = ref(feats, coors, 2), ours(feats, coors, 2)
            assert a.shape == b.shape == (2, 16 * 2, 10, 10)
            assert torch.allclose(a, b, atol=1e-4, rtol=1e-4), mode
    finally:
        torch.set_num_threads(old)


def test_bad_input_is_rejected():
    enc = positive_encoder()
    with pytest.raises(ValueError, match=r"voxel_features must be \(M, 2\)"):
        enc(torch.ones(3, 4), torch.zeros(3, 4, dtype=torch.int32), 1)
    with pytest.raises(ValueError, match="out of range"):
        enc(torch.ones(1, 2), torch.tensor([[0, 9, 0, 0]], dtype=torch.int32), 1)
    with pytest.raises(ValueError, match="block_type"):
        SparseEncoder(2, (5, 8, 8), block_type="bottleneck")
    with pytest.raises(ValueError, match="inplanes == planes"):  # 8 -> 16 needs a conv
        SparseEncoder(2, (5, 8, 8), base_channels=8, encoder_channels=((8,), (16, 16)),
                      encoder_paddings=((1,), (1, 1)), block_type="basicblock")


@pytest.mark.parametrize("name", ["sparse_encoder_synthetic.py", "sparse_encoder_nuscenes.py"])
def test_configs_build_through_registry(name):
    cfg = load_config(REPO / "configs" / "sparse_encoder" / name)
    enc = MODELS.build(cfg.model)
    assert isinstance(enc, SparseEncoder) and enc.block_type == "basicblock"
    vox = MODELS.build(cfg.data_preprocessor)
    assert isinstance(vox, HardVoxelizer)
    # sparse_shape = grid (D, H, W) + 1 in z, as mmdet3d
    assert list(enc.sparse_shape) == [vox.grid_shape[0] + 1, *vox.grid_shape[1:]]
    assert isinstance(MODELS.build(cfg.voxel_encoder), HardSimpleVFE)


def test_voxelizers_and_mean_vfes_agree():
    pts = torch.tensor([[0.05, 0.05, 0.1, 1.0], [0.06, 0.02, 0.15, 3.0],  # same cell
                        [0.95, 0.45, 0.3, 5.0], [9.0, 0.0, 0.0, 1.0]])  # last out of range
    hard = HardVoxelizer([0.1, 0.1, 0.2], [0, 0, 0, 1, 1, 0.4], max_num_points=4,
                         max_voxels=(10, 10)).eval()
    out = hard([pts, pts[:1]])
    assert out["coors"].tolist() == [[0, 0, 0, 0], [0, 1, 4, 9], [1, 0, 0, 0]]
    mean = HardSimpleVFE(num_features=4)(out["voxels"], out["num_points"], out["coors"])
    assert torch.allclose(mean[0], pts[:2].mean(0)) and torch.allclose(mean[2], pts[0])
    dyn = DynamicVoxelizer([0.1, 0.1, 0.2], [0, 0, 0, 1, 1, 0.4])([pts, pts[:1]])
    assert dyn["coors"][3].tolist() == [-1, -1, -1, -1]
    feats, coors = DynamicSimpleVFE()(dyn["points"], dyn["coors"])
    assert torch.equal(coors, out["coors"]) and torch.allclose(feats, mean)
