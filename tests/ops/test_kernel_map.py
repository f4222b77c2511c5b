"""Kernel maps (submanifold, strided, inverse) against brute force, caching and bad input."""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from perception_ops.sparse import (
    MAX_BATCH,
    MAX_SPATIAL,
    CoordHash,
    KernelMap,
    KernelMapCache,
    build_conv_map,
    build_subm_map,
    pack_keys,
    unpack_keys,
)
from perception_ops.sparse.reference import brute_force_pairs

SEEDS = range(4)  # hypothesis is not installed: explicit seeds instead of property-based search


def random_coords(seed: int, shape: tuple[int, int, int], n: int,
                  batches: tuple[int, ...] = (0,), low: tuple[int, int, int] = (0, 0, 0)
                  ) -> torch.Tensor:
    """n unique (batch, z, y, x) in [low, shape) spread over the given batch indices."""
    g = torch.Generator().manual_seed(seed)
    span = [s - lo for s, lo in zip(shape, low)]
    volume = len(batches) * int(np.prod(span))
    flat = torch.randperm(volume, generator=g)[:n]
    b = torch.tensor(batches)[flat // int(np.prod(span))]
    r = flat % int(np.prod(span))
    z, y, x = r // (span[1] * span[2]), (r // span[2]) % span[1], r % span[2]
    return torch.stack([b, z + low[0], y + low[1], x + low[2]], dim=1).to(torch.int32)


def pairs_by_coords(kmap: KernelMap) -> set[tuple]:
    """Kernel map as {(offset, in coord, out coord)}: independent of row order."""
    cin, cout = kmap.in_coords.tolist(), kmap.out_coords.tolist()
    out = set()
    for j in range(kmap.kernel_volume):
        i, o = kmap.pairs(j)
        out.update((j, tuple(cin[a]), tuple(cout[b])) for a, b in zip(i.tolist(), o.tolist()))
    return out


def all_cells(batches: tuple[int, ...], shape: tuple[int, int, int]) -> torch.Tensor:
    cells = itertools.product(batches, *(range(s) for s in shape))
    return torch.tensor(list(cells), dtype=torch.int32)


def check_csr(kmap: KernelMap) -> None:
    """Pointer consistent, pairs sorted by out row per offset, masks == pair membership."""
    ptr = kmap.offset_ptr.tolist()
    assert ptr[0] == 0 and ptr[-1] == kmap.in_indices.numel() == kmap.out_indices.numel()
    assert all(a <= b for a, b in zip(ptr, ptr[1:])) and tuple(ptr) == kmap.offset_ptr_host
    expected = torch.zeros(kmap.num_out, kmap.kernel_volume, dtype=torch.bool)
    for j in range(kmap.kernel_volume):
        i, o = kmap.pairs(j)
        assert bool((o[1:] > o[:-1]).all()), f"offset {j}: out rows not strictly increasing"
        assert i.dtype == torch.int32 and o.dtype == torch.int32
        expected[o.long(), j] = True
    assert kmap.out_masks.shape == (kmap.num_out, (kmap.kernel_volume + 31) // 32)
    assert torch.equal(kmap.masks_as_bool(), expected)


@pytest.mark.parametrize("kernel,dilation", [(1, 1), (3, 1), (3, 2), (5, 1), ((3, 1, 5), 1)])
@pytest.mark.parametrize("seed", SEEDS)
def test_subm_map_matches_brute_force(kernel, dilation, seed):
    shape = (6, 7, 9)
    coords = random_coords(seed, shape, 90, batches=(0, 2, 3))  # batch 1 is empty
    kmap = build_subm_map(coords, shape, kernel, dilation, batch_size=4)
    k = kmap.kernel_size
    padding = tuple(v // 2 * d for v, d in zip(k, kmap.dilation))
    expected = brute_force_pairs(coords, coords, k, 1, padding, dilation)
    got = {(j, int(a), int(b)) for j in range(kmap.kernel_volume)
           for a, b in zip(*kmap.pairs(j))}
    assert got == expected
    assert kmap.out_coords is coords and kmap.out_spatial_shape == shape
    check_csr(kmap)


@pytest.mark.parametrize("seed", SEEDS)
def test_subm_mirror_offsets_are_transposes(seed):
    coords = random_coords(seed, (8, 8, 8), 150, batches=(0, 1))
    kmap = build_subm_map(coords, (8, 8, 8), 3)
    K = kmap.kernel_volume
    for j in range(K):
        i, o = kmap.pairs(j)
        mi, mo = kmap.pairs(K - 1 - j)
        assert set(zip(i.tolist(), o.tolist())) == set(zip(mo.tolist(), mi.tolist()))
    i, o = kmap.pairs(K // 2)
    assert torch.equal(i, o) and i.numel() == coords.shape[0]


@pytest.mark.parametrize("kernel,stride,padding,dilation", [
    (1, 1, 0, 1), (2, 2, 0, 1), (3, 2, 1, 1), (3, 1, 0, 2), (3, 1, 2, 2), (5, 2, 2, 1),
    (2, 1, 1, 1), (4, 2, 1, 1), ((2, 3, 1), (2, 1, 2), (0, 1, 0), 1), (3, 2, 0, 1),
])
@pytest.mark.parametrize("seed", SEEDS)
def test_conv_map_matches_brute_force(kernel, stride, padding, dilation, seed):
    shape = (7, 6, 9)  # odd and even extents exercise the floor in the output-shape rule
    batches = (0, 2)
    coords = random_coords(seed, shape, 70, batches=batches)
    kmap = build_conv_map(coords, shape, kernel, stride, padding, dilation, batch_size=3)
    k, s, p, d = kmap.kernel_size, kmap.stride, kmap.padding, kmap.dilation
    out_shape = tuple((n + 2 * pp - dd * (kk - 1) - 1) // ss + 1
                      for n, kk, ss, pp, dd in zip(shape, k, s, p, d))
    assert kmap.out_spatial_shape == out_shape
    candidates = all_cells(batches, out_shape)
    brute = brute_force_pairs(coords, candidates, k, s, p, d)
    active = sorted({o for _, _, o in brute})
    assert torch.equal(kmap.out_coords, candidates[active])  # sorted by (b, z, y, x)
    cin, cand = coords.tolist(), candidates.tolist()
    expected = {(j, tuple(cin[i]), tuple(cand[o])) for j, i, o in brute}
    assert pairs_by_coords(kmap) == expected
    assert kmap.out_stride == s and kmap.in_stride == (1, 1, 1)
    check_csr(kmap)


def test_subm_chunked_lookup_equals_single_batch(monkeypatch):
    coords = random_coords(6, (7, 7, 7), 100, batches=(0, 1))
    whole = build_subm_map(coords, (7, 7, 7), 5)
    monkeypatch.setattr("perception_ops.sparse.kernel_map._QUERY_CHUNK", 250)  # 2 offsets/chunk
    chunked = build_subm_map(coords, (7, 7, 7), 5)
    for name in ("in_indices", "out_indices", "offset_ptr", "out_masks"):
        assert torch.equal(getattr(whole, name), getattr(chunked, name)), name


def test_single_voxel_and_empty_input():
    one = torch.tensor([[0, 3, 4, 5]], dtype=torch.int32)
    subm = build_subm_map(one, (8, 8, 8), 3)
    assert subm.pair_counts() == [0] * 13 + [1] + [0] * 13
    down = build_conv_map(one, (8, 8, 8), 3, 2, 1)
    # z=3 -> o in {1, 2} (3 = 2o - 1 + j), y=4 -> {2}, x=5 -> {2, 3}
    assert down.out_coords.tolist() == [[0, 1, 2, 2], [0, 1, 2, 3], [0, 2, 2, 2], [0, 2, 2, 3]]
    assert sum(down.pair_counts()) == 4
    empty = torch.zeros((0, 4), dtype=torch.int32)
    for kmap in (build_subm_map(empty, (8, 8, 8), 3), build_conv_map(empty, (8, 8, 8), 3, 2)):
        assert kmap.num_out == 0 and kmap.in_indices.numel() == 0
        assert kmap.offset_ptr.tolist() == [0] * 28 and kmap.out_masks.shape == (0, 1)


def test_large_coordinates_at_the_key_budget():
    shape = (MAX_SPATIAL, MAX_SPATIAL, MAX_SPATIAL)
    hi = MAX_SPATIAL - 5
    coords = random_coords(0, shape, 80, batches=(0, MAX_BATCH - 1), low=(hi, hi, hi))
    keys = pack_keys(coords[:, 0], coords[:, 1:])
    assert bool((keys >= 0).all()) and torch.equal(unpack_keys(keys), coords)
    kmap = build_subm_map(coords, shape, 3, batch_size=MAX_BATCH)
    assert {(j, int(a), int(b)) for j in range(27) for a, b in zip(*kmap.pairs(j))} == \
        brute_force_pairs(coords, coords, 3, 1, 1, 1)
    down = build_conv_map(coords, shape, 2, 2, batch_size=MAX_BATCH)
    assert int(down.out_coords[:, 1:].max()) == MAX_SPATIAL // 2 - 1
    assert sum(down.pair_counts()) == coords.shape[0]  # k = s = 2: every input used once


def test_masks_span_several_words_for_5x5x5():
    coords = random_coords(1, (6, 6, 6), 120)
    kmap = build_subm_map(coords, (6, 6, 6), 5)
    assert kmap.out_masks.shape == (120, 4)
    check_csr(kmap)
    assert bool(kmap.masks_as_bool()[:, 62].all())  # the centre offset is always active


def test_coord_hash_lookup_reports_missing_keys():
    coords = random_coords(2, (5, 5, 5), 30, batches=(0, 1))
    table = CoordHash.build(coords, (5, 5, 5), batch_size=2)
    keys = pack_keys(coords[:, 0], coords[:, 1:])
    assert torch.equal(table.lookup(keys), torch.arange(30))
    missing = pack_keys(torch.tensor([0]), torch.tensor([[5, 0, 0]]))
    assert table.lookup(missing).tolist() == [-1]


def test_cache_reuses_maps_and_inverse_restores_coords():
    coords = random_coords(3, (8, 8, 8), 100, batches=(0, 1))
    cache = KernelMapCache()
    a = cache.conv_map(coords, (8, 8, 8), 3, subm=True, indice_key="subm1", batch_size=2)
    assert cache.conv_map(coords, (8, 8, 8), 3, subm=True, indice_key="subm1") is a
    down = cache.conv_map(coords, (8, 8, 8), 3, 2, 1, indice_key="down1")
    assert cache.conv_map(coords, (8, 8, 8), 3, 2, 1, indice_key="down1") is down
    coarse = down.out_coords
    sub2 = cache.conv_map(coarse, down.out_spatial_shape, 3, subm=True, tensor_stride=2)
    assert sub2 is not a and sub2.in_coords is coarse
    inv = cache.inverse_map(coarse, down.out_spatial_shape, 3, "down1")
    assert cache.inverse_map(coarse, down.out_spatial_shape, 3, "down1") is inv
    assert inv.out_coords is coords and inv.out_spatial_shape == (8, 8, 8)
    assert inv.kind == "inverse" and inv.out_stride == (1, 1, 1) and inv.in_stride == (2, 2, 2)
    assert pairs_by_coords(inv) == {(j, o, i) for j, i, o in pairs_by_coords(down)}
    check_csr(inv)
    assert len(cache) == 4
    assert len(KernelMapCache()) == 0  # caches are per tensor, never global


def test_cache_refuses_wrong_reuse():
    coords = random_coords(4, (8, 8, 8), 60)
    other = random_coords(5, (8, 8, 8), 60)
    cache = KernelMapCache()
    down = cache.conv_map(coords, (8, 8, 8), 3, 2, 1, indice_key="down1")
    with pytest.raises(ValueError, match="other input coordinates"):
        cache.conv_map(other, (8, 8, 8), 3, 2, 1, indice_key="down1")
    with pytest.raises(ValueError, match="already names"):
        cache.conv_map(coords, (8, 8, 8), 2, 2, 0, indice_key="down1")
    with pytest.raises(ValueError, match="no kernel map named"):
        cache.inverse_map(down.out_coords, down.out_spatial_shape, 3, "down2")
    with pytest.raises(ValueError, match="differs from kernel"):
        cache.inverse_map(down.out_coords, down.out_spatial_shape, 2, "down1")
    with pytest.raises(ValueError, match="not the output"):
        cache.inverse_map(coords, (8, 8, 8), 3, "down1")
    cache.conv_map(coords, (8, 8, 8), 3, subm=True, indice_key="subm1")
    with pytest.raises(ValueError, match="must name a"):
        cache.inverse_map(coords, (8, 8, 8), 3, "subm1")


@pytest.mark.parametrize("coords,batch_size,match", [
    ([[0, 1, 1, 1], [0, 2, 2, 2], [0, 1, 1, 1]], 1, "duplicate coordinates: rows 0 and 2"),
    ([[0, -1, 1, 1]], 1, "column 'z' out of range"),
    ([[0, 1, 8, 1]], 1, "column 'y' out of range"),
    ([[0, 1, 1, 9]], 1, "column 'x' out of range"),
    ([[2, 1, 1, 1]], 2, "column 'batch' out of range"),
    ([[-1, 1, 1, 1]], 2, "column 'batch' out of range"),
])
def test_bad_coordinates_raise(coords, batch_size, match):
    c = torch.tensor(coords, dtype=torch.int32)
    with pytest.raises(ValueError, match=match):
        build_subm_map(c, (8, 8, 9), 3, batch_size=batch_size)
    with pytest.raises(ValueError, match=match):
        build_conv_map(c, (8, 8, 9), 3, 2, batch_size=batch_size)


def test_bad_arguments_raise():
    c = torch.tensor([[0, 1, 1, 1]], dtype=torch.int32)
    with pytest.raises(ValueError, match="int32"):
        build_subm_map(c.long(), (8, 8, 8), 3)
    with pytest.raises(ValueError, match=r"shape \(M, 4\)"):
        build_subm_map(c[:, 1:], (8, 8, 8), 3)
    with pytest.raises(ValueError, match="key budget"):
        build_subm_map(c, (8, 8, MAX_SPATIAL + 1), 3)
    with pytest.raises(ValueError, match="odd kernel"):
        build_subm_map(c, (8, 8, 8), 2)
    with pytest.raises(ValueError, match="empty output shape"):
        build_conv_map(c, (2, 8, 8), 5, 1, 0)
    with pytest.raises(ValueError, match="key budget"):  # padding grows the output grid
        build_conv_map(c, (8, 8, MAX_SPATIAL), 3, 1, 2)
    with pytest.raises(ValueError, match="batch_size"):
        build_subm_map(c, (8, 8, 8), 3, batch_size=MAX_BATCH + 1)
    with pytest.raises(ValueError, match="support only"):
        build_subm_map(c.to("meta"), (8, 8, 8), 3)


@pytest.mark.real_data
def test_subm_map_on_real_nuscenes_voxels(nuscenes_keyframe_dir: Path):
    path = next(nuscenes_keyframe_dir.glob("*.pcd.bin"))
    pts = torch.from_numpy(np.fromfile(path, dtype=np.float32).reshape(-1, 5))
    lo, hi, size = torch.tensor([-54.0, -54.0, -5.0]), torch.tensor([54.0, 54.0, 3.0]), 0.075
    keep = ((pts[:, :3] >= lo) & (pts[:, :3] < hi)).all(dim=1)
    xyz = ((pts[keep, :3] - lo) / size).floor().long()
    zyx = torch.unique(xyz.flip(1), dim=0)
    coords = torch.cat([torch.zeros_like(zyx[:, :1]), zyx], dim=1).to(torch.int32)
    shape = (107, 1440, 1440)  # ceil(8 / 0.075), 108 / 0.075
    kmap = build_subm_map(coords, shape, 3, batch_size=1)
    assert 15_000 < coords.shape[0] < 20_000
    check_csr(kmap)
    # brute force on a slab of voxels: every pair among them must be in the map
    sub = (coords[:, 2] < 400).nonzero()[:, 0][:300]
    sub_pairs = brute_force_pairs(coords[sub], coords[sub], 3, 1, 1, 1)
    rows = {int(r): i for i, r in enumerate(sub)}
    got = {(j, rows[int(a)], rows[int(b)]) for j in range(27) for a, b in zip(*kmap.pairs(j))
           if int(a) in rows and int(b) in rows}
    assert got == sub_pairs
