"""STR (State Transformer): motion prediction and planning as one causal sequence model.

The token sequence of one target (an agent to predict, or the ego to plan), all embedded to the
backbone width ``D``::

    [context: map pieces + agents | raster cells] [target info] [s_0 a_0 s_1 ... a_{H-1} s_H]
    [kp slot 0] [kp slot 1 + e(kp_0)] ... [kp slot J + e(kp_{J-1})]

``s_t`` embeds a past state, ``a_t`` the action (step) to the next one; the key points are
future positions at ``keypoint_times`` in backward order (8, 4, 2, 1, 0.5 s by default: the far
goal first, then ever nearer refinements).  A GPT-2 causal backbone (:mod:`.gpt2`) reads it;
the output at key-point slot ``j`` predicts ``kp_j`` from the key points before it (teacher
forcing in training), the last slot decodes the dense trajectory ``(F, 3)`` (x, y, yaw) with an
MLP.  Multimodality: slot 0 proposes ``num_modes`` goals with scores (mode classification);
at inference each goal is rolled out autoregressively into its own key points and trajectory.
With ``keypoint_decoder="diffusion"`` a DDPM over the key-point set (:mod:`.diffusion`)
replaces the goal / key-point heads and samples the modes.

Losses: smooth L1 on xy (quadratic below ``smooth_l1_beta`` metres, linear above) and
``1 - cos`` on yaw for the trajectory, smooth L1 on the key points
(the best goal for slot 0), cross-entropy of the goal nearest the truth (mode classification).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import Tensor, nn

from ...registry import MODELS
from .diffusion import DiffusionKeypointDecoder
from .encoders import NUM_AGENT_TYPES, mlp, scale_states
from .gpt2 import GPT2Backbone

FORWARD_MODES = ("loss", "predict", "tensor")
DEFAULT_LOSS_WEIGHTS = dict(traj=1.0, yaw=0.2, keypoint=1.0, goal=1.0, cls=0.2, diffusion=1.0)
NUM_TOKEN_KINDS = 5  # context, info, state, action, key point


@MODELS.register_module()
class STR(BaseModel):
    """State Transformer (module doc).  ``forward(inputs, data_samples, mode)`` with ``mode`` in
    ``loss`` (dict of losses), ``predict`` (samples with world-frame modes) and ``tensor``."""

    def __init__(self, backbone: dict | None = None, context_encoder: dict | None = None, future_steps: int = 80,
                 dt: float = 0.1, history_frames: int = 10, keypoint_times: Sequence[float] = (8.0, 4.0, 2.0, 1.0, 0.5),
                 num_modes: int = 6, keypoint_decoder: str = "autoregressive", diffusion: dict | None = None,
                 pos_scale: float = 20.0, action_scale: float = 2.0, smooth_l1_beta: float = 1.0,
                 loss_weights: dict | None = None,
                 data_preprocessor: dict | None = None, init_cfg: dict | None = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if keypoint_decoder not in ("autoregressive", "diffusion"):
            raise ValueError(f"STR: keypoint_decoder must be 'autoregressive' or 'diffusion', got {keypoint_decoder!r}")
        self.kp_index = [int(round(t / dt)) - 1 for t in keypoint_times]
        if not keypoint_times or any(not 0 <= i < future_steps for i in self.kp_index):
            raise ValueError(f"STR: keypoint_times {list(keypoint_times)} must lie in (0, {future_steps * dt:g}] s "
                             f"(future_steps={future_steps}, dt={dt})")
        self.future_steps, self.history_frames, self.num_modes = future_steps, history_frames, num_modes
        self.pos_scale, self.action_scale, self.keypoint_decoder = pos_scale, action_scale, keypoint_decoder
        self.beta = smooth_l1_beta / pos_scale  # metres -> the scaled units the heads regress
        self.loss_weights = {**DEFAULT_LOSS_WEIGHTS, **dict(loss_weights or {})}
        num_kp = len(self.kp_index)
        backbone_cfg = dict(type="STRGPT2", **dict(backbone or {}))
        backbone_cfg.setdefault("max_tokens", 512)
        self.backbone: GPT2Backbone = MODELS.build(backbone_cfg)
        d = self.backbone.embed_dim
        encoder_cfg = dict(dict(context_encoder or dict(type="STRVectorEncoder")))
        encoder_cfg.setdefault("embed_dim", d)
        if encoder_cfg["type"] == "STRVectorEncoder":
            encoder_cfg.setdefault("history_frames", history_frames)
        self.encoder = MODELS.build(encoder_cfg)
        self.state_embed = mlp([7, d, d])
        self.action_embed = mlp([3, d, d])
        self.kind_embed = nn.Embedding(NUM_TOKEN_KINDS, d)
        self.type_embed = nn.Embedding(NUM_AGENT_TYPES, d)
        self.ego_embed = nn.Parameter(torch.zeros(d))
        self.kp_slots = nn.Parameter(torch.randn(num_kp + 1, d) * 0.02)
        self.kp_embed = mlp([2, d, d])
        self.traj_head = mlp([d, 2 * d, future_steps * 3])
        if keypoint_decoder == "autoregressive":
            self.goal_head = mlp([d, d, num_modes * 3])
            self.kp_head = mlp([d, d, 2])
            self.diffusion = None
        else:
            self.diffusion = DiffusionKeypointDecoder(num_kp, d, **dict(diffusion or {}))

    # ----------------------------------------------------------------- sequence
    def encode_prefix(self, inputs: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Context, target-info and state/action tokens ``(B, L0, D)`` with their validity."""
        ctx, ctx_valid = self.encoder(inputs)
        kinds = self.kind_embed.weight
        states = inputs["target_states"]
        if states.dim() != 3 or states.shape[1] != self.history_frames + 1:
            raise ValueError(f"STR: target_states must be (B, {self.history_frames + 1}, 7), got {tuple(states.shape)}")
        actions = inputs["target_actions"]
        s_tok = self.state_embed(scale_states(states, self.pos_scale)) + kinds[2]
        a_in = torch.cat([actions[..., :2] / self.action_scale, actions[..., 2:]], dim=-1)
        a_tok = self.action_embed(a_in) + kinds[3]
        b, h1, d = s_tok.shape
        seq = s_tok.new_zeros(b, 2 * h1 - 1, d)
        seq[:, 0::2], seq[:, 1::2] = s_tok, a_tok
        s_valid = states[..., 6] > 0
        seq_valid = torch.zeros(b, 2 * h1 - 1, dtype=torch.bool, device=seq.device)
        seq_valid[:, 0::2], seq_valid[:, 1::2] = s_valid, s_valid[:, 1:] & s_valid[:, :-1]
        info = self.type_embed(inputs["target_type"]) + inputs["is_ego"].float()[:, None] * self.ego_embed + kinds[1]
        tokens = torch.cat([ctx + kinds[0], info[:, None], seq], dim=1)
        valid = torch.cat([ctx_valid, torch.ones(b, 1, dtype=torch.bool, device=seq.device), seq_valid], dim=1)
        return tokens, valid

    def keypoint_tokens(self, keypoints: Tensor) -> Tensor:
        """Key-point slot tokens ``(B, J+1, D)``: slot ``j`` carries ``kp_{j-1}`` (scaled)."""
        kp_tok = self.kp_slots[None].expand(len(keypoints), -1, -1).clone()
        kp_tok[:, 1:] = kp_tok[:, 1:] + self.kp_embed(keypoints)
        return kp_tok + self.kind_embed.weight[4]

    def decode(self, prefix: Tensor, prefix_valid: Tensor, keypoints: Tensor) -> Tensor:
        """Backbone outputs ``(B, J+1, D)`` of the key-point slots given key points ``(B, J, 2)``
        (scaled; slot ``j`` sees ``kp_0 .. kp_{j-1}``)."""
        kp_tok = self.keypoint_tokens(keypoints)
        valid = torch.cat([prefix_valid, torch.ones(kp_tok.shape[:2], dtype=torch.bool, device=prefix.device)], 1)
        hidden = self.backbone(torch.cat([prefix, kp_tok], dim=1), valid)
        return hidden[:, -kp_tok.shape[1]:]

    def decode_cached(self, cache: Any, keypoints: Tensor) -> Tensor:
        """:meth:`decode` on a cached prefix (:class:`~.gpt2.KVCache`): only the slots are computed."""
        return self.backbone(self.keypoint_tokens(keypoints), past=cache)

    def trajectory(self, hidden_last: Tensor) -> Tensor:
        """``(B, F, 3)`` scaled x, y and yaw (radians) from the last slot's output."""
        return self.traj_head(hidden_last).view(-1, self.future_steps, 3)

    def _gt_keypoints(self, inputs: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        idx = torch.as_tensor(self.kp_index, device=inputs["future"].device)
        return inputs["future"][:, idx, :2] / self.pos_scale, inputs["future_valid"][:, idx].bool()

    # ----------------------------------------------------------------- modes
    def forward(self, inputs: dict[str, Tensor], data_samples: Sequence[Any] | None = None, mode: str = "tensor") -> Any:
        if mode not in FORWARD_MODES:
            raise ValueError(f"STR.forward: mode must be one of {FORWARD_MODES}, got {mode!r}")
        if mode == "loss":
            return self.loss(inputs)
        if mode == "predict":
            return self.predict(inputs, list(data_samples or []))
        return self.teacher_forced(inputs)

    def teacher_forced(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Raw outputs with the true key points fed back (training and validation loss)."""
        gt_kp, kp_valid = self._gt_keypoints(inputs)
        prefix, prefix_valid = self.encode_prefix(inputs)
        hidden = self.decode(prefix, prefix_valid, gt_kp * kp_valid[..., None])
        out = dict(hidden=hidden, trajectory=self.trajectory(hidden[:, -1]), gt_keypoints=gt_kp, keypoint_valid=kp_valid)
        if self.diffusion is None:
            goals = self.goal_head(hidden[:, 0]).view(-1, self.num_modes, 3)
            out.update(goals=goals[..., :2], goal_logits=goals[..., 2], keypoints=self.kp_head(hidden[:, 1:-1]))
        return out

    def loss(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Trajectory, yaw, key-point, goal and mode-classification (or diffusion) losses."""
        out = self.teacher_forced(inputs)
        w = self.loss_weights
        valid = inputs["future_valid"].bool()
        weight = valid.float()
        denom = weight.sum().clamp(min=1.0)
        future = inputs["future"]
        traj = out["trajectory"]
        xy_err = F.smooth_l1_loss(traj[..., :2], future[..., :2] / self.pos_scale, reduction="none", beta=self.beta).sum(-1)
        losses = dict(loss_traj=w["traj"] * (xy_err * weight).sum() / denom,
                      loss_yaw=w["yaw"] * ((1 - torch.cos(traj[..., 2] - future[..., 2])) * weight).sum() / denom)
        gt_kp, kp_valid = out["gt_keypoints"], out["keypoint_valid"]
        if self.diffusion is not None:
            losses["loss_diffusion"] = w["diffusion"] * self.diffusion.loss(out["hidden"][:, 0], gt_kp, kp_valid)
            return losses
        goal_valid = kp_valid[:, 0].float()
        dist = (out["goals"] - gt_kp[:, None, 0]).norm(dim=-1)
        best = dist.argmin(dim=1)
        best_goal = out["goals"][torch.arange(len(best), device=best.device), best]
        goal_err = F.smooth_l1_loss(best_goal, gt_kp[:, 0], reduction="none", beta=self.beta).sum(-1)
        n_goal = goal_valid.sum().clamp(min=1.0)
        losses["loss_goal"] = w["goal"] * (goal_err * goal_valid).sum() / n_goal
        losses["loss_cls"] = w["cls"] * (F.cross_entropy(out["goal_logits"], best, reduction="none") * goal_valid).sum() / n_goal
        kp_w = kp_valid[:, 1:].float()
        kp_err = F.smooth_l1_loss(out["keypoints"], gt_kp[:, 1:], reduction="none", beta=self.beta).sum(-1)
        losses["loss_keypoint"] = w["keypoint"] * (kp_err * kp_w).sum() / kp_w.sum().clamp(min=1.0)
        return losses

    @torch.no_grad()
    def predict_local(self, inputs: dict[str, Tensor], generator: torch.Generator | None = None
                      ) -> tuple[Tensor, Tensor]:
        """``K`` modes per target in its local frame: trajectories ``(B, K, F, 3)`` (metres,
        radians) and scores ``(B, K)`` (probabilities, highest first)."""
        prefix, prefix_valid = self.encode_prefix(inputs)
        b, k, num_kp = len(prefix), self.num_modes, len(self.kp_index)
        _, cache = self.backbone(prefix, prefix_valid, return_cache=True)  # the prefix is computed once
        hidden = self.decode_cached(cache, prefix.new_zeros(b, num_kp, 2))  # slot 0 sees no key point
        cache_k = cache.repeat_interleave(k)
        kps = prefix.new_zeros(b * k, num_kp, 2)
        if self.diffusion is not None:
            kps = self.diffusion.sample(hidden[:, 0], k, generator=generator).view(b * k, num_kp, 2)
            scores = prefix.new_full((b, k), 1.0 / k)
        else:
            goals = self.goal_head(hidden[:, 0]).view(b, k, 3)
            kps[:, 0] = goals[..., :2].reshape(b * k, 2)
            scores = goals[..., 2].softmax(dim=-1)
            for j in range(1, num_kp):
                kps[:, j] = self.kp_head(self.decode_cached(cache_k, kps)[:, j])
        traj = self.trajectory(self.decode_cached(cache_k, kps)[:, -1]).view(b, k, self.future_steps, 3)
        traj = torch.cat([traj[..., :2] * self.pos_scale, traj[..., 2:]], dim=-1)
        order = scores.argsort(dim=1, descending=True)
        traj = torch.gather(traj, 1, order[:, :, None, None].expand_as(traj))
        return traj, torch.gather(scores, 1, order)

    def predict(self, inputs: dict[str, Tensor], data_samples: list[Any]) -> list[Any]:
        """The samples with ``pred_trajectories`` ``(K, F, 2)`` / ``pred_yaws`` in the world frame
        and ``pred_scores`` ``(K,)``."""
        traj, scores = self.predict_local(inputs)
        if len(data_samples) != len(traj):
            raise ValueError(f"STR.predict: {len(data_samples)} samples for a batch of {len(traj)}")
        traj, scores = traj.float().cpu().numpy().astype(np.float64), scores.float().cpu().numpy().astype(np.float64)
        for sample, modes, probs in zip(data_samples, traj, scores):
            x, y, yaw = (float(v) for v in np.asarray(sample.origin)[:3])
            c, s = np.cos(yaw), np.sin(yaw)
            rot = np.array([[c, -s], [s, c]])
            sample.pred_trajectories = modes[..., :2] @ rot.T + np.array([x, y])
            sample.pred_yaws = (modes[..., 2] + yaw + np.pi) % (2 * np.pi) - np.pi
            sample.pred_scores = probs
        return data_samples
