"""spconv-style sparse modules (native backend) against the dense conv3d references:
SubM / strided / inverse layers, a small encoder, dense() / to_bev(), bf16, init, bad input."""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from perception_ops.sparse import (
    SparseBatchNorm,
    SparseConv3d,
    SparseInverseConv3d,
    SparseReLU,
    SparseSequential,
    SparseTensor,
    SubMConv3d,
    dense,
    get_backend,
    make_sparse_module,
    make_sparse_tensor,
    to_bev,
)
from perception_ops.sparse.reference import (
    reference_inverse_conv3d,
    reference_sparse_conv3d,
    to_dense,
)

SHAPE = (8, 10, 12)
BATCH = 3


def make_input(seed: int, n: int = 150, channels: int = 4, batches: tuple[int, ...] = (0, 2),
               dtype: torch.dtype = torch.float32) -> SparseTensor:
    """n unique random voxels over the given batch indices (batch 1 stays empty)."""
    g = torch.Generator().manual_seed(seed)
    volume = int(np.prod(SHAPE))
    flat = torch.randperm(len(batches) * volume, generator=g)[:n]
    b, r = torch.tensor(batches)[flat // volume], flat % volume
    zyx = torch.stack([r // (SHAPE[1] * SHAPE[2]), (r // SHAPE[2]) % SHAPE[1], r % SHAPE[2]], 1)
    coords = torch.cat([b[:, None], zyx], dim=1).to(torch.int32)
    return SparseTensor(torch.randn(n, channels, generator=g, dtype=dtype), coords, SHAPE, BATCH)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().float(), b.detach().float()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


@pytest.mark.parametrize("kernel,dilation", [(3, 1), (3, 2), ((1, 3, 5), 1)])
def test_subm_module_equals_dense_reference(kernel, dilation):
    x = make_input(0)
    conv = SubMConv3d(4, 6, kernel, dilation=dilation, indice_key="subm1")
    assert conv.weight.shape == (6, *conv.kernel_size, 4)  # spconv 2.x KRSC layout
    y = conv(x)
    ref, _, _ = reference_sparse_conv3d(x.features, x.coords, SHAPE, BATCH, conv.weight,
                                        conv.bias, dilation=dilation, subm=True)
    assert torch.equal(y.coords, x.coords) and y.features.shape == (150, 6)
    assert rel_err(y.features, ref) <= 1e-5


@pytest.mark.parametrize("kernel,stride,padding", [(3, 2, 1), (3, (1, 2, 2), 0), (2, 2, 0)])
def test_sparse_conv_module_equals_dense_reference(kernel, stride, padding):
    x = make_input(1)
    conv = SparseConv3d(4, 5, kernel, stride, padding, bias=True)
    y = conv(x)
    ref, ref_coords, ref_shape = reference_sparse_conv3d(
        x.features, x.coords, SHAPE, BATCH, conv.weight, conv.bias, stride, padding)
    assert torch.equal(y.coords, ref_coords) and y.spatial_shape == ref_shape
    assert y.tensor_stride == conv.stride
    assert rel_err(y.features, ref) <= 1e-5


def test_inverse_module_restores_coords_and_equals_reference():
    x = make_input(2)
    down = SparseConv3d(4, 8, 3, 2, 1, bias=False, indice_key="down1")
    up = SparseInverseConv3d(8, 3, 3, indice_key="down1")
    mid = down(x)
    y = up(mid)
    ref = reference_inverse_conv3d(mid.features, mid.coords, mid.spatial_shape, BATCH, up.weight,
                                   x.coords, SHAPE, up.bias, 2, 1)
    assert torch.equal(y.coords, x.coords) and y.spatial_shape == SHAPE
    assert rel_err(y.features, ref) <= 1e-5


def test_module_gradients_equal_dense_reference():
    x = make_input(3)
    conv = SparseConv3d(4, 5, 3, 2, 1)
    feats = x.features.clone().requires_grad_(True)
    y = conv(x.replace(feats))
    grad_out = torch.randn_like(y.features)
    gx, gw = torch.autograd.grad((y.features * grad_out).sum(), [feats, conv.weight])
    f2, w2 = x.features.clone().requires_grad_(True), conv.weight.detach().clone().requires_grad_()
    ref, _, _ = reference_sparse_conv3d(f2, x.coords, SHAPE, BATCH, w2, conv.bias, 2, 1)
    rx, rw = torch.autograd.grad((ref * grad_out).sum(), [f2, w2])
    assert rel_err(gx, rx) <= 1e-5 and rel_err(gw, rw) <= 1e-5


def encoder(backend: str = "native") -> nn.Module:
    """SubM -> BN -> ReLU -> SparseConv s2 -> SparseBN -> SparseReLU -> SubM -> inverse."""
    def m(name: str, *args, **kwargs) -> nn.Module:
        return make_sparse_module(name, *args, backend=backend, **kwargs)
    return m("SparseSequential",
             m("SubMConv3d", 4, 8, 3, bias=False, indice_key="subm1"),
             nn.BatchNorm1d(8, eps=1e-3, momentum=0.01), nn.ReLU(),
             m("SparseConv3d", 8, 16, 3, 2, 1, bias=False, indice_key="down1"),
             m("SparseBatchNorm", 16), m("SparseReLU"),
             m("SubMConv3d", 16, 16, 3, indice_key="subm2"),
             m("SparseInverseConv3d", 16, 8, 3, indice_key="down1"))


def reference_encoder(net: nn.Module, x: SparseTensor) -> torch.Tensor:
    """Same stack from the dense references and F.batch_norm in training mode."""
    c0, bn0, _, c2, bn1, _, c3, c4 = [net[i] for i in range(len(net))]

    def bn(f: torch.Tensor, mod: nn.Module) -> torch.Tensor:
        return F.batch_norm(f, None, None, mod.weight, mod.bias, True, 0.0, mod.eps)
    f, _, _ = reference_sparse_conv3d(x.features, x.coords, SHAPE, BATCH, c0.weight, subm=True)
    f = F.relu(bn(f, bn0))
    f, co, sh = reference_sparse_conv3d(f, x.coords, SHAPE, BATCH, c2.weight, None, 2, 1)
    f = F.relu(bn(f, bn1))
    f, _, _ = reference_sparse_conv3d(f, co, sh, BATCH, c3.weight, c3.bias, subm=True)
    return reference_inverse_conv3d(f, co, sh, BATCH, c4.weight, x.coords, SHAPE, c4.bias, 2, 1)


def test_sequential_encoder_dense_and_bev_match_reference():
    torch.manual_seed(0)
    net = encoder()
    order = [net[i] for i in range(len(net))]
    c0, bn0, c2, bn1 = order[0], order[1], order[3], order[4]
    assert type(bn0) is nn.BatchNorm1d and isinstance(bn1, SparseBatchNorm)
    for bn in (bn0, bn1):  # non-trivial affine parameters
        nn.init.uniform_(bn.weight, 0.5, 1.5), nn.init.uniform_(bn.bias, -0.2, 0.2)
    assert list(net.state_dict())[:3] == ["0.weight", "1.weight", "1.bias"]
    x = make_input(4)
    y = net(x)
    ref = reference_encoder(net, x)
    assert torch.equal(y.coords, x.coords) and rel_err(y.features, ref) <= 1e-5
    assert c0.weight.shape == (8, 3, 3, 3, 4) and c2.weight.shape == (16, 3, 3, 3, 8)

    grid = dense(y)  # (B, C, D, H, W)
    assert grid.shape == (BATCH, 8, *SHAPE)
    assert torch.equal(grid, to_dense(y.features, y.coords, SHAPE, BATCH))
    assert torch.equal(dense(y, channels_first=False), grid.permute(0, 2, 3, 4, 1))
    bev = to_bev(y)
    D, C = SHAPE[0], 8
    assert bev.shape == (BATCH, C * D, SHAPE[1], SHAPE[2])
    b, z, yy, xx = y.coords.long().unbind(1)
    for c in (0, 5, 7):  # bev[b, c*D + z, y, x] == feature c of voxel (b, z, y, x)
        assert torch.equal(bev[b, c * D + z, yy, xx], y.features[:, c])
    assert int((bev != 0).sum()) == int((y.features != 0).sum())  # nothing else is written
    assert bev[1].abs().sum() == 0  # batch 1 has no voxels


def test_sequential_skips_batchnorm_on_empty_input():
    x = SparseTensor(torch.zeros(0, 4), torch.zeros(0, 4, dtype=torch.int32), SHAPE, 1)
    y = SparseSequential(SubMConv3d(4, 8, 3), nn.BatchNorm1d(8), SparseBatchNorm(8),
                         nn.ReLU())(x)
    assert y.features.shape == (0, 8) and dense(y).shape == (1, 8, *SHAPE)


@pytest.mark.parametrize("mode", ["explicit", "autocast"])
def test_bf16_forward_close_to_fp32(mode):
    x = make_input(5, channels=16)
    net = SparseSequential(SubMConv3d(16, 32, 3, indice_key="s"),
                           SparseConv3d(32, 32, 3, 2, 1, indice_key="d"),
                           SparseInverseConv3d(32, 16, 3, indice_key="d"))
    ref = net(x).features
    if mode == "explicit":
        y = net.to(torch.bfloat16)(x.replace(x.features.to(torch.bfloat16)))
    else:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = net(x)
    assert y.features.dtype == torch.bfloat16
    assert rel_err(y.features, ref) <= 1e-2


def test_reset_parameters_matches_spconv_init_bounds():
    torch.manual_seed(0)
    conv = SparseConv3d(16, 32, 3).requires_grad_(False)
    fan_in = 16 * 27
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)) bound == 1/sqrt(fan_in)
    assert float(conv.weight.abs().max()) <= bound and float(conv.weight.abs().max()) > 0.95 * bound
    assert abs(float(conv.weight.std()) - bound / math.sqrt(3)) < 0.05 * bound
    assert float(conv.bias.abs().max()) <= bound
    assert SubMConv3d(4, 4, 3, bias=False).bias is None


def test_backend_switch_native_builds_our_modules():
    assert isinstance(make_sparse_module("SubMConv3d", 4, 8, 3), SubMConv3d)
    assert isinstance(make_sparse_module("SparseReLU", backend="native"), SparseReLU)
    x = make_sparse_tensor(torch.ones(1, 4), torch.zeros(1, 4, dtype=torch.int32), [2, 2, 2], 1)
    assert isinstance(x, SparseTensor) and x.spatial_shape == (2, 2, 2)
    assert get_backend("native").is_available()


def test_bad_input_errors():
    x = make_input(6)
    with pytest.raises(ValueError, match="features dtype torch.float64 != weight dtype"):
        SubMConv3d(4, 8, 3)(x.replace(x.features.double()))
    with pytest.raises(ValueError, match="input has 4 channels.*in_channels = 5"):
        SparseConv3d(5, 8, 3)(x)
    with pytest.raises(TypeError, match="expects a perception_ops.sparse.SparseTensor"):
        SubMConv3d(4, 8, 3)(x.features)
    with pytest.raises(ValueError, match="groups must be 1"):
        SubMConv3d(4, 8, 3, 1, 0, 1, 2)
    with pytest.raises(ValueError, match="SubMConv3d has stride 1"):
        SubMConv3d(4, 8, 3, stride=2)
    with pytest.raises(ValueError, match="no kernel map named indice_key 'nope'"):
        SparseInverseConv3d(4, 8, 3, indice_key="nope")(x)
    with pytest.raises(ValueError, match="unknown sparse backend 'torchsparse'.*native"):
        make_sparse_module("SubMConv3d", 4, 8, 3, backend="torchsparse")
    with pytest.raises(ValueError, match="has no module 'SparseMaxPool3d'"):
        make_sparse_module("SparseMaxPool3d", 3, backend="native")


def test_spconv_backend_missing_gives_install_hint(monkeypatch):
    for name in [m for m in sys.modules if m == "spconv" or m.startswith("spconv.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "spconv", None)  # makes `import spconv...` fail
    with pytest.raises(ImportError, match=r"needs spconv 2.x.*spconv-cu120==2.3.6"):
        make_sparse_module("SubMConv3d", 4, 8, 3, backend="spconv")
    assert not get_backend("spconv").is_available()


def test_spconv_compatible_tensor_api(monkeypatch):
    """indices / replace_feature / dense() / to_bev() as spconv; same voxels skip validation."""
    x = make_input(7)
    assert x.indices is x.coords
    assert torch.equal(x.dense(), dense(x)) and x.dense().shape == (BATCH, 4, *SHAPE)
    assert torch.equal(x.dense(channels_first=False), dense(x, channels_first=False))
    assert torch.equal(x.to_bev(), to_bev(x)) and x.to_bev().shape == (BATCH, 4 * SHAPE[0], *SHAPE[1:])
    y = x.replace_feature(x.features * 2)
    assert y.coords is x.coords and y.cache is x.cache and y.spatial_shape == x.spatial_shape
    assert torch.equal(y.features, x.features * 2) and x.features is not y.features

    def no_validation(*args, **kwargs):
        raise AssertionError("coordinates validated again")

    module = sys.modules["perception_ops.sparse.gather_gemm_scatter"]  # the name is shadowed
    monkeypatch.setattr(module, "validate_coords", no_validation)
    z = x.replace(x.features[:, :2], x.coords, x.spatial_shape, x.tensor_stride)
    assert z.features.shape == (150, 2) and z.cache is x.cache
    with pytest.raises(ValueError, match=r"N = 150 coords, got \(10, 4\)"):
        x.replace(x.features[:10])
    with pytest.raises(ValueError, match="floating point"):
        x.replace_feature(x.features.int())
    with pytest.raises(AssertionError, match="validated again"):  # new coordinates: checked
        x.replace(x.features, x.coords.clone())


def test_dense_and_bev_are_differentiable():
    x = make_input(6)
    f = x.features.clone().requires_grad_(True)
    y = x.replace(f)
    weights = torch.randn(BATCH, f.shape[1], *SHAPE)
    (grad,) = torch.autograd.grad((dense(y) * weights).sum(), (f,))
    b, z, yy, xx = x.coords.long().unbind(1)
    assert torch.equal(grad, weights[b, :, z, yy, xx])
    (grad_bev,) = torch.autograd.grad(to_bev(y).sum(), (f,))
    assert torch.equal(grad_bev, torch.ones_like(f))
