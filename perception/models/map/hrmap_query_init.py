"""HRMapNet's map-query initialization: queries seeded from confident cells of the historical map.

From the prior raster ``(B, C, h, w)`` (the global map cropped to the ego BEV, values in [0, 1]),
in ``mode="components"`` each confident connected component becomes one query whose reference
points span the whole component (:mod:`.hrmap_components`); in ``mode="peaks"`` the
module keeps local maxima (max-pool non-maximum suppression) above ``score_threshold``, takes the
``max_queries`` most confident ones over all classes, and for each builds

* ``ref_init``: ``num_points`` reference points on a ``segment_length`` metre segment through the
  cell, along the local direction of the element (the structure tensor of the class channel:
  the line runs across the dominant gradient), normalized to ``[0, 1]`` of ``map_range``;
* ``query_init``: a learned embedding of (class, confidence, sinusoidal position), added to the
  head's instance queries.

Where the seeds go (``slots``):

* ``"replace"`` (HRMapNet): the seeds take over the first learned query slots.  Query slots
  without a confident cell keep the head's own learned reference points: the module returns
  ``ref_init`` for the selected slots and a ``mask``; :meth:`HRMapQueryInit.fill` merges it with
  the head's defaults (the head replaces all of ``ref_init``, so the defaults must come from the
  head -- :class:`~.hrmap_prior.HRMapPrior` passes them).
* ``"extra"``: ``max_queries`` seed queries beside the learned ones (the head's
  ``num_seed_queries``, :class:`~.base_head.SeedQueries`); a map that is wrong can then add
  duplicates but never takes a learned query away from the scene.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...registry import MODELS
from .hrmap_components import component_elements

QUERY_INIT_MODES: tuple[str, ...] = ("peaks", "components")
SEED_SLOTS: tuple[str, ...] = ("replace", "extra")


@MODELS.register_module()
class HRMapQueryInit(nn.Module):
    """Top-K confident prior cells -> query embeddings and reference points (module doc).

    ``map_range`` is ``(x_min, y_min, x_max, y_max)`` of the head's normalized points and of the
    prior raster (the crop is taken on that range).
    """

    def __init__(self, num_classes: int, embed_dims: int, num_queries: int, num_points: int,
                 map_range: Sequence[float], max_queries: int | None = None, score_threshold: float = 0.5,
                 nms_kernel: int = 9, segment_length: float = 4.0, pos_feats: int = 32, mode: str = "peaks",
                 closed_labels: Sequence[int] = (), min_cells: int = 8, slots: str = "replace") -> None:
        super().__init__()
        if mode not in QUERY_INIT_MODES:
            raise ValueError(f"HRMapQueryInit: mode must be one of {QUERY_INIT_MODES}, got {mode!r}")
        if slots not in SEED_SLOTS:
            raise ValueError(f"HRMapQueryInit: slots must be one of {SEED_SLOTS}, got {slots!r}")
        self.slots = slots
        self.mode, self.closed_labels, self.min_cells = mode, tuple(closed_labels), min_cells
        if len(map_range) != 4 or map_range[2] <= map_range[0] or map_range[3] <= map_range[1]:
            raise ValueError(f"HRMapQueryInit: map_range must be (x_min, y_min, x_max, y_max), got {map_range}")
        if nms_kernel % 2 != 1:
            raise ValueError(f"HRMapQueryInit: nms_kernel must be odd, got {nms_kernel}")
        self.num_classes, self.embed_dims = num_classes, embed_dims
        self.num_queries, self.num_points = num_queries, num_points
        self.max_queries = min(num_queries, max_queries if max_queries is not None else num_queries // 2)
        if slots == "extra" and max_queries is not None:
            self.max_queries = int(max_queries)  # its own slots: not bounded by the learned ones
        self.map_range = tuple(float(v) for v in map_range)
        self.score_threshold, self.nms_kernel = score_threshold, nms_kernel
        self.segment_length, self.pos_feats = segment_length, pos_feats
        self.class_embed = nn.Embedding(num_classes, embed_dims)
        self.mlp = nn.Sequential(nn.Linear(2 * pos_feats + 1, embed_dims), nn.ReLU(inplace=True),
                                 nn.Linear(embed_dims, embed_dims))

    def select(self, prior: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Per sample the ``max_queries`` best peaks: ``scores (B, K)``, ``labels (B, K)``,
        centres ``(B, K, 2)`` normalized (x, y) and line directions ``(B, K)`` in radians
        (metric frame); slots with no peak above the threshold get score 0."""
        batch, channels, height, width = prior.shape
        if channels != self.num_classes:
            raise ValueError(f"HRMapQueryInit: prior must have {self.num_classes} channels, got {tuple(prior.shape)}")
        # a fixed sub-quantum pattern breaks ties on plateaus (uint8 maps saturate at 255), so a
        # line of equal cells yields peaks spaced by the NMS window instead of every cell
        rows_i = torch.arange(height, device=prior.device)[:, None]
        cols_i = torch.arange(width, device=prior.device)[None]
        ties = ((rows_i * 7 + cols_i * 13) % 17).to(prior.dtype) * (1e-4 / 17)
        ranked = prior + ties
        pooled = F.max_pool2d(ranked, self.nms_kernel, stride=1, padding=self.nms_kernel // 2)
        peaks = torch.where((ranked == pooled) & (prior >= self.score_threshold), prior, torch.zeros_like(prior))
        scores, index = peaks.flatten(1).topk(self.max_queries, dim=1)
        labels = index // (height * width)
        rows = (index % (height * width)) // width
        cols = index % width
        centres = torch.stack([(cols.float() + 0.5) / width, (rows.float() + 0.5) / height], dim=-1)
        theta = self._directions(prior)                                         # (B, C, h, w)
        directions = theta.flatten(1).gather(1, index)
        return scores, labels, centres, directions

    @staticmethod
    def _directions(prior: Tensor) -> Tensor:
        """Line direction per cell: perpendicular to the dominant gradient (structure tensor)."""
        channels = prior.shape[1]
        sobel_x = prior.new_tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
        kernels = torch.stack([sobel_x, sobel_x.T])[:, None].repeat(channels, 1, 1, 1)  # (2C, 1, 3, 3)
        grads = F.conv2d(prior.repeat_interleave(2, dim=1), kernels, padding=1, groups=2 * channels)
        gx, gy = grads[:, 0::2], grads[:, 1::2]                                # +x columns, +y rows
        jxx, jyy, jxy = (F.avg_pool2d(t, 7, stride=1, padding=3) for t in (gx * gx, gy * gy, gx * gy))
        return 0.5 * torch.atan2(2 * jxy, jxx - jyy) + math.pi / 2

    def forward(self, prior: Tensor) -> dict[str, Tensor]:
        """``query_init (B, Q, E)``, ``ref_init (B, Q, P, 2)`` (zeros outside ``mask``) and
        ``mask (B, Q)`` bool of the seeded slots (the first ``max_queries`` slots at most); with
        ``slots="extra"`` ``Q`` is ``max_queries`` and empty slots sit at the map centre."""
        if self.mode == "components":
            scores, labels, refs = self.components(prior)
            return self._pack(prior, scores, labels, refs.mean(dim=2), refs)
        scores, labels, centres, theta = self.select(prior)
        x0, y0, x1, y1 = self.map_range
        half = 0.5 * self.segment_length
        steps = torch.linspace(-1.0, 1.0, self.num_points, device=prior.device, dtype=prior.dtype)
        offsets = torch.stack([torch.cos(theta), torch.sin(theta)], dim=-1)[:, :, None] * half * steps[:, None]
        scale = prior.new_tensor([x1 - x0, y1 - y0])
        refs = (centres[:, :, None] + offsets / scale).clamp(0.0, 1.0)             # (B, K, P, 2)
        return self._pack(prior, scores, labels, centres, refs)

    def components(self, prior: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``"components"`` mode (:mod:`.hrmap_components`): per sample the ``max_queries`` most
        confident connected components as ``scores (B, K)``, ``labels (B, K)`` and full-length
        ``refs (B, K, P, 2)``; empty slots get score 0."""
        batch = prior.shape[0]
        x0, y0, x1, y1 = self.map_range
        scores = prior.new_zeros(batch, self.max_queries)
        labels = torch.zeros(batch, self.max_queries, dtype=torch.long, device=prior.device)
        refs = prior.new_full((batch, self.max_queries, self.num_points, 2), 0.5)
        array = prior.detach().float().cpu().numpy()
        for b in range(batch):
            s, lab, pts = component_elements(array[b], self.score_threshold, self.num_points, self.closed_labels,
                                             self.min_cells, self.max_queries, aspect=(x1 - x0, y1 - y0))
            count = len(s)
            scores[b, :count] = torch.from_numpy(s).to(prior)
            labels[b, :count] = torch.from_numpy(lab).to(prior.device)
            refs[b, :count] = torch.from_numpy(pts).to(prior)
        return scores, labels, refs

    def _pack(self, prior: Tensor, scores: Tensor, labels: Tensor, centres: Tensor, refs: Tensor) -> dict[str, Tensor]:
        batch, count = scores.shape
        seeded = scores > 0
        embed = self.class_embed(labels) + self.mlp(torch.cat([_sine(centres, self.pos_feats),
                                                               scores[..., None]], dim=-1))
        embed = embed * seeded[..., None]
        if self.slots == "extra":
            return {"query_init": embed, "mask": seeded,
                    "ref_init": torch.where(seeded[..., None, None], refs, torch.full_like(refs, 0.5))}
        query_init = prior.new_zeros(batch, self.num_queries, self.embed_dims)
        ref_init = prior.new_zeros(batch, self.num_queries, self.num_points, 2)
        mask = torch.zeros(batch, self.num_queries, dtype=torch.bool, device=prior.device)
        query_init[:, :count] = embed
        ref_init[:, :count] = refs
        mask[:, :count] = seeded
        return {"query_init": query_init, "ref_init": ref_init, "mask": mask}

    @staticmethod
    def fill(ref_init: Tensor, mask: Tensor, defaults: Tensor) -> Tensor:
        """``ref_init`` where ``mask``, else the head's default points ``defaults (Q, P, 2)`` or ``(B, Q, P, 2)``."""
        defaults = defaults.to(ref_init).expand_as(ref_init)
        return torch.where(mask[..., None, None], ref_init, defaults)


def _sine(points: Tensor, num_feats: int, temperature: float = 10000.0) -> Tensor:
    """``(..., 2 * num_feats)`` sinusoidal embedding of normalized ``(..., 2)`` points."""
    half = num_feats // 2
    freqs = temperature ** (torch.arange(half, device=points.device, dtype=points.dtype) / half)
    angles = points[..., None] * 2 * math.pi / freqs                             # (..., 2, half)
    return torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(-2)
