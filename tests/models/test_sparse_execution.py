"""SparseEncoder's ``execution`` option: fixed configs, tuned JSON files and "auto" (cache or fallback)."""
from __future__ import annotations

import pytest
import torch

from perception.models.backbones import SparseEncoder
from perception.models.backbones.sparse_execution import AUTO_FALLBACK
from perception_ops.sparse.autotune import TuneResult, device_key, model_key
from perception_ops.sparse.autotune.groups import conv_modules
from perception_ops.sparse.execution import DEFAULT_EXECUTION, ExecutionConfig

SHAPE = (9, 32, 32)


def make_encoder(**kwargs) -> SparseEncoder:
    return SparseEncoder(4, SHAPE, base_channels=8, output_channels=16,
                         encoder_channels=((8,), (16, 16)), encoder_paddings=((1,), (1, 1)), **kwargs)


def voxels(count: int = 60, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    flat = torch.randperm(SHAPE[0] * SHAPE[1] * SHAPE[2], generator=gen)[:count]
    z, rest = flat // (SHAPE[1] * SHAPE[2]), flat % (SHAPE[1] * SHAPE[2])
    coors = torch.stack([torch.zeros_like(z), z, rest // SHAPE[2], rest % SHAPE[2]], 1).int()
    return torch.randn(count, 4, generator=gen), coors


def layer_configs(encoder: SparseEncoder, mode: str = "inference") -> set[ExecutionConfig]:
    return {layer.execution_for(mode) for layer in conv_modules(encoder).values()}


def test_default_keeps_engine_default():
    encoder = make_encoder().eval()
    encoder(*voxels(), 1)
    assert encoder.execution_applied == "default"
    assert layer_configs(encoder) == {DEFAULT_EXECUTION}


def test_fixed_config_applies_to_every_layer_and_matches_default_output():
    torch.manual_seed(0)
    reference = make_encoder().eval()
    fixed = make_encoder(execution=dict(dataflow="fetch_on_demand")).eval()
    fixed.load_state_dict(reference.state_dict())
    feats, coors = voxels()
    with torch.no_grad():
        expected, got = reference(feats, coors, 1), fixed(feats, coors, 1)
    assert layer_configs(fixed) == {ExecutionConfig(dataflow="fetch_on_demand")}
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_auto_without_cache_uses_fallback(tmp_path):
    encoder = make_encoder(execution="auto", execution_cache_dir=str(tmp_path)).eval()
    encoder(*voxels(), 1)
    assert encoder.execution_applied.startswith("auto fallback")
    assert layer_configs(encoder) == {ExecutionConfig.from_dict(dict(AUTO_FALLBACK))}


def write_cache(path, encoder: SparseEncoder, config: ExecutionConfig, device: dict | None = None) -> None:
    names = sorted(conv_modules(encoder))
    groups = [{"key": {"kind": "subm", "kernel_size": [3, 3, 3], "stride": [1, 1, 1], "dilation": [1, 1, 1],
                       "tensor_stride": [1, 1, 1], "in_channels": 4, "out_channels": 8},
               "modules": names, "config": config.to_dict(), "label": "all"}]
    result = TuneResult(device or device_key(torch.device("cpu")), model_key(encoder), "hash",
                        {"inference": {"groups": groups}})
    result.save(path)


def test_auto_picks_matching_cache_and_ignores_foreign(tmp_path):
    encoder = make_encoder(execution="auto", execution_cache_dir=str(tmp_path)).eval()
    wanted = ExecutionConfig(dataflow="implicit_gemm")
    write_cache(tmp_path / "SparseEncoder-mine.json", encoder, wanted)
    foreign_device = dict(device_key(torch.device("cpu")), name="another CPU")
    write_cache(tmp_path / "SparseEncoder-other.json", encoder, ExecutionConfig(dataflow="fetch_on_demand"),
                foreign_device)
    (tmp_path / "SparseEncoder-broken.json").write_text("{not json")
    encoder(*voxels(), 1)
    assert encoder.execution_applied.startswith("tuned")
    assert "mine" in encoder.execution_applied
    assert layer_configs(encoder, "inference") == {wanted}


def test_bad_execution_values_raise():
    with pytest.raises(FileNotFoundError, match="autotune"):
        make_encoder(execution="/no/such/tuned.json")
    with pytest.raises(ValueError, match="dataflow"):
        make_encoder(execution=dict(dataflow="warp_drive"))
    with pytest.raises(TypeError, match="execution"):
        make_encoder(execution=3)
