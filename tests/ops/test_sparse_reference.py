"""Gather-GEMM-scatter sparse convs against the dense conv3d references, autograd, bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from perception_ops.sparse import (
    SparseTensor,
    build_conv_map,
    build_subm_map,
    gather_gemm_scatter,
    invert_kernel_map,
    sparse_conv3d,
    sparse_inverse_conv3d,
)
from perception_ops.sparse.gather_gemm_scatter import check_features
from perception_ops.sparse.reference import (
    reference_inverse_conv3d,
    reference_sparse_conv3d,
    to_dense,
)

SEEDS = range(3)  # hypothesis is not installed: explicit seeds instead of property-based search
SHAPE = (9, 10, 11)


def make_input(seed: int, n: int = 120, channels: int = 4, batches: tuple[int, ...] = (0, 2),
               batch_size: int = 3, dtype: torch.dtype = torch.float32,
               shape: tuple[int, int, int] = SHAPE) -> SparseTensor:
    g = torch.Generator().manual_seed(seed)
    volume = int(np.prod(shape))
    flat = torch.randperm(len(batches) * volume, generator=g)[:n]
    b, r = torch.tensor(batches)[flat // volume], flat % volume
    zyx = torch.stack([r // (shape[1] * shape[2]), (r // shape[2]) % shape[1], r % shape[2]], 1)
    coords = torch.cat([b[:, None], zyx], dim=1).to(torch.int32)
    feats = torch.randn(n, channels, generator=g, dtype=dtype)
    return SparseTensor(feats, coords, shape, batch_size)


def make_weight(seed: int, c_out: int, kernel, c_in: int, dtype=torch.float32) -> torch.Tensor:
    k = (kernel,) * 3 if isinstance(kernel, int) else tuple(kernel)
    g = torch.Generator().manual_seed(1000 + seed)
    return torch.randn(c_out, *k, c_in, generator=g, dtype=dtype) / np.sqrt(np.prod(k) * c_in)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


@pytest.mark.parametrize("kernel,dilation", [(1, 1), (3, 1), (3, 2), (5, 1), ((1, 3, 5), 1)])
@pytest.mark.parametrize("seed", SEEDS)
def test_subm_equals_dense_conv_at_active_sites(kernel, dilation, seed):
    x = make_input(seed)
    w = make_weight(seed, 6, kernel, 4)
    bias = torch.randn(6)
    y = sparse_conv3d(x, w, bias, dilation=dilation, subm=True)
    ref, ref_coords, _ = reference_sparse_conv3d(x.features, x.coords, SHAPE, 3, w, bias,
                                                 dilation=dilation, subm=True)
    assert y.coords is x.coords and y.spatial_shape == SHAPE and y.cache is x.cache
    assert rel_err(y.features, ref) <= 1e-5


def test_subm_is_defined_by_zero_inactive_sites():
    """SubM == dense conv sampled at active sites because inactive inputs are zero; a nonzero
    value at an inactive neighbour changes the dense conv but SubM never sees it."""
    x = make_input(0, n=60)
    w = make_weight(0, 3, 3, 4)
    y = sparse_conv3d(x, w, subm=True)
    dense = to_dense(x.features, x.coords, SHAPE, 3)
    c = x.coords[0].long()
    occupied = {tuple(v) for v in x.coords.tolist()}
    hole = next((int(c[0]), int(c[1]) + dz, int(c[2]) + dy, int(c[3]) + dx)
                for dz in (-1, 0, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                if (int(c[0]), int(c[1]) + dz, int(c[2]) + dy, int(c[3]) + dx) not in occupied
                and all(0 <= v < s for v, s in zip((int(c[1]) + dz, int(c[2]) + dy,
                                                     int(c[3]) + dx), SHAPE)))
    dense[hole[0], :, hole[1], hole[2], hole[3]] = 5.0
    polluted = torch.nn.functional.conv3d(dense, w.permute(0, 4, 1, 2, 3), padding=1)
    at_c = polluted[c[0], :, c[1], c[2], c[3]]
    assert float((at_c - y.features[0]).abs().max()) > 1e-3


@pytest.mark.parametrize("kernel,stride,padding,dilation", [
    (2, 2, 0, 1), (3, 2, 1, 1), (3, 1, 0, 2), (3, 1, 1, 1), (5, 2, 2, 1), (4, 2, 1, 1),
    ((3, 1, 2), (2, 1, 2), (1, 0, 0), 1), (1, 2, 0, 1),
])
@pytest.mark.parametrize("seed", SEEDS)
def test_strided_conv_equals_dense_reference(kernel, stride, padding, dilation, seed):
    x = make_input(seed)
    w = make_weight(seed, 5, kernel, 4)
    bias = torch.randn(5)
    y = sparse_conv3d(x, w, bias, stride, padding, dilation)
    ref, ref_coords, ref_shape = reference_sparse_conv3d(
        x.features, x.coords, SHAPE, 3, w, bias, stride, padding, dilation)
    assert torch.equal(y.coords, ref_coords) and y.spatial_shape == ref_shape
    assert rel_err(y.features, ref) <= 1e-5


@pytest.mark.parametrize("kernel,stride,padding", [(2, 2, 0), (3, 2, 1), (3, 2, 0), (3, 1, 1)])
@pytest.mark.parametrize("seed", SEEDS)
def test_inverse_conv_equals_conv_transpose_reference(kernel, stride, padding, seed):
    x = make_input(seed)
    down = sparse_conv3d(x, make_weight(seed, 7, kernel, 4), stride=stride, padding=padding,
                         indice_key="down1")
    w_up = make_weight(seed + 1, 3, kernel, 7)
    bias = torch.randn(3)
    up = sparse_inverse_conv3d(down, w_up, "down1", bias)
    assert up.coords is x.coords and up.spatial_shape == SHAPE and up.tensor_stride == (1, 1, 1)
    ref = reference_inverse_conv3d(down.features, down.coords, down.spatial_shape, 3, w_up,
                                   x.coords, SHAPE, bias, stride, padding)
    assert rel_err(up.features, ref) <= 1e-5


def test_unet_pipeline_shares_one_cache():
    x = make_input(7, n=200, channels=3)
    s1 = sparse_conv3d(x, make_weight(0, 8, 3, 3), subm=True, indice_key="subm1")
    s1b = sparse_conv3d(s1, make_weight(1, 8, 3, 8), subm=True, indice_key="subm1")
    d = sparse_conv3d(s1b, make_weight(2, 16, 3, 8), stride=2, padding=1, indice_key="down1")
    s2 = sparse_conv3d(d, make_weight(3, 16, 3, 16), subm=True, indice_key="subm2")
    up = sparse_inverse_conv3d(s2, make_weight(4, 8, 3, 16), "down1")
    assert d.tensor_stride == (2, 2, 2) and up.tensor_stride == (1, 1, 1)
    assert up.coords is x.coords and up.cache is x.cache
    assert len(x.cache) == 4  # subm1 (shared by two layers), down1, subm2, inverse of down1
    assert d.spatial_shape == (5, 5, 6)


@pytest.mark.parametrize("mode", ["subm", "strided", "inverse"])
def test_gradcheck_float64(mode):
    x = make_input(3, n=12, channels=2, dtype=torch.float64, shape=(4, 4, 4))
    feats = x.features.clone().requires_grad_(True)
    if mode == "subm":
        kmap = build_subm_map(x.coords, (4, 4, 4), 3)
    else:
        kmap = build_conv_map(x.coords, (4, 4, 4), 3, 2, 1)
    if mode == "inverse":
        kmap = invert_kernel_map(kmap)
        feats = torch.randn(kmap.num_in, 2, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 3, 3, 3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f, ww: gather_gemm_scatter(f, ww, kmap), (feats, w))


def test_gradients_match_dense_reference():
    x = make_input(5, n=80, dtype=torch.float64)
    feats = x.features.clone().requires_grad_(True)
    w = make_weight(5, 3, 3, 4, dtype=torch.float64).requires_grad_(True)
    y = sparse_conv3d(x.replace(feats), w, stride=2, padding=1)
    (y.features ** 2).sum().backward()
    f2 = x.features.clone().requires_grad_(True)
    w2 = w.detach().clone().requires_grad_(True)
    ref, _, _ = reference_sparse_conv3d(f2, x.coords, SHAPE, 3, w2, stride=2, padding=1)
    (ref ** 2).sum().backward()
    assert torch.allclose(feats.grad, f2.grad, atol=1e-12)
    assert torch.allclose(w.grad, w2.grad, atol=1e-12)


def test_bad_features_and_weights_raise():
    x = make_input(0, n=20)
    with pytest.raises(ValueError, match="features is on device 'meta'"):
        SparseTensor(x.features.to("meta"), x.coords, SHAPE, 3)
    with pytest.raises(ValueError, match="features are on cpu but coords on meta"):
        check_features(x.features, x.coords.to("meta"))  # CPU-only stand-in for cuda vs cpu
    with pytest.raises(ValueError, match="floating point"):
        SparseTensor(x.features.long(), x.coords, SHAPE, 3)
    with pytest.raises(ValueError, match=r"shape \(N, C\) with N = 20"):
        SparseTensor(x.features[:5], x.coords, SHAPE, 3)
    with pytest.raises(ValueError, match="column 'batch' out of range"):
        SparseTensor(x.features, x.coords, SHAPE, 2)
    with pytest.raises(ValueError, match="KRSC"):
        sparse_conv3d(x, torch.randn(6, 4, 3, 3), subm=True)
    with pytest.raises(ValueError, match="in_channels 5"):
        sparse_conv3d(x, torch.randn(6, 3, 3, 3, 5), subm=True)
    with pytest.raises(ValueError, match="must match features"):
        sparse_conv3d(x, torch.randn(6, 3, 3, 3, 4, dtype=torch.float64), subm=True)
    with pytest.raises(ValueError, match="submanifold conv has stride 1"):
        sparse_conv3d(x, torch.randn(6, 3, 3, 3, 4), stride=2, subm=True)
    with pytest.raises(ValueError, match="bias must have shape"):
        sparse_conv3d(x, torch.randn(6, 3, 3, 3, 4), torch.randn(5), subm=True)
    kmap = build_subm_map(x.coords, SHAPE, 3)
    with pytest.raises(ValueError, match="does not match the kernel map"):
        gather_gemm_scatter(x.features, torch.randn(6, 5, 5, 5, 4), kmap)
    with pytest.raises(ValueError, match="expects 20 inputs"):
        gather_gemm_scatter(x.features[:4], torch.randn(6, 3, 3, 3, 4), kmap)
    dup = x.coords.clone()
    dup[1] = dup[0]
    with pytest.raises(ValueError, match="duplicate coordinates: rows 0 and 1"):
        sparse_conv3d(SparseTensor(x.features, dup, SHAPE, 3), torch.randn(6, 3, 3, 3, 4),
                      subm=True)
