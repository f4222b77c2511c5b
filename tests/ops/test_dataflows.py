"""CPU dataflows (gather-GEMM-scatter, fetch-on-demand, implicit GEMM, native implicit GEMM):
forward and explicit
backward against gather_gemm_scatter and the dense conv3d references, edge cases, bad input."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from perception_ops.sparse import (
    build_conv_map,
    build_subm_map,
    gather_gemm_scatter,
    invert_kernel_map,
)
from perception_ops.sparse.dataflows import DATAFLOWS, WGRAD_PARAMS, plan_groups, sparse_matmul
from perception_ops.sparse.dataflows.views import MapView
from perception_ops.sparse.kernel_map import KernelMap
from perception_ops.sparse.reference import reference_inverse_conv3d, reference_sparse_conv3d

SHAPE = (7, 8, 9)
KINDS = ("subm", "strided", "inverse")
EXTRA = {  # edge values beyond the autotuner's candidates
    "gather_gemm_scatter": [{"epsilon": 1.0, "mm_thresh": 10 ** 9}, {"epsilon": 0.9}],
    "fetch_on_demand": [{"chunk_size": 1}, {"chunk_size": 7}],
    "implicit_gemm": [{"tile_rows": 1, "sorted": True}, {"tile_rows": 5, "sorted": False}],
    "native_implicit_gemm": [{"block_rows": 1}, {"block_rows": 7}],
}


def all_settings() -> list[tuple[str, dict]]:
    out = []
    for name, spec in DATAFLOWS.items():
        space = spec.space()
        out += [(name, dict(zip(space, v))) for v in itertools.product(*space.values())]
        out += [(name, p) for p in EXTRA[name]]
    return out


SETTINGS = all_settings()


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny inputs: intra-op threads only add synchronisation (and stall on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclass
class Case:
    kmap: KernelMap
    features: torch.Tensor
    weight: torch.Tensor
    dense: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # dense reference conv


def random_coords(seed: int, n: int, shape=SHAPE, batches=(0, 2), offset=(0, 0, 0)):
    g = torch.Generator().manual_seed(seed)
    volume = int(np.prod(shape))
    flat = torch.randperm(len(batches) * volume, generator=g)[:n]
    b, r = torch.tensor(batches)[flat // volume], flat % volume
    zyx = torch.stack([r // (shape[1] * shape[2]), (r // shape[2]) % shape[1], r % shape[2]], 1)
    return torch.cat([b[:, None], zyx + torch.tensor(offset)], 1).to(torch.int32)


def make_case(kind: str, seed: int, n: int = 90, c_in: int = 3, c_out: int = 4,
              dtype=torch.float64, coords: torch.Tensor | None = None, shape=SHAPE,
              batch_size: int = 3) -> Case:
    """A kernel map of ``kind`` with random features/weights and its dense reference."""
    coords = random_coords(seed, n, shape) if coords is None else coords
    g = torch.Generator().manual_seed(100 + seed)
    w = torch.randn(c_out, 3, 3, 3, c_in, generator=g, dtype=dtype) / np.sqrt(27 * c_in)
    if kind in ("subm", "strided"):
        subm = kind == "subm"
        kmap = (build_subm_map(coords, shape, 3, batch_size=batch_size) if subm
                else build_conv_map(coords, shape, 3, 2, 1, batch_size=batch_size))
        stride, padding = (1, 0) if subm else (2, 1)
        dense = lambda f, ww: reference_sparse_conv3d(  # noqa: E731
            f, coords, shape, batch_size, ww, None, stride, padding, subm=subm)[0]
    else:
        down = build_conv_map(coords, shape, 3, 2, 1, batch_size=batch_size)
        kmap = invert_kernel_map(down)
        dense = lambda f, ww: reference_inverse_conv3d(  # noqa: E731
            f, down.out_coords, down.out_spatial_shape, batch_size, ww, coords, shape, None, 2, 1)
    x = torch.randn(kmap.num_in, c_in, generator=g, dtype=dtype)
    return Case(kmap, x, w, dense)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    if b.numel() == 0:
        return 0.0 if a.shape == b.shape else float("inf")
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", range(6))
def test_every_setting_equals_references_fp32(kind, seed):
    case = make_case(kind, seed, n=40 + 30 * seed, dtype=torch.float32)
    ggs = gather_gemm_scatter(case.features, case.weight, case.kmap)
    dense = case.dense(case.features, case.weight)
    assert rel_err(ggs, dense) <= 1e-5
    view = MapView(case.kmap)  # one view reused by every setting, as a layer would
    for name, params in SETTINGS:
        for kmap in (case.kmap, view):
            y = sparse_matmul(case.features, case.weight, kmap, name, **params)
            assert y.shape == dense.shape and y.dtype == torch.float32
            assert rel_err(y, ggs) <= 1e-5, (name, params)
            assert rel_err(y, dense) <= 1e-5, (name, params)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("kind", KINDS)
def test_low_precision_matches_reference(dtype, kind):
    case = make_case(kind, 4, n=150, c_in=8, c_out=8, dtype=dtype)
    ref = case.dense(case.features.double(), case.weight.double())  # same rounded inputs
    for name, params in SETTINGS[::3]:
        y = sparse_matmul(case.features, case.weight, case.kmap, name, **params)
        assert y.dtype == dtype and rel_err(y, ref) <= 1e-2, (name, params)


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_equal_reference_autograd(kind):
    case = make_case(kind, 5, n=120)
    f0, w0 = case.features.requires_grad_(True), case.weight.requires_grad_(True)
    g_out = torch.randn(case.kmap.num_out, w0.shape[0], dtype=torch.float64)
    ref = torch.autograd.grad(gather_gemm_scatter(f0, w0, case.kmap), (f0, w0), g_out)
    dense = torch.autograd.grad(case.dense(f0, w0), (f0, w0), g_out)
    assert all(rel_err(a, b) <= 1e-10 for a, b in zip(ref, dense))
    view = MapView(case.kmap)
    dgrads = [None, "fetch_on_demand", "implicit_gemm"]
    for (name, params), dgrad in itertools.product(SETTINGS[::2], dgrads):
        for wgrad in ({}, {"native": False, "epsilon": 0.5, "mm_thresh": 10 ** 6}):
            y = sparse_matmul(f0, w0, view, name, dgrad_dataflow=dgrad, wgrad_params=wgrad,
                              **params)
            got = torch.autograd.grad(y, (f0, w0), g_out)
            assert all(rel_err(a, b) <= 1e-10 for a, b in zip(got, ref)), (name, params, dgrad)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name,params", [
    ("gather_gemm_scatter", {}), ("gather_gemm_scatter", {"epsilon": 0.5, "mm_thresh": 10 ** 6}),
    ("fetch_on_demand", {"chunk_size": 3}), ("implicit_gemm", {"tile_rows": 4, "sorted": True}),
    ("implicit_gemm", {"sorted": False}), ("native_implicit_gemm", {"block_rows": 3}),
])
def test_gradcheck_float64(kind, name, params):
    case = make_case(kind, 6, n=14, c_in=2, c_out=2, shape=(4, 4, 4))
    f = case.features.requires_grad_(True)
    w = case.weight.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda ff, ww: sparse_matmul(ff, ww, case.kmap, name, **params), (f, w))


def test_only_requested_gradients_are_computed():
    case = make_case("subm", 1)
    w = case.weight.requires_grad_(True)
    y = sparse_matmul(case.features, w, case.kmap, "implicit_gemm")
    (gw,) = torch.autograd.grad(y.sum(), (w,))
    ref = torch.autograd.grad(gather_gemm_scatter(case.features, w, case.kmap).sum(), (w,))[0]
    assert rel_err(gw, ref) <= 1e-10 and case.features.grad is None


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_backward(dtype):
    case = make_case("strided", 2, n=150, c_in=8, c_out=8, dtype=dtype)
    f64 = case.features.double().requires_grad_(True)
    w64 = case.weight.double().requires_grad_(True)
    g_out = torch.randn(case.kmap.num_out, 8, dtype=torch.float64)
    ref = torch.autograd.grad(case.dense(f64, w64), (f64, w64), g_out)
    for name in DATAFLOWS:
        f, w = case.features.requires_grad_(True), case.weight.requires_grad_(True)
        got = torch.autograd.grad(sparse_matmul(f, w, case.kmap, name), (f, w), g_out.to(dtype))
        assert got[0].dtype == got[1].dtype == dtype
        assert all(rel_err(a, b) <= 1e-2 for a, b in zip(got, ref)), name


def edge_coords() -> dict[str, torch.Tensor]:
    plane = random_coords(3, 40, (1, 8, 9))  # z = 0 only: every offset with dz != 0 is empty
    return {
        "single_voxel": torch.tensor([[1, 3, 4, 5]], dtype=torch.int32),
        "empty_batch_element": random_coords(4, 50, batches=(0, 2)),  # batch 1 has nothing
        "zero_pairs_for_some_offsets": plane,
        "isolated_voxels": torch.tensor([[0, 0, 0, 0], [0, 4, 4, 4], [2, 6, 7, 8]],
                                        dtype=torch.int32),
    }


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("label", sorted(edge_coords()))
def test_edge_cases_equal_dense_reference(kind, label):
    case = make_case(kind, 0, coords=edge_coords()[label], dtype=torch.float32)
    if label == "zero_pairs_for_some_offsets":
        assert 0 in case.kmap.pair_counts()
    dense = case.dense(case.features, case.weight)
    for name, params in SETTINGS:
        y = sparse_matmul(case.features, case.weight, case.kmap, name, **params)
        assert rel_err(y, dense) <= 1e-5, (name, params)


@pytest.mark.parametrize("kind", ["subm", "strided"])
def test_empty_input_gives_empty_output_and_gradients(kind):
    coords = torch.zeros((0, 4), dtype=torch.int32)
    kmap = (build_subm_map(coords, SHAPE, 3) if kind == "subm"
            else build_conv_map(coords, SHAPE, 3, 2, 1))
    f = torch.zeros((0, 3), requires_grad=True)
    w = torch.randn(5, 3, 3, 3, 3, requires_grad=True)
    for name, params in SETTINGS:
        y = sparse_matmul(f, w, kmap, name, **params)
        assert y.shape == (0, 5)
        gf, gw = torch.autograd.grad(y.sum(), (f, w))
        assert gf.shape == (0, 3) and torch.equal(gw, torch.zeros_like(w))


@pytest.mark.parametrize("kind", ["subm", "strided"])
def test_large_coordinates_shift_invariant(kind):
    """Near the 16-bit key limit the result equals the dense reference at small coordinates
    (a conv is translation-equivariant; the shift is even, a multiple of the stride, and a
    margin keeps the grid borders out of reach in both places)."""
    small = random_coords(8, 80, offset=(2, 2, 2))
    big = small.clone()
    big[:, 1:] += 65500
    assert int(big[:, 1:].max()) > 65500
    ref = make_case(kind, 1, coords=small, shape=(11, 12, 13), dtype=torch.float32)
    case = make_case(kind, 1, coords=big, shape=(65536,) * 3, dtype=torch.float32)
    assert torch.equal(case.features, ref.features)
    dense = ref.dense(ref.features, ref.weight)
    for name, params in SETTINGS:
        y = sparse_matmul(case.features, case.weight, case.kmap, name, **params)
        assert rel_err(y, dense) <= 1e-5, (name, params)


def test_fetch_on_demand_gathers_at_most_chunk_size_rows(monkeypatch):
    case = make_case("subm", 3, n=200, dtype=torch.float32)
    assert max(case.kmap.pair_counts()) > 40
    sizes: list[int] = []
    original = torch.index_select

    def spy(inp, dim, index, *args, **kwargs):
        sizes.append(index.numel())
        return original(inp, dim, index, *args, **kwargs)
    monkeypatch.setattr(torch, "index_select", spy)
    y = sparse_matmul(case.features, case.weight, case.kmap, "fetch_on_demand", chunk_size=16)
    monkeypatch.undo()
    assert len(sizes) > 3 and max(sizes) <= 16 + 27 - 1  # an output's pairs stay in one chunk
    assert rel_err(y, gather_gemm_scatter(case.features, case.weight, case.kmap)) <= 1e-5


def test_plan_groups_follow_torchsparse_rule():
    counts = (10, 0, 8, 4, 50, 4, 8, 0, 10)  # K = 9, symmetric order 0, 8, 1, 7, 2, 6, 3, 5, 4
    plain = plan_groups(counts, 0.0, 0)
    assert [g.offsets for g in plain] == [(0, 8), (2, 6), (3, 5), (4,)]  # zero offsets dropped
    assert not any(g.batched for g in plain)
    loose = plan_groups(counts, 0.2, 9)
    # 10, 10, 8 stay together (1 - 8/10 = 0.2); 4 starts a group; 50 breaks it again
    assert [g.offsets for g in loose] == [(0, 8, 2, 6), (3, 5), (4,)]
    assert [g.size for g in loose] == [10, 4, 50]
    assert [g.batched for g in loose] == [False, True, False]  # 10 >= mm_thresh; 50 alone
    assert [g.offsets for g in plan_groups(counts, 0.2, 9, skip_centre=True)][-1] == (3, 5)
    assert [g.offsets for g in plan_groups(counts, 1.0, 10 ** 6)] == [(0, 8, 2, 6, 3, 5, 4)]


def test_table_is_read_only_and_describes_parameters():
    assert set(DATAFLOWS) == {"gather_gemm_scatter", "fetch_on_demand", "implicit_gemm",
                              "native_implicit_gemm"}
    with pytest.raises(TypeError):
        DATAFLOWS["mine"] = DATAFLOWS["implicit_gemm"]  # type: ignore[index]
    with pytest.raises(TypeError):
        DATAFLOWS["implicit_gemm"].params["tile_rows"] = None  # type: ignore[index]
    for spec in DATAFLOWS.values():
        assert set(spec.dtypes) == {torch.float32, torch.float64, torch.bfloat16, torch.float16}
        for name, p in spec.params.items():
            assert p.default in p.candidates, name
    assert set(WGRAD_PARAMS) == {"epsilon", "mm_thresh", "native"}


@pytest.mark.parametrize("kwargs,match", [
    ({"dataflow": "winograd"}, "unknown dataflow 'winograd'; known dataflows"),
    ({"dataflow": "implicit_gemm", "tile_rows": 0}, "'tile_rows' must be a positive int"),
    ({"dataflow": "implicit_gemm", "tile_rows": -4}, "'tile_rows' must be a positive int"),
    ({"dataflow": "implicit_gemm", "tile_rows": 2.5}, "'tile_rows' must be a positive int"),
    ({"dataflow": "implicit_gemm", "tile_rows": True}, "'tile_rows' must be a positive int"),
    ({"dataflow": "implicit_gemm", "sorted": 1}, "'sorted' must be a bool"),
    ({"dataflow": "implicit_gemm", "chunk_size": 8}, r"no parameter\(s\) \['chunk_size'\]"),
    ({"dataflow": "fetch_on_demand", "chunk_size": 0}, "'chunk_size' must be a positive int"),
    ({"epsilon": 1.5}, r"'epsilon' must be a unit float in \[0, 1\]"),
    ({"mm_thresh": -1}, "'mm_thresh' must be a non negative int"),
    ({"dgrad_dataflow": "nope"}, "unknown dataflow 'nope'"),
    ({"dgrad_dataflow": "implicit_gemm", "dgrad_params": {"tile_rows": 0}}, "tile_rows"),
    ({"wgrad_params": {"tile_rows": 8}}, r"weight gradient has no parameter\(s\)"),
    ({"wgrad_params": {"epsilon": -0.1}}, "'epsilon' must be a unit float"),
])
def test_bad_parameters_raise(kwargs, match):
    case = make_case("subm", 0, n=20, dtype=torch.float32)
    with pytest.raises(ValueError, match=match):
        sparse_matmul(case.features, case.weight, case.kmap, **kwargs)


def test_bad_tensors_raise():
    case = make_case("subm", 0, n=20, dtype=torch.float32)
    f, w, kmap = case.features, case.weight, case.kmap
    for name in DATAFLOWS:
        with pytest.raises(ValueError, match="must match features"):
            sparse_matmul(f, w.double(), kmap, name)
        with pytest.raises(ValueError, match="features are on meta but the kernel map is on cpu"):
            sparse_matmul(f.to("meta"), w.to("meta"), kmap, name)
        with pytest.raises(ValueError, match="KRSC"):
            sparse_matmul(f, w[..., 0], kmap, name)
        with pytest.raises(ValueError, match="does not match the kernel map"):
            sparse_matmul(f, torch.randn(4, 1, 3, 3, 3), kmap, name)
        with pytest.raises(ValueError, match="in_channels 5"):
            sparse_matmul(f, torch.randn(4, 3, 3, 3, 5), kmap, name)
        with pytest.raises(ValueError, match="expects 20 inputs"):
            sparse_matmul(f[:5], w, kmap, name)
        with pytest.raises(ValueError, match="floating point"):
            sparse_matmul(f.long(), w, kmap, name)
        with pytest.raises(ValueError, match=r"\(N, C_in\) tensor"):
            sparse_matmul(f[None], w, kmap, name)
    with pytest.raises(ValueError, match="kmap must be a KernelMap or MapView"):
        sparse_matmul(f, w, "map")  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10 ** 6), n=st.integers(1, 120), c_in=st.integers(1, 9),
       c_out=st.integers(1, 9), kind=st.sampled_from(KINDS),
       setting=st.sampled_from(SETTINGS))
def test_property_dataflows_equal_reference(seed, n, c_in, c_out, kind, setting):
    case = make_case(kind, seed % 1000, n=n, c_in=c_in, c_out=c_out)
    name, params = setting
    f, w = case.features.requires_grad_(True), case.weight.requires_grad_(True)
    y = sparse_matmul(f, w, case.kmap, name, **params)
    ref = gather_gemm_scatter(f, w, case.kmap)
    assert rel_err(y, ref) <= 1e-10
    g = torch.randn_like(ref)
    got, want = torch.autograd.grad(y, (f, w), g), torch.autograd.grad(ref, (f, w), g)
    assert all(rel_err(a, b) <= 1e-10 for a, b in zip(got, want))


def test_real_sweep_all_dataflows_agree(nuscenes_keyframe_dir):
    from perception_ops.sparse.dataflows.benchmark import SPATIAL_SHAPE, load_voxels
    sweep = next(nuscenes_keyframe_dir.glob("*.pcd.bin"))
    feats, coords = load_voxels(str(sweep))
    assert coords.shape[0] > 10_000
    kmap = build_subm_map(coords, SPATIAL_SHAPE, 3)
    view = MapView(kmap)
    g = torch.Generator().manual_seed(0)
    x = torch.cat([feats, torch.randn(feats.shape[0], 3, generator=g)], 1)  # 8 channels
    w = torch.randn(8, 3, 3, 3, 8, generator=g) / np.sqrt(27 * 8)
    ref = gather_gemm_scatter(x, w, kmap)
    for name, spec in DATAFLOWS.items():
        y = sparse_matmul(x, w, view, name, **spec.defaults())
        assert rel_err(y, ref) <= 1e-5, name
