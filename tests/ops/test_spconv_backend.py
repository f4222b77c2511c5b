"""The spconv backend against ours: same init, strict state-dict loading, equal outputs and
gradients (2 torch threads), tensor conversion, algo choice and the CPU stream patch.

Skipped as a whole when spconv 2.x is not importable (``pip install '.[spconv]'``)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from perception_ops.sparse import (
    SparseTensor,
    dense,
    from_spconv,
    make_sparse_module,
    make_sparse_tensor,
    to_bev,
    to_spconv,
)
from perception_ops.sparse.backends import load_spconv, patch_spconv_cpu_stream

try:
    spconv = load_spconv()
except ImportError as exc:
    pytest.skip(f"spconv backend tests need spconv 2.x: {exc}", allow_module_level=True)

SHAPE = (10, 12, 14)
BATCH = 2
CPU_ONLY = not torch.cuda.is_available()


@pytest.fixture(autouse=True)
def two_threads():
    """spconv's CPU-only build is wrong with > 1 thread; check the one we use is not."""
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(old)


def random_voxels(seed: int, n: int = 300, channels: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    volume = int(np.prod(SHAPE))
    flat = torch.randperm(BATCH * volume, generator=g)[:n]
    r = flat % volume
    zyx = torch.stack([r // (SHAPE[1] * SHAPE[2]), (r // SHAPE[2]) % SHAPE[1], r % SHAPE[2]], 1)
    coords = torch.cat([(flat // volume)[:, None], zyx], 1).to(torch.int32)
    return torch.randn(n, channels, generator=g), coords


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().float(), b.detach().float()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


def run_both(build, seed: int, channels: int = 4):
    """Build with both backends, copy spconv's state dict into ours (strict), run forward and
    backward of a random dense-grid loss; returns ((out, grad_in, grads), ...) per backend."""
    ref = build("spconv")
    ours = build("native")
    ours.load_state_dict(ref.state_dict(), strict=True)
    feats, coords = random_voxels(seed, channels=channels)
    results = []
    for backend, net in (("spconv", ref), ("native", ours)):
        f = feats.clone().requires_grad_(True)
        y = net(make_sparse_tensor(f, coords, SHAPE, BATCH, backend=backend))
        grid = dense(y)
        weight = torch.randn(grid.shape, generator=torch.Generator().manual_seed(seed))
        (grid * weight).sum().backward()
        grads = {k: p.grad for k, p in net.named_parameters()}
        results.append((grid, f.grad, grads, y))
    return results


LAYERS = {
    "subm": lambda b: make_sparse_module("SubMConv3d", 4, 8, 3, indice_key="s", backend=b),
    "subm_1x3x5_dil": lambda b: make_sparse_module("SubMConv3d", 4, 8, (1, 3, 5), dilation=2,
                                                   backend=b),
    "conv_s2": lambda b: make_sparse_module("SparseConv3d", 4, 8, 3, 2, 1, backend=b),
    "conv_s122_nobias": lambda b: make_sparse_module("SparseConv3d", 4, 8, 3, (1, 2, 2), 0,
                                                     bias=False, backend=b),
    "down_up": lambda b: make_sparse_module(
        "SparseSequential",
        make_sparse_module("SparseConv3d", 4, 8, 3, 2, 1, indice_key="d1", backend=b),
        make_sparse_module("SparseInverseConv3d", 8, 6, 3, indice_key="d1", backend=b),
        backend=b),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_outputs_and_gradients_equal_spconv(name):
    (g_ref, gx_ref, gw_ref, y_ref), (g, gx, gw, y) = run_both(LAYERS[name], seed=len(name))
    assert y.features.shape == y_ref.features.shape  # same active set size
    assert rel_err(g, g_ref) <= 1e-4
    assert rel_err(gx, gx_ref) <= 1e-4
    assert gw.keys() == gw_ref.keys() and len(gw) >= 1
    for k in gw:
        assert rel_err(gw[k], gw_ref[k]) <= 1e-4, k


def centerpoint_lite(backend: str) -> nn.Module:
    """SubM -> BN -> ReLU -> down (s2) -> BN -> ReLU -> SubM -> BN -> ReLU -> inverse."""
    def m(name: str, *args, **kwargs) -> nn.Module:
        return make_sparse_module(name, *args, backend=backend, **kwargs)

    def bn(c: int) -> nn.Module:
        return nn.BatchNorm1d(c, eps=1e-3, momentum=0.01)
    return m("SparseSequential",
             m("SubMConv3d", 4, 16, 3, bias=False, indice_key="subm1"), bn(16), nn.ReLU(),
             m("SparseConv3d", 16, 32, 3, 2, 1, bias=False, indice_key="spconv2"), bn(32),
             nn.ReLU(), m("SubMConv3d", 32, 32, 3, bias=False, indice_key="subm2"), bn(32),
             nn.ReLU(), m("SparseInverseConv3d", 32, 16, 3, indice_key="spconv2"))


def test_backend_switch_encoder_equal_outputs_and_gradients():
    torch.manual_seed(0)
    (g_ref, gx_ref, gw_ref, y_ref), (g, gx, gw, y) = run_both(centerpoint_lite, seed=11)
    assert isinstance(y, SparseTensor) and isinstance(y_ref, spconv.SparseConvTensor)
    assert rel_err(g, g_ref) <= 1e-4 and rel_err(gx, gx_ref) <= 1e-4
    assert rel_err(to_bev(y), to_bev(y_ref)) <= 1e-4
    assert sorted(gw) == sorted(gw_ref) and len(gw) == 11
    for k in gw:
        assert rel_err(gw[k], gw_ref[k]) <= 1e-4, k


@pytest.mark.parametrize("name", ["SubMConv3d", "SparseConv3d"])
def test_same_seed_same_init_as_spconv(name):
    torch.manual_seed(3)
    ref = make_sparse_module(name, 8, 16, 3, backend="spconv")
    torch.manual_seed(3)
    ours = make_sparse_module(name, 8, 16, 3, backend="native")
    assert ours.state_dict().keys() == ref.state_dict().keys()
    for k, v in ref.state_dict().items():
        assert torch.equal(ours.state_dict()[k], v), k


@pytest.mark.filterwarnings("ignore:Using a non-tuple sequence:UserWarning")  # spconv's dense()
def test_tensor_conversion_and_dense_views_match_spconv():
    feats, coords = random_voxels(5)
    x = SparseTensor(feats, coords, SHAPE, BATCH)
    s = to_spconv(x)
    assert isinstance(s, spconv.SparseConvTensor) and s.features is feats
    assert torch.equal(s.indices, coords) and list(s.spatial_shape) == list(SHAPE)
    assert torch.equal(dense(s), s.dense()) and torch.equal(dense(x), s.dense())
    assert torch.equal(to_bev(x), s.dense().reshape(BATCH, 4 * SHAPE[0], *SHAPE[1:]))
    # mixing backends: spconv layer, convert back, our layer on its output
    conv = make_sparse_module("SparseConv3d", 4, 8, 3, 2, 1, backend="spconv")
    back = from_spconv(conv(s))
    assert isinstance(back, SparseTensor) and back.batch_size == BATCH
    out = make_sparse_module("SubMConv3d", 8, 2, 3)(back)
    assert out.features.shape == (back.features.shape[0], 2)
    with pytest.raises(TypeError, match="to_spconv expects a SparseTensor"):
        to_spconv(s)


def test_algo_choice_and_cpu_stream_patch():
    conv = make_sparse_module("SubMConv3d", 4, 8, 3, backend="spconv")
    if CPU_ONLY:
        assert conv.algo == spconv.ConvAlgo.Native
        assert spconv.ops.get_current_stream() == 0
    explicit = make_sparse_module("SparseConv3d", 4, 8, 3, algo="native", backend="spconv")
    assert explicit.algo == spconv.ConvAlgo.Native
    with pytest.raises(ValueError, match="unknown spconv algo 'fast'"):
        make_sparse_module("SubMConv3d", 4, 8, 3, algo="fast", backend="spconv")
    patched = spconv.ops.get_current_stream
    patch_spconv_cpu_stream()  # idempotent: no double wrapping
    assert spconv.ops.get_current_stream is patched is spconv.cppcore.get_current_stream


@pytest.mark.skipif(not CPU_ONLY, reason="exercises spconv's CPU python-GEMM path")
def test_python_gemm_backward_path_needs_the_patch(monkeypatch):
    """With GEMM_CPP None (as in the CPU-only wheel) spconv's backward calls
    get_current_stream() unconditionally; patched it works and matches ours."""
    monkeypatch.setattr(spconv.ops, "GEMM_CPP", None)
    (g_ref, gx_ref, gw_ref, _), (g, gx, gw, _) = run_both(LAYERS["subm"], seed=2)
    assert rel_err(g, g_ref) <= 1e-4 and rel_err(gx, gx_ref) <= 1e-4
    assert rel_err(gw["weight"], gw_ref["weight"]) <= 1e-4
