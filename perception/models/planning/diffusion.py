"""Diffusion key-point decoder (the STR option): a DDPM over the whole key-point set.

The set of ``J`` key points ``(J, 2)`` (scaled positions) is denoised by an MLP conditioned on
the backbone's context vector and the diffusion time; training is the usual noise-prediction
MSE at a random step of a cosine schedule, sampling is deterministic DDIM over
``sample_steps`` steps from ``K`` independent noises, which gives ``K`` key-point sets (modes)
per target.  Diffusion gives no likelihood per sample: the modes get equal scores.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ...registry import MODELS
from .encoders import mlp


def cosine_alphas_cumprod(steps: int, s: float = 0.008) -> Tensor:
    """``alpha_bar_t`` of the cosine schedule (Nichol & Dhariwal), ``t = 1..steps``."""
    t = torch.linspace(0, steps, steps + 1, dtype=torch.float64) / steps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    alphas = (f[1:] / f[:-1]).clamp(1e-4, 0.9999)
    return torch.cumprod(alphas, 0).float()


def time_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding ``(B, dim)`` of integer steps ``t`` ``(B,)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


@MODELS.register_module(name="STRDiffusionKeypoints")
class DiffusionKeypointDecoder(nn.Module):
    """Denoising MLP over ``J`` key points conditioned on a context vector."""

    def __init__(self, num_keypoints: int, cond_dim: int, hidden_dim: int = 256, steps: int = 50,
                 sample_steps: int = 10, time_dim: int = 32) -> None:
        super().__init__()
        if not 1 <= sample_steps <= steps:
            raise ValueError(f"STRDiffusionKeypoints: sample_steps must be in [1, {steps}], got {sample_steps}")
        self.num_keypoints, self.steps, self.sample_steps, self.time_dim = num_keypoints, steps, sample_steps, time_dim
        self.register_buffer("alpha_bar", cosine_alphas_cumprod(steps), persistent=False)
        self.net = mlp([num_keypoints * 2 + cond_dim + time_dim, hidden_dim, hidden_dim, num_keypoints * 2])

    def denoise(self, noisy: Tensor, cond: Tensor, t: Tensor) -> Tensor:
        """Predicted noise ``(B, J, 2)``."""
        x = torch.cat([noisy.flatten(1), cond, time_embedding(t, self.time_dim)], dim=-1)
        return self.net(x).view(-1, self.num_keypoints, 2)

    def loss(self, cond: Tensor, keypoints: Tensor, valid: Tensor) -> Tensor:
        """Noise-prediction MSE over the valid key points of each target."""
        b = keypoints.shape[0]
        t = torch.randint(0, self.steps, (b,), device=keypoints.device)
        a = self.alpha_bar[t][:, None, None]
        noise = torch.randn_like(keypoints)
        noisy = a.sqrt() * keypoints + (1 - a).sqrt() * noise
        err = (self.denoise(noisy, cond, t) - noise).pow(2).sum(-1)
        weight = valid.float()
        return (err * weight).sum() / weight.sum().clamp(min=1.0)

    @torch.no_grad()
    def sample(self, cond: Tensor, num_samples: int, generator: torch.Generator | None = None) -> Tensor:
        """``(B, K, J, 2)`` key-point sets by deterministic DDIM."""
        b = cond.shape[0]
        cond = cond.repeat_interleave(num_samples, dim=0)
        x = torch.randn(b * num_samples, self.num_keypoints, 2, device=cond.device, generator=generator)
        times = torch.linspace(self.steps - 1, 0, self.sample_steps, device=cond.device).round().long()
        for i, t in enumerate(times):
            a = self.alpha_bar[t]
            eps = self.denoise(x, cond, t.expand(len(x)))
            x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
            a_prev = self.alpha_bar[times[i + 1]] if i + 1 < len(times) else torch.ones_like(a)
            x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
        return x.view(b, num_samples, self.num_keypoints, 2)
