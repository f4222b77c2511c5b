"""FlatFormer and the SST padded-window baseline: SparseEncoder's call signature, BEV layout
(a voxel at (x, y) lands in row y, column x), gradients, batch isolation, bad input."""
from __future__ import annotations

import pytest
import torch

from perception.models.backbones.flatformer import FlatFormer, SSTWindowBackbone
from perception.registry import MODELS

SHAPE = (5, 24, 32)  # (D, H, W)
SMALL = dict(embed_dims=16, num_heads=2, depth=1, window_shape=(4, 3), out_channels=8)


def make(cls: type, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    extra = {"group_size": 6} if cls is FlatFormer else {}
    return cls(in_channels=4, sparse_shape=SHAPE, **{**SMALL, **extra, **kwargs}).eval()


def voxels(n: int, batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` distinct voxels per batch element, (b, z, y, x) int32, random features."""
    g = torch.Generator().manual_seed(seed)
    volume = SHAPE[0] * SHAPE[1] * SHAPE[2]
    rows = []
    for b in range(batch):
        flat = torch.randperm(volume, generator=g)[:n]
        rows.append(torch.stack([torch.full_like(flat, b), flat // (SHAPE[1] * SHAPE[2]),
                                 flat // SHAPE[2] % SHAPE[1], flat % SHAPE[2]], 1))
    return torch.randn(n * batch, 4, generator=g), torch.cat(rows).to(torch.int32)


@pytest.mark.parametrize("cls", [FlatFormer, SSTWindowBackbone])
@pytest.mark.parametrize("stride", [1, 3])
def test_output_shape_and_bev_cells(cls: type, stride: int) -> None:
    model = make(cls, bev_stride=stride)
    feats, coors = voxels(30, 2, seed=stride)
    with torch.no_grad():
        bev = model(feats, coors, 2)
    assert bev.shape == (2, 8, -(-24 // stride), -(-32 // stride))
    occupied = {(b, y // stride, x // stride) for b, _, y, x in coors.tolist()}
    nonzero = {tuple(cell) for cell in (bev.abs().sum(1) > 0).nonzero().tolist()}
    assert nonzero == occupied


@pytest.mark.parametrize("cls", [FlatFormer, SSTWindowBackbone])
def test_one_voxel_lands_in_row_y_column_x(cls: type) -> None:
    model = make(cls)
    coors = torch.tensor([[0, 2, 3, 17], [1, 4, 20, 1]], dtype=torch.int32)  # (b, z, y, x)
    with torch.no_grad():
        bev = model(torch.ones(2, 4), coors, 2)
    cells = (bev.abs().sum(1) > 0).nonzero().tolist()
    assert cells == [[0, 3, 17], [1, 20, 1]]


@pytest.mark.parametrize("cls", [FlatFormer, SSTWindowBackbone])
def test_gradients_reach_every_parameter_and_the_input(cls: type) -> None:
    model = make(cls, depth=2, bev_stride=2).train()
    feats, coors = voxels(40, 2, seed=4)
    feats.requires_grad_(True)
    bev = model(feats, coors, 2)
    (bev * torch.linspace(-1, 1, bev.numel()).view_as(bev)).sum().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert float(param.grad.abs().sum()) > 0, f"no gradient reaches {name}"
    assert float(feats.grad.abs().sum()) > 0


@pytest.mark.parametrize("cls", [FlatFormer, SSTWindowBackbone])
def test_batch_elements_never_mix(cls: type) -> None:
    model = make(cls, depth=2)
    feats, coors = voxels(25, 2, seed=7)  # 25 voxels: groups of 6 would straddle elements
    with torch.no_grad():
        base = model(feats, coors, 2)
        other = feats.clone()
        other[coors[:, 0] == 1] += 3.0  # perturb element 1 only
        moved = model(other, coors, 2)
        mine = feats.clone()
        mine[coors[:, 0] == 0] += 3.0
        moved_own = model(mine, coors, 2)
    assert torch.allclose(moved[0], base[0], atol=1e-6), "element 1 leaked into element 0"
    assert not torch.allclose(moved[1], base[1], atol=1e-3)
    assert not torch.allclose(moved_own[0], base[0], atol=1e-3)


def test_fewer_voxels_than_a_group_and_empty_input() -> None:
    model = make(FlatFormer, group_size=69)
    feats, coors = voxels(3, 1, seed=1)
    with torch.no_grad():
        bev = model(feats, coors, 3)  # elements 1 and 2 empty
        empty = model(feats[:0], coors[:0], 2)
    assert bev.shape == (3, 8, 24, 32)
    assert int((bev[0].abs().sum(0) > 0).sum()) == len({tuple(c) for c in coors[:, 2:].tolist()})
    assert float(bev[1:].abs().sum()) == 0.0
    assert empty.shape == (2, 8, 24, 32) and float(empty.abs().sum()) == 0.0


def test_registered_and_built_from_a_config() -> None:
    model = MODELS.build(dict(type="FlatFormer", in_channels=5, sparse_shape=[41, 1440, 1440],
                              bev_stride=8, embed_dims=32, num_heads=4, depth=1, out_channels=256))
    assert isinstance(model, FlatFormer) and model.bev_shape == (180, 180)
    assert model.group_size == 69 and model.window_shape == (9, 9)
    sst = MODELS.build(dict(type="SSTWindowBackbone", in_channels=5, sparse_shape=[41, 64, 64],
                            embed_dims=32, num_heads=4, depth=1))
    assert len(sst.blocks[0]) == 2 and len(model.blocks[0]) == 4


def test_bad_input_raises_naming_the_field() -> None:
    model = make(FlatFormer)
    feats, coors = voxels(5, 1, seed=2)
    with pytest.raises(ValueError, match=r"voxel_features must be \(M, 4\)"):
        model(feats[:, :3], coors, 1)
    bad = coors.clone()
    bad[2, 2] = 24  # y == H
    with pytest.raises(ValueError, match=r"coors\[2\]"):
        model(feats, bad, 1)
    with pytest.raises(ValueError, match="batch_size"):
        model(feats, coors, 0)
    with pytest.raises(ValueError, match="multiple of num_heads"):
        make(FlatFormer, embed_dims=10, num_heads=4)
    with pytest.raises(ValueError, match="group_size"):
        make(FlatFormer, group_size=0)
