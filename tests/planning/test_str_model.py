"""STR: GPT-2 backbone, context encoders, key-point decoding, losses and predictions."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from perception.models.planning import PRESETS, GPT2Backbone
from perception.planning.motion_dataset import collate_features
from perception.planning.motion_features import FeatureConfig, encode_target
from perception.planning.motion_toy import make_toy_scene
from perception.registry import MODELS

CFG = FeatureConfig(history_frames=4, history_stride=2, future_steps=20, max_agents=6, max_polylines=10,
                    points_per_polyline=5, raster_size=16)
KP = (2.0, 1.0, 0.5)


def batch(seeds=(0, 1), targets=("AV", "agent_0", "agent_1")) -> dict[str, torch.Tensor]:
    feats = [encode_target(make_toy_scene(seed=s, braking=True), t, CFG) for s in seeds for t in targets]
    return collate_features(feats)


def build(**kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = dict(type="STR", backbone=dict(preset="tiny", max_tokens=64), future_steps=CFG.future_steps,
               history_frames=CFG.history_frames, keypoint_times=KP, num_modes=3,
               context_encoder=dict(type="STRVectorEncoder", hidden_dim=16))
    cfg.update(kwargs)
    return MODELS.build(cfg)


def test_backbone_is_causal_and_ignores_padding() -> None:
    torch.manual_seed(0)
    net = GPT2Backbone(preset="tiny", max_tokens=16).eval()
    x = torch.randn(2, 10, 32)
    valid = torch.ones(2, 10, dtype=torch.bool)
    valid[:, 2] = False
    out = net(x, valid)
    later = x.clone()
    later[:, 7:] += 5.0
    np.testing.assert_allclose(net(later, valid)[:, :7].detach(), out[:, :7].detach(), atol=1e-5)
    padded = x.clone()
    padded[:, 2] += 5.0  # a padded token changes nothing but itself
    changed = net(padded, valid).detach()
    keep = [i for i in range(10) if i != 2]
    np.testing.assert_allclose(changed[:, keep], out[:, keep].detach(), atol=1e-5)
    assert torch.isfinite(out).all()
    # cached decoding gives what the full pass gives
    head, cache = net(x[:, :6], valid[:, :6], return_cache=True)
    tail = net(x[:, 6:], valid[:, 6:], past=cache)
    np.testing.assert_allclose(torch.cat([head, tail], 1).detach(), out.detach(), atol=1e-5)
    with pytest.raises(ValueError, match="max_tokens"):
        net(torch.randn(1, 17, 32))


def test_presets_span_two_orders_of_magnitude() -> None:
    counts = {name: sum(p.numel() for p in GPT2Backbone(preset=name, max_tokens=8).blocks.parameters())
              for name in ("tiny", "large")}
    assert counts["large"] / counts["tiny"] > 100
    assert list(PRESETS)[0] == "tiny" and "xl" in PRESETS
    with pytest.raises(ValueError, match="unknown STR size preset"):
        GPT2Backbone(preset="huge")


def test_loss_terms_backward_and_predict_shapes() -> None:
    model = build()
    inputs = batch()
    losses = model(inputs, mode="loss")
    assert set(losses) == {"loss_traj", "loss_yaw", "loss_goal", "loss_cls", "loss_keypoint"}
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert all(p.grad is not None for p in model.backbone.parameters())
    model.eval()
    traj, scores = model.predict_local(inputs)
    assert traj.shape == (6, 3, CFG.future_steps, 3) and scores.shape == (6, 3)
    np.testing.assert_allclose(scores.sum(1).numpy(), 1.0, rtol=1e-5)
    assert torch.all(scores[:, :-1] >= scores[:, 1:])


def test_cached_decoding_matches_full_decoding() -> None:
    model = build().eval()
    inputs = batch(seeds=(3,))
    prefix, valid = model.encode_prefix(inputs)
    kps = torch.randn(len(prefix), len(KP), 2)
    full = model.decode(prefix, valid, kps)
    _, cache = model.backbone(prefix, valid, return_cache=True)
    np.testing.assert_allclose(model.decode_cached(cache, kps).detach(), full.detach(), atol=1e-5)


@pytest.mark.slow
def test_training_fits_a_small_batch() -> None:
    model = build()
    inputs = batch()
    optim = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        loss = sum(model.loss(inputs).values())
        first = float(loss.detach()) if first is None else first
        optim.zero_grad()
        loss.backward()
        optim.step()
    assert float(loss.detach()) < 0.3 * first


@pytest.mark.parametrize("variant", ["raster", "diffusion"])
def test_raster_encoder_and_diffusion_decoder(variant: str) -> None:
    kwargs = (dict(context_encoder=dict(type="STRRasterEncoder", in_channels=7, raster_size=16, num_downsamples=2))
              if variant == "raster" else dict(keypoint_decoder="diffusion", diffusion=dict(hidden_dim=32, steps=20,
                                                                                             sample_steps=4)))
    model = build(**kwargs)
    inputs = batch(seeds=(0,))
    losses = model.loss(inputs)
    assert ("loss_diffusion" in losses) == (variant == "diffusion")
    sum(losses.values()).backward()
    traj, scores = model.eval().predict_local(inputs)
    assert traj.shape == (3, 3, CFG.future_steps, 3) and torch.isfinite(traj).all()
    if variant == "diffusion":  # independent noises give distinct modes with equal scores
        assert torch.allclose(scores, torch.full_like(scores, 1 / 3))
        assert (traj[:, 0] - traj[:, 1]).abs().max() > 1e-4


def test_bad_settings_raise() -> None:
    with pytest.raises(ValueError, match="keypoint_times"):
        build(keypoint_times=(8.0, 1.0))
    with pytest.raises(ValueError, match="keypoint_decoder"):
        build(keypoint_decoder="beam")
    with pytest.raises(ValueError, match="raster"):
        build(context_encoder=dict(type="STRRasterEncoder", in_channels=7, raster_size=16, num_downsamples=2)).loss(
            {k: v for k, v in batch(seeds=(0,)).items() if k != "raster"})
    with pytest.raises(ValueError, match="mode"):
        build()(batch(seeds=(0,)), mode="sample")
