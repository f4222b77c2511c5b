"""Native (C++/OpenMP) kernel maps equal the PyTorch reference path field by field.

Every KernelMap field (pairs, CSR pointer, masks, coordinate sets, geometry) must be
identical (torch.equal and same dtype) on random, edge-case and real nuScenes coordinates,
and bad coordinates must raise the same ValueError text on both paths.
"""
from __future__ import annotations

import dataclasses
import glob
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import perception_ops.sparse.coords as coords_module
from perception_ops.native import has_native, native_module
from perception_ops.sparse import (
    MAX_BATCH,
    MAX_SPATIAL,
    KernelMap,
    build_conv_map,
    build_subm_map,
    validate_coords,
)
from perception_ops.sparse.coords import resolve_native
from perception_ops.voxelize import hard_voxelize

needs_native = pytest.mark.skipif(not has_native(), reason="native CPU kernels are not built")


def random_coords(seed: int, shape: tuple[int, int, int], n: int,
                  batches: tuple[int, ...] = (0,), low: tuple[int, int, int] = (0, 0, 0)
                  ) -> torch.Tensor:
    """n unique (batch, z, y, x) in [low, shape) over the given batches, in random row order."""
    g = torch.Generator().manual_seed(seed)
    span = [s - lo for s, lo in zip(shape, low)]
    cells = int(np.prod(span))
    flat = torch.randperm(len(batches) * cells, generator=g)[:n]
    b = torch.tensor(batches, dtype=torch.int64)[flat // cells]
    r = flat % cells
    z, y, x = r // (span[1] * span[2]), (r // span[2]) % span[1], r % span[2]
    return torch.stack([b, z + low[0], y + low[1], x + low[2]], dim=1).to(torch.int32)


def assert_same_map(native: KernelMap, torch_map: KernelMap) -> None:
    """Every field identical: tensors by torch.equal and dtype, the rest by ==."""
    for f in dataclasses.fields(KernelMap):
        a, b = getattr(native, f.name), getattr(torch_map, f.name)
        if isinstance(a, torch.Tensor):
            assert a.dtype == b.dtype and a.shape == b.shape, f.name
            assert torch.equal(a, b), f"field {f.name} differs"
        else:
            assert a == b, f"field {f.name}: {a} != {b}"


def both_subm(coords: torch.Tensor, shape, kernel=3, dilation=1, **kw) -> KernelMap:
    native = build_subm_map(coords, shape, kernel, dilation, use_native=True, **kw)
    reference = build_subm_map(coords, shape, kernel, dilation, use_native=False, **kw)
    assert_same_map(native, reference)
    return native


def both_conv(coords: torch.Tensor, shape, kernel=3, stride=2, padding=1, dilation=1,
              **kw) -> KernelMap:
    native = build_conv_map(coords, shape, kernel, stride, padding, dilation, use_native=True, **kw)
    reference = build_conv_map(coords, shape, kernel, stride, padding, dilation, use_native=False,
                               **kw)
    assert_same_map(native, reference)
    return native


def error_text(fn, *args, **kwargs) -> str:
    with pytest.raises(ValueError) as info:
        fn(*args, **kwargs)
    return str(info.value)


@needs_native
@pytest.mark.parametrize("kernel,dilation", [(1, 1), (3, 1), (3, 2), (5, 1), ((3, 1, 5), 1),
                                             ((1, 3, 3), (1, 2, 1))])
@pytest.mark.parametrize("seed", range(6))
def test_subm_native_equals_torch(kernel, dilation, seed):
    coords = random_coords(seed, (6, 9, 11), 200, batches=(0, 2, 3))  # batch 1 empty
    kmap = both_subm(coords, (6, 9, 11), kernel, dilation, batch_size=4, tensor_stride=2)
    assert kmap.in_coords is coords and kmap.out_coords is coords
    assert kmap.in_indices.numel() > coords.shape[0] or kmap.kernel_volume == 1


@needs_native
@pytest.mark.parametrize("kernel,stride,padding,dilation", [
    (1, 1, 0, 1), (1, 2, 0, 1), (2, 2, 0, 1), (3, 2, 1, 1), (3, 1, 0, 2), (3, 1, 2, 2),
    (5, 2, 2, 1), (3, 2, 0, 1), (3, 1, 1, 1), (4, 2, 1, 1), (3, 2, 2, 2),
    ((2, 3, 1), (2, 1, 2), (0, 1, 0), 1), ((3, 1, 3), (1, 1, 2), (1, 0, 2), (2, 1, 1)),
])
@pytest.mark.parametrize("seed", range(4))
def test_conv_native_equals_torch(kernel, stride, padding, dilation, seed):
    coords = random_coords(seed, (7, 6, 9), 120, batches=(0, 2, 5))
    kmap = both_conv(coords, (7, 6, 9), kernel, stride, padding, dilation, batch_size=6)
    assert kmap.num_out > 0 and kmap.out_coords.dtype == torch.int32


@needs_native
@settings(max_examples=30, deadline=None)
@given(st.data())
def test_property_native_equals_torch(data):
    shape = tuple(data.draw(st.integers(1, 9), label=f"extent {a}") for a in "zyx")
    batches = tuple(sorted(data.draw(st.sets(st.integers(0, 4), min_size=1, max_size=3))))
    cells = len(batches) * int(np.prod(shape))
    n = data.draw(st.integers(0, min(cells, 150)), label="n")
    coords = random_coords(data.draw(st.integers(0, 10_000)), shape, n, batches=batches)
    odd = st.sampled_from([1, 3, 5])
    k = tuple(data.draw(odd, label="subm kernel") for _ in range(3))
    d = tuple(data.draw(st.integers(1, 2)) for _ in range(3))
    both_subm(coords, shape, k, d, batch_size=5)
    k = tuple(data.draw(st.integers(1, 4), label="conv kernel") for _ in range(3))
    s = tuple(data.draw(st.integers(1, 3), label="stride") for _ in range(3))
    p = tuple(data.draw(st.integers(0, 2), label="padding") for _ in range(3))
    if all(n_ + 2 * pp - dd * (kk - 1) - 1 >= 0 for n_, kk, pp, dd in zip(shape, k, p, d)):
        both_conv(coords, shape, k, s, p, d, batch_size=5)


@needs_native
def test_single_voxel_empty_input_and_empty_batches():
    one = torch.tensor([[1, 3, 4, 5]], dtype=torch.int32)
    assert both_subm(one, (8, 8, 8), batch_size=2).pair_counts() == [0] * 13 + [1] + [0] * 13
    down = both_conv(one, (8, 8, 8), 3, 2, 1, batch_size=2)
    assert down.out_coords.tolist() == [[1, 1, 2, 2], [1, 1, 2, 3], [1, 2, 2, 2], [1, 2, 2, 3]]
    empty = torch.zeros((0, 4), dtype=torch.int32)
    for kmap in (both_subm(empty, (8, 8, 8), 5), both_conv(empty, (8, 8, 8), 3, 2)):
        assert kmap.num_out == 0 and kmap.in_indices.numel() == 0
        assert set(kmap.offset_ptr_host) == {0}
    # batch elements 1 and 3 empty, batch 4 only at the far corner
    coords = torch.cat([random_coords(3, (5, 6, 7), 60, batches=(0, 2)),
                        torch.tensor([[4, 4, 5, 6]], dtype=torch.int32)])
    both_subm(coords, (5, 6, 7), 3, batch_size=5)
    assert both_conv(coords, (5, 6, 7), 3, 2, 1, batch_size=5).out_coords[-1].tolist() == \
        [4, 2, 2, 3]  # out shape (3, 3, 4): y = 3 falls outside


@needs_native
def test_key_budget_limits():
    shape = (MAX_SPATIAL, MAX_SPATIAL, MAX_SPATIAL)
    hi = MAX_SPATIAL - 4
    coords = random_coords(0, shape, 100, batches=(0, MAX_BATCH - 1), low=(hi, hi, hi))
    corner = torch.tensor([[MAX_BATCH - 1, MAX_SPATIAL - 1, MAX_SPATIAL - 1, MAX_SPATIAL - 1],
                           [0, 0, 0, 0]], dtype=torch.int32)
    coords = torch.cat([coords[(coords != corner[0]).any(1)], corner])
    kmap = both_subm(coords, shape, 3, batch_size=MAX_BATCH)
    assert kmap.pairs(13)[0].numel() == coords.shape[0]
    down = both_conv(coords, shape, 2, 2, 0, batch_size=MAX_BATCH)
    assert down.out_coords[-1].tolist() == [MAX_BATCH - 1, *[MAX_SPATIAL // 2 - 1] * 3]
    near = random_coords(1, (MAX_SPATIAL - 2,) * 3, 60, batches=(0, MAX_BATCH - 1),
                         low=(hi - 2,) * 3)
    wide = both_conv(near, (MAX_SPATIAL - 2,) * 3, 3, 1, 2, batch_size=MAX_BATCH)
    assert wide.out_spatial_shape == (MAX_SPATIAL,) * 3  # padding grows the grid to the budget
    both_conv(coords, shape, 3, 2, 1, batch_size=MAX_BATCH)


@needs_native
def test_non_contiguous_coords():
    coords = random_coords(5, (6, 6, 6), 80, batches=(0, 1))
    wide = torch.cat([coords, coords], dim=1)[:, :4]  # same values, row stride 8
    assert not wide.is_contiguous()
    assert_same_map(both_subm(wide, (6, 6, 6)), build_subm_map(coords, (6, 6, 6), 3))


BAD = [
    ([[0, 1, 1, 1], [0, 2, 2, 2], [0, 1, 1, 1]], 1),
    ([[0, 5, 5, 5], [0, 1, 1, 1], [0, 5, 5, 5], [0, 1, 1, 1], [0, 1, 1, 1]], 1),  # smallest key
    ([[1, 2, 2, 2], [0, 3, 3, 3], [1, 2, 2, 2], [0, 3, 3, 3]], 2),
    ([[0, -1, 1, 1]], 1), ([[0, 1, 8, 1], [0, 1, 9, 1]], 1), ([[0, 1, 1, 9]], 1),
    ([[0, 1, 1, 1], [2, 1, 1, 1], [0, 1, -3, 1]], 2), ([[-1, 1, 1, 1]], 2),
]


@needs_native
@pytest.mark.parametrize("rows,batch_size", BAD)
def test_bad_coordinates_same_errors(rows, batch_size):
    c = torch.tensor(rows, dtype=torch.int32)
    for build in (build_subm_map, build_conv_map):
        native = error_text(build, c, (8, 8, 9), 3, batch_size=batch_size, use_native=True)
        reference = error_text(build, c, (8, 8, 9), 3, batch_size=batch_size, use_native=False)
        assert native == reference
        assert "duplicate" in native or "out of range" in native
    if "out of range" in native:  # range errors come from validate_coords on both paths
        assert native == error_text(validate_coords, c, (8, 8, 9), batch_size, use_native=True)
        assert native == error_text(validate_coords, c, (8, 8, 9), batch_size, use_native=False)


@needs_native
def test_duplicate_error_names_rows_on_random_input():
    coords = random_coords(9, (5, 5, 5), 50, batches=(0, 1))
    dup = torch.cat([coords, coords[[7, 3, 7]]])[torch.randperm(53, generator=torch.Generator()
                                                                .manual_seed(1))]
    native = error_text(build_subm_map, dup, (5, 5, 5), 3, use_native=True)
    assert native == error_text(build_subm_map, dup, (5, 5, 5), 3, use_native=False)
    assert native.startswith("coords contain duplicate coordinates: rows ")


def test_fallback_when_native_is_missing(monkeypatch):
    coords = random_coords(2, (6, 7, 8), 90, batches=(0, 1))
    expected_subm = build_subm_map(coords, (6, 7, 8), 3, use_native=False)
    expected_conv = build_conv_map(coords, (6, 7, 8), 3, 2, 1, use_native=False)
    monkeypatch.setattr(coords_module, "native_module", lambda: None)
    assert resolve_native(coords, None) is None
    assert_same_map(build_subm_map(coords, (6, 7, 8), 3), expected_subm)
    assert_same_map(build_conv_map(coords, (6, 7, 8), 3, 2, 1), expected_conv)
    with pytest.raises(ValueError, match="use_native=True but .* not built"):
        build_subm_map(coords, (6, 7, 8), 3, use_native=True)
    with pytest.raises(ValueError, match="column 'x' out of range"):
        validate_coords(coords, (6, 7, 7))


@needs_native
def test_default_dispatch_uses_native_for_cpu_only(monkeypatch):
    calls: list[str] = []

    class Spy:  # the real extension, counting kernel-map calls
        def __getattr__(self, name):
            calls.append(name)
            return getattr(native_module(), name)

    monkeypatch.setattr(coords_module, "native_module", lambda: Spy())
    coords = random_coords(4, (6, 6, 6), 50)
    build_subm_map(coords, (6, 6, 6), 3)
    build_conv_map(coords, (6, 6, 6), 3, 2, 1)
    assert calls.count("subm_kernel_map") == 1 and calls.count("conv_kernel_map") == 1
    calls.clear()
    build_subm_map(coords, (6, 6, 6), 3, use_native=False)
    assert calls == []
    meta = coords.to("meta")  # any non-CPU device keeps the torch path
    assert resolve_native(meta, None) is None
    with pytest.raises(ValueError, match="CPU only"):
        resolve_native(meta, True)


@needs_native
@pytest.mark.real_data
def test_real_nuscenes_keyframe_encoder_levels(nuscenes_keyframe_dir: Path):
    """Voxelize the keyframe at 0.075 m and build every map of a CenterPoint encoder."""
    path = glob.glob(str(nuscenes_keyframe_dir / "*.pcd.bin"))[0]
    points = torch.from_numpy(np.fromfile(path, dtype=np.float32).reshape(-1, 5))
    _, zyx, _ = hard_voxelize(points, [0.075] * 3, [-54.0, -54.0, -5.0, 54.0, 54.0, 3.0],
                              max_points_per_voxel=10, max_voxels=60_000)
    coords = torch.cat([torch.zeros_like(zyx[:, :1]), zyx], dim=1)
    shape = (107, 1440, 1440)
    assert 15_000 < coords.shape[0] < 20_000
    n_voxels, counts = coords.shape[0], []
    for level in range(4):
        subm = both_subm(coords, shape, 3, batch_size=1)
        counts.append(subm.in_indices.numel())
        down = both_conv(coords, shape, 3, 2, 1, batch_size=1)
        coords, shape = down.out_coords, down.out_spatial_shape
    assert shape == (7, 90, 90)
    assert counts[0] > 2.5 * n_voxels  # real neighbourhoods (1.5+ neighbours per voxel)
