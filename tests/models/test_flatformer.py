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


@pytest.mark.parametrize("conv_pos", [False, True])
def test_slot_order_path_equals_the_gather_path_outputs_and_gradients(conv_pos: bool) -> None:
    """FlatFormer's fast path (features kept in slot order, one gather per layer) computes
    what the per-layer gather / attend / scatter path computes: outputs and gradients (with
    ``conv_pos`` the fast path leaves slot order at each block start)."""
    fast = make(FlatFormer, depth=2, bev_stride=2, conv_pos=conv_pos)
    slow = make(FlatFormer, depth=2, bev_stride=2, keep_sorted=False, conv_pos=conv_pos)
    slow.load_state_dict(fast.state_dict())
    feats, coors = voxels(40, 3, seed=11)
    keep = (coors[:, 0] != 1) | (torch.arange(coors.shape[0]) % 10 == 0)  # element 1: 4 voxels
    feats, coors = feats[keep], coors[keep]
    coors[coors[:, 0] == 2, 0] = 3  # element 2 empty, element 3 full
    with torch.no_grad():
        a, b = fast(feats, coors, 4), slow(feats, coors, 4)
    assert float(a.abs().sum()) > 0 and torch.allclose(a, b, atol=1e-5), float((a - b).abs().max())
    weight = torch.linspace(-1, 1, a.numel()).view_as(a)
    for model in (fast.train(), slow.train()):
        (model(feats, coors, 4) * weight).sum().backward()
    for (name, p), q in zip(fast.named_parameters(), slow.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-4, rtol=1e-4), name


def test_pillar_pooling_and_positions_equal_their_direct_formulas() -> None:
    """The sort + segment pooling equals scatter pooling (voxel_pooling), and the table
    positional encoding equals evaluating sin / cos per pillar."""
    from perception_ops.voxelize import voxel_pooling
    from perception_ops.voxelize.cpu import pool_torch

    from perception.models.backbones.flatformer_blocks import (PillarEmbedding,
                                                               SinePositionalEncoding2D)
    feats, coors = voxels(300, 2, seed=5)
    coors = coors.long()
    mean, peak, pillars = PillarEmbedding(4, 8, SHAPE[0], 3).pool(feats, coors)
    extra = torch.stack([(coors[:, 1] + 0.5) / SHAPE[0], (coors[:, 3] % 3 + 0.5) / 3,
                         (coors[:, 2] % 3 + 0.5) / 3], dim=1)
    rows = torch.cat([feats, extra], dim=1)
    want_mean, want_pillars, inverse = voxel_pooling(
        rows, torch.stack([coors[:, 0], coors[:, 2] // 3, coors[:, 3] // 3], dim=1), "mean")
    assert torch.equal(pillars, want_pillars) and pillars.shape[0] < coors.shape[0]
    assert torch.allclose(mean, want_mean, atol=1e-6)
    assert torch.equal(peak, pool_torch(rows, inverse, inverse >= 0, mean.shape[0], "max"))
    pe = SinePositionalEncoding2D(18)(pillars, torch.float32)  # 18 % 4 != 0: zero padded
    freq = 10000.0 ** (-torch.arange(4, dtype=torch.float32) / 4)
    ax, ay = pillars[:, 2, None].float() * freq, pillars[:, 1, None].float() * freq
    want = torch.cat([ax.sin(), ax.cos(), ay.sin(), ay.cos(), torch.zeros(len(pillars), 2)], 1)
    assert torch.equal(pe, want)
    assert SinePositionalEncoding2D(8)(pillars[:0], torch.float32).shape == (0, 8)


def test_sst_size_buckets_compute_what_padding_to_the_fullest_computes() -> None:
    """SST's drop-level buckets only change how much padding is projected, not the result."""
    padded = make(SSTWindowBackbone, depth=2)
    bucketed = make(SSTWindowBackbone, depth=2, buckets=(2, 4))
    bucketed.load_state_dict(padded.state_dict())
    feats, coors = voxels(60, 2, seed=9)
    pillars = padded.embed(feats, coors.long())[1]
    lay_p, lay_b = padded.layouts(pillars, 2)[1], bucketed.layouts(pillars, 2)[1]
    assert len(lay_b.buckets) > 1 and lay_b.num_slots < lay_p.num_slots
    with torch.no_grad():
        a, b = padded(feats, coors, 2), bucketed(feats, coors, 2)
    assert float(a.abs().sum()) > 0 and torch.allclose(a, b, atol=1e-5)
    with pytest.raises(ValueError, match="buckets"):
        make(SSTWindowBackbone, buckets=(4, 2))


def test_voxel_layers_run_per_voxel_before_pooling() -> None:
    """``voxel_channels`` applies its layers to each extended voxel row, then pools: the
    pooled mean / max equal pooling the layer outputs directly; gradients reach the layers."""
    from perception_ops.voxelize import voxel_pooling

    from perception.models.backbones.flatformer_blocks import PillarEmbedding
    torch.manual_seed(0)
    embed = PillarEmbedding(4, 8, SHAPE[0], 2, voxel_channels=(16, 12))
    feats, coors = voxels(200, 2, seed=3)
    coors = coors.long()
    mean, peak, pillars = embed.pool(feats, coors, embed.voxel_layers)
    extra = torch.stack([(coors[:, 1] + 0.5) / SHAPE[0], (coors[:, 3] % 2 + 0.5) / 2,
                         (coors[:, 2] % 2 + 0.5) / 2], dim=1)
    rows = embed.voxel_layers(torch.cat([feats, extra], dim=1))
    want_mean, want_pillars, _ = voxel_pooling(
        rows, torch.stack([coors[:, 0], coors[:, 2] // 2, coors[:, 3] // 2], dim=1), "mean")
    assert mean.shape[1] == 12 and torch.equal(pillars, want_pillars)
    assert torch.allclose(mean, want_mean, atol=1e-5)
    out, _ = embed(feats, coors)
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in embed.voxel_layers.parameters())
    model = make(FlatFormer, voxel_channels=[16])
    assert model(feats, coors, 2).shape[:2] == (2, model.out_channels)
    with pytest.raises(ValueError, match="voxel_channels"):
        PillarEmbedding(4, 8, SHAPE[0], 2, voxel_channels=(0,))


def sub_cell_slots_by_loops(rows: torch.Tensor, coors: torch.Tensor, pillars: torch.Tensor,
                            stride: int, k: int) -> torch.Tensor:
    """Reference: for every pillar and slot, mean | max of the voxel rows in that sub-cell."""
    t = stride // k
    out = torch.zeros(len(pillars), k * k, 2 * rows.shape[1])
    for p, (b, py, px) in enumerate(pillars.tolist()):
        for sy in range(k):
            for sx in range(k):
                inside = ((coors[:, 0] == b) & (coors[:, 2] // stride == py) & (coors[:, 3] // stride == px)
                          & ((coors[:, 2] % stride) // t == sy) & ((coors[:, 3] % stride) // t == sx))
                if inside.any():
                    out[p, sy * k + sx] = torch.cat([rows[inside].mean(0), rows[inside].amax(0)])
    return out.flatten(1)


@pytest.mark.parametrize("count,stride,k", [(200, 4, 2), (150, 4, 4), (1, 2, 2), (60, 3, 3)])
def test_sub_cell_slots_equal_their_loop_reference(count: int, stride: int, k: int) -> None:
    """Each sub-cell's mean / max lands in its fixed slot of its pillar, zeros elsewhere; the
    embedding takes them and gradients reach the per-voxel layers through them."""
    from perception.models.backbones.flatformer_blocks import PillarEmbedding
    torch.manual_seed(1)
    embed = PillarEmbedding(4, 8, SHAPE[0], stride, voxel_channels=(6,), sub_cells=k)
    feats, coors = voxels(count, 2, seed=count)
    coors = coors.long()
    rows = embed.voxel_rows(feats, coors, embed.voxel_layers)
    _, _, pillars = embed.reduce(rows, coors)
    slots = embed.sub_cell_slots(rows, coors, pillars)
    assert torch.allclose(slots, sub_cell_slots_by_loops(rows, coors, pillars, stride, k), atol=1e-6)
    out, out_pillars = embed(feats, coors)
    assert out.shape == (len(pillars), 8) and torch.equal(out_pillars, pillars)
    out.sum().backward()
    assert embed.linear.weight.grad[:, 12:].abs().sum() > 0  # the slot inputs are used
    empty, empty_pillars = embed(feats[:0], coors[:0])
    assert empty.shape == (0, 8) and empty_pillars.shape == (0, 3)


@pytest.mark.parametrize("k", [0, 3, True])
def test_sub_cells_must_divide_the_pillar(k: object) -> None:
    from perception.models.backbones.flatformer_blocks import PillarEmbedding
    with pytest.raises(ValueError, match="sub_cells"):
        PillarEmbedding(4, 8, SHAPE[0], 4, sub_cells=k)


@pytest.mark.parametrize("cls", [FlatFormer, SSTWindowBackbone])
def test_bev_convs_fill_the_cells_around_occupied_pillars(cls: type) -> None:
    """Without ``bev_convs`` only occupied pillars carry features; each 3 x 3 layer spreads them
    one cell further (a lone voxel lights its 3 x 3, then 5 x 5 neighbourhood)."""
    feats = torch.randn(1, 4)
    coors = torch.tensor([[0, 2, 10, 12]], dtype=torch.int32)  # pillar (5, 6) at bev_stride 2
    plain = make(cls, bev_stride=2)
    with torch.no_grad():
        occupied = plain(feats, coors, 1).abs().sum(1)[0] > 0
    assert occupied.sum() == 1 and occupied[5, 6]
    for layers, side in ((1, 3), (2, 5)):
        model = make(cls, bev_stride=2, bev_convs=layers)
        with torch.no_grad():
            lit = model(feats, coors, 1).abs().sum(1)[0] > 0
        half = side // 2
        assert lit[5 - half:5 + half + 1, 6 - half:6 + half + 1].all()
        assert lit.sum() == side * side
    with pytest.raises(ValueError, match="bev_convs"):
        make(cls, bev_convs=-1)


def test_conv_position_encoding_equals_a_neighbour_loop() -> None:
    """``x + dwconv3x3`` over the occupied pillars only: each pillar adds, per channel, the
    kernel-weighted rows of its occupied 3 x 3 neighbours (batch elements kept apart)."""
    from perception.models.backbones.flatformer_blocks import ConvPositionEncoding
    torch.manual_seed(3)
    peg = ConvPositionEncoding(6)
    cells = torch.randperm(2 * 5 * 7)[:30]
    coords = torch.stack([cells // 35, cells // 7 % 5, cells % 7], 1)
    x = torch.randn(30, 6)
    with torch.no_grad():
        out = peg(x, coords, 2, (5, 7))
    weight, bias = peg.conv.weight[:, 0], peg.conv.bias
    where = {tuple(c): i for i, c in enumerate(coords.tolist())}
    expected = x + bias
    for i, (b, y, xx) in enumerate(coords.tolist()):
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                j = where.get((b, y + dy, xx + dx))
                if j is not None:
                    expected[i] += weight[:, dy + 1, dx + 1].detach() * x[j]
    assert torch.allclose(out, expected, atol=1e-5)
    assert peg(x[:0], coords[:0], 2, (5, 7)).shape == (0, 6)
    with pytest.raises(ValueError, match="kernel_size"):
        ConvPositionEncoding(6, kernel_size=2)
