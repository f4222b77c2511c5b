"""What the vector-map heads share: configuration, BEV input projection, optional inputs,
one-to-one and one-to-many Hungarian losses on every decoder layer, and prediction packing.

A subclass implements :meth:`BaseMapHead.decode`: from the projected BEV ``value``
``(B, C, H, W)``, the instance-query ``query_init`` and reference ``ref_init`` overrides and an
instance-level attention mask, it returns per decoder layer the classification logits
``(B, Q_all, num_classes)`` and the points ``(B, Q_all, P, 2)`` normalized to ``map_range``.

Optional inputs (e.g. HRMapNet's historical-map prior) for the first ``num_queries`` queries:

* ``query_init`` ``(B, num_queries, embed_dims)``: added to the instance query embeddings;
* ``ref_init`` ``(B, num_queries, num_points, 2)``: initial reference points in ``[0, 1]`` of
  ``map_range`` (x, y), replacing the learned initial ones.

Seed queries (``num_seed_queries=K > 0``, :class:`SeedQueries`): ``K`` further instance queries
appended *beside* the learned ones instead of overriding them; each starts from a learned seed
embedding plus its ``query`` and at its own ``ref`` points.  They are one-to-one queries
(matched and predicted with the learned ones); slots whose ``mask`` is False take part in the
decoder but never match and are never predicted.  So a prior that is wrong costs at most
duplicates, never the learned queries' coverage of the scene.

Auxiliary BEV segmentation (``aux_seg=dict(weight=w, half_width=m)``, MapTRv2's dense loss,
:mod:`.aux_seg`): a conv branch on the input BEV predicts the rasterized ground truth
(``loss_seg``), training only.

One-to-many auxiliary matching (``one_to_many=dict(num_queries=N, repeat=K, weight=w)``) adds
``N`` training-only queries matched against the ground truth repeated ``K`` times; an attention
mask keeps the two groups from seeing each other, and inference uses only the first group.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ...structures.det_sample import DetSample
from ...structures.map_instances import MapInstances
from .aux_seg import MapAuxSegmentation
from .geometry import check_range, denormalize
from .losses import map_losses
from .matching import PermutationHungarianMatcher
from .targets import MapTargets, samples_to_targets

MAP_CLASSES: tuple[str, ...] = ("divider", "ped_crossing", "boundary")
"""The vector-map classes in the stack's order (contract)."""


def chamfer_nms(points: Tensor, labels: Tensor, distance: float) -> Tensor:
    """Indices kept by greedy non-maximum suppression of ``points (K, P, 2)`` (metres, sorted by
    descending score): an element is dropped when a kept one of its class lies within
    ``distance`` metres by symmetric mean Chamfer distance (a duplicate of the same element)."""
    if points.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=points.device)
    flat = points.float()
    pair = torch.linalg.vector_norm(flat[:, None, :, None] - flat[None, :, None], dim=-1)  # (K, K, P, P)
    chamfer = 0.5 * (pair.amin(dim=-1).mean(dim=-1) + pair.amin(dim=-2).mean(dim=-1))  # (K, K)
    close = (chamfer < distance) & (labels[:, None] == labels[None])
    suppressed = torch.zeros(points.shape[0], dtype=torch.bool, device=points.device)
    for i in range(points.shape[0]):
        if not suppressed[i]:
            later = close[i].clone()
            later[:i + 1] = False
            suppressed |= later
    return torch.nonzero(~suppressed).squeeze(1)


class MapHeadInputError(ValueError):
    """Raised for BEV features or optional inputs of the wrong shape."""


@dataclasses.dataclass(frozen=True)
class SeedQueries:
    """Extra instance queries beside the learned ones (module doc): ``query (B, K, E)`` added to
    the seed embedding, ``ref (B, K, P, 2)`` initial points in ``[0, 1]``, ``mask (B, K)`` valid slots."""

    query: Tensor
    ref: Tensor
    mask: Tensor


BLOCKED_LOGIT = -1.0e4
"""Logit given to empty seed slots: probability 0, so they never match and are never predicted."""


class BaseMapHead(nn.Module):
    """Shared part of :class:`~.maptr_head.MapTRHead` and :class:`~.mapqr_head.MapQRHead`
    (module doc).  ``map_range`` is the predicted region and ``bev_range`` the extent of the
    input BEV map (defaults to ``map_range``), both ``(x_min, y_min, x_max, y_max)`` metres."""

    def __init__(self, in_channels: int, map_range: Sequence[float], bev_range: Sequence[float] | None = None,
                 class_names: Sequence[str] = MAP_CLASSES, closed_classes: Sequence[str] = ("ped_crossing",),
                 embed_dims: int = 256, num_queries: int = 50, num_points: int = 20, num_layers: int = 6,
                 num_heads: int = 8, num_samples: int = 4, ffn_dims: int = 512, dropout: float = 0.1,
                 loss_weights: dict[str, float] | None = None, matcher: dict[str, float] | None = None,
                 focal_alpha: float = 0.25, focal_gamma: float = 2.0, aux_loss: bool = True,
                 one_to_many: dict[str, Any] | None = None, aux_seg: dict[str, Any] | None = None,
                 num_seed_queries: int = 0, train_cfg: dict | None = None,
                 test_cfg: dict | None = None) -> None:
        super().__init__()
        self.map_range = check_range(map_range, "map_range")
        self.bev_range = check_range(bev_range if bev_range is not None else map_range, "bev_range")
        self.class_names = tuple(class_names)
        unknown = [name for name in closed_classes if name not in self.class_names]
        if unknown:
            raise ValueError(f"{type(self).__name__}: closed_classes {unknown} not in class_names {self.class_names}")
        self.closed_labels = torch.tensor([n in closed_classes for n in self.class_names])
        self.num_classes = len(self.class_names)
        self.embed_dims, self.num_queries, self.num_points = embed_dims, num_queries, num_points
        self.num_layers, self.num_heads, self.num_samples = num_layers, num_heads, num_samples
        self.ffn_dims, self.dropout = ffn_dims, dropout
        self.loss_weights = {"cls": 2.0, "pts": 5.0, "dir": 0.005, **(loss_weights or {})}
        self.matcher = PermutationHungarianMatcher(**{"cls_weight": 2.0, "pts_weight": 5.0, **(matcher or {}),
                                                      "alpha": focal_alpha, "gamma": focal_gamma})
        self.focal_alpha, self.focal_gamma, self.aux_loss = focal_alpha, focal_gamma, aux_loss
        self.one_to_many = dict(one_to_many) if one_to_many else None
        if self.one_to_many is not None:
            missing = {"num_queries", "repeat"} - set(self.one_to_many)
            if missing:
                raise ValueError(f"{type(self).__name__}: one_to_many needs keys {sorted(missing)}")
            self.one_to_many.setdefault("weight", 1.0)
        self.num_all_queries = num_queries + (self.one_to_many["num_queries"] if self.one_to_many else 0)
        if num_seed_queries < 0:
            raise ValueError(f"{type(self).__name__}: num_seed_queries must be >= 0, got {num_seed_queries}")
        self.num_seed_queries = int(num_seed_queries)
        self.train_cfg = dict(train_cfg or {})
        self.test_cfg = {"max_per_sample": 50, "score_threshold": 0.0, "nms_distance": 0.0, **(test_cfg or {})}
        unknown_test = set(self.test_cfg) - {"max_per_sample", "score_threshold", "nms_distance"}
        if unknown_test:
            raise ValueError(f"{type(self).__name__}: unknown test_cfg keys {sorted(unknown_test)}")
        self.input_proj = nn.Sequential(nn.Conv2d(in_channels, embed_dims, 1),
                                        nn.GroupNorm(min(32, embed_dims // 4) or 1, embed_dims))
        self.in_channels = in_channels
        self.aux_seg = None if not aux_seg else MapAuxSegmentation(in_channels, self.num_classes, self.bev_range,
                                                                    **aux_seg)

    # -- subclass hook ---------------------------------------------------------------------
    def decode(self, value: Tensor, query_init: Tensor | None, ref_init: Tensor | None,
               num_queries: int, attn_mask: Tensor | None,
               seeds: SeedQueries | None = None) -> tuple[list[Tensor], list[Tensor]]:
        """Per-layer logits ``(B, Q, C)`` and normalized points ``(B, Q, P, 2)`` of the first
        ``num_queries`` queries, then the ``K`` seed queries when ``seeds`` (module doc)."""
        raise NotImplementedError

    def initial_reference_points(self, num_queries: int) -> Tensor:
        """``(num_queries, P, 2)`` learned initial reference points in ``[0, 1]`` of ``map_range``."""
        raise NotImplementedError

    def default_reference_points(self) -> Tensor:
        """``(num_queries, P, 2)``: the initial reference points that ``ref_init`` replaces (HRMapNet
        keeps them for the query slots its prior does not seed)."""
        return self.initial_reference_points(self.num_queries)

    # -- forward ---------------------------------------------------------------------------
    def _check_inputs(self, bev: Tensor, query_init: Tensor | None, ref_init: Tensor | None,
                      seeds: SeedQueries | None = None) -> None:
        name = type(self).__name__
        if bev.ndim != 4 or bev.shape[1] != self.in_channels:
            raise MapHeadInputError(f"{name}: bev must be (B, {self.in_channels}, H, W), got {tuple(bev.shape)}")
        batch = bev.shape[0]
        if query_init is not None and tuple(query_init.shape) != (batch, self.num_queries, self.embed_dims):
            raise MapHeadInputError(f"{name}: query_init must be ({batch}, {self.num_queries}, "
                                    f"{self.embed_dims}), got {tuple(query_init.shape)}")
        if ref_init is not None and tuple(ref_init.shape) != (batch, self.num_queries, self.num_points, 2):
            raise MapHeadInputError(f"{name}: ref_init must be ({batch}, {self.num_queries}, "
                                    f"{self.num_points}, 2), got {tuple(ref_init.shape)}")
        if seeds is None:
            return
        k = self.num_seed_queries
        if k == 0:
            raise MapHeadInputError(f"{name}: got seed queries but num_seed_queries=0; set the head's "
                                    f"num_seed_queries to the seeder's max_queries")
        expected = {"query": (batch, k, self.embed_dims), "ref": (batch, k, self.num_points, 2), "mask": (batch, k)}
        for field, shape in expected.items():
            got = tuple(getattr(seeds, field).shape)
            if got != shape:
                raise MapHeadInputError(f"{name}: seeds.{field} must be {shape} (num_seed_queries={k}), got {got}")

    def group_mask(self, num_queries: int, device: torch.device, num_seeds: int = 0) -> Tensor | None:
        """``(Q_all, Q_all)`` bool mask (True = blocked) separating the one-to-one queries (the
        first ``num_queries`` and ``num_seeds`` seed queries at the end) from the one-to-many
        ones in between; None with one group."""
        if num_queries == self.num_queries:
            return None
        group = torch.arange(num_queries + num_seeds, device=device) >= self.num_queries
        group[num_queries:] = False
        return group[:, None] != group[None, :]

    def forward(self, bev: Tensor, query_init: Tensor | None = None, ref_init: Tensor | None = None,
                seeds: SeedQueries | None = None) -> dict[str, list[Tensor]]:
        """``{"cls": [(B, Q, C)] * layers, "pts": [(B, Q, P, 2)] * layers}``; in training with
        one-to-many matching ``Q`` includes the auxiliary queries after the first
        ``num_queries``; seed queries come last.  Empty seed slots get ``BLOCKED_LOGIT``."""
        self._check_inputs(bev, query_init, ref_init, seeds)
        num = self.num_all_queries if self.training else self.num_queries
        num_seeds = 0 if seeds is None else self.num_seed_queries
        cls, pts = self.decode(self.input_proj(bev), query_init, ref_init, num,
                               self.group_mask(num, bev.device, num_seeds), seeds)
        if seeds is not None:
            open_slots = torch.cat([seeds.mask.new_ones(seeds.mask.shape[0], num), seeds.mask.bool()], dim=1)
            cls = [torch.where(open_slots[..., None], c, c.new_tensor(BLOCKED_LOGIT)) for c in cls]
        return {"cls": cls, "pts": pts}

    def one_to_one(self, cls: Tensor, pts: Tensor, seeded: bool) -> tuple[Tensor, Tensor]:
        """The one-to-one queries of one layer's outputs: the learned ones, then the seed ones."""
        q = self.num_queries
        if not seeded:
            return cls[:, :q], pts[:, :q]
        k = self.num_seed_queries
        return torch.cat([cls[:, :q], cls[:, -k:]], dim=1), torch.cat([pts[:, :q], pts[:, -k:]], dim=1)

    # -- losses ----------------------------------------------------------------------------
    def _layer_losses(self, logits: Tensor, points: Tensor, targets: Sequence[MapTargets]) -> dict[str, Tensor]:
        """Hungarian-matched losses of one layer over the batch."""
        batch, queries = logits.shape[:2]
        labels = torch.full((batch * queries,), -1, dtype=torch.long, device=logits.device)
        rows, gt_pts, gt_closed = [], [], []
        for b, target in enumerate(targets):
            match = self.matcher.match(logits[b].detach(), points[b].detach(), target.labels,
                                       target.points, target.closed)
            flat = match.pred_index + b * queries
            labels[flat] = target.labels[match.gt_index]
            rows.append(flat)
            gt_pts.append(match.gt_points)
            gt_closed.append(target.closed[match.gt_index])
        matched = torch.cat(rows)
        scale = points.new_tensor([self.map_range[2] - self.map_range[0], self.map_range[3] - self.map_range[1]])
        return map_losses(logits.flatten(0, 1), points.flatten(0, 1), labels, matched,
                          torch.cat(gt_pts).to(points.dtype), torch.cat(gt_closed), float(matched.numel()),
                          scale, self.loss_weights, self.focal_alpha, self.focal_gamma)

    def loss(self, bev: Tensor, samples: Sequence[DetSample], query_init: Tensor | None = None,
             ref_init: Tensor | None = None, seeds: SeedQueries | None = None) -> dict[str, Tensor]:
        """Losses of the last layer (``loss_cls``, ``loss_pts``, ``loss_dir``), of the earlier
        layers (``d{i}.loss_*``), of the one-to-many group (``o2m.d{i}.loss_*``) and the
        auxiliary segmentation (``loss_seg``)."""
        outputs = self(bev, query_init, ref_init, seeds)
        seeded = seeds is not None
        targets = samples_to_targets(samples, self.class_names, self.num_points, self.map_range, bev.device)
        layers = range(len(outputs["cls"])) if self.aux_loss else [len(outputs["cls"]) - 1]
        last = len(outputs["cls"]) - 1
        losses: dict[str, Tensor] = {}
        q = self.num_queries
        for i in layers:
            prefix = "" if i == last else f"d{i}."
            cls, pts = outputs["cls"][i], outputs["pts"][i]
            for key, value in self._layer_losses(*self.one_to_one(cls, pts, seeded), targets).items():
                losses[prefix + key] = value
            o2m_end = cls.shape[1] - (self.num_seed_queries if seeded else 0)
            if self.one_to_many is not None and o2m_end > q:
                repeated = [t.repeat(int(self.one_to_many["repeat"])) for t in targets]
                for key, value in self._layer_losses(cls[:, q:o2m_end], pts[:, q:o2m_end], repeated).items():
                    losses[f"o2m.{prefix}{key}"] = value * float(self.one_to_many["weight"])
        if self.aux_seg is not None:
            losses.update(self.aux_seg.loss(bev, samples, self.class_names))
        return losses

    # -- inference -------------------------------------------------------------------------
    @torch.no_grad()
    def decode_predictions(self, logits: Tensor, points: Tensor) -> list[MapInstances]:
        """Top-``max_per_sample`` (query, class) pairs of each sample as metric MapInstances
        (empty seed slots, at ``BLOCKED_LOGIT``, are never among them)."""
        out = []
        scores_all = logits.sigmoid().flatten(1)  # (B, Q * C)
        open_slot = logits.flatten(1) > 0.5 * BLOCKED_LOGIT
        k = min(int(self.test_cfg["max_per_sample"]), scores_all.shape[1])
        metric = denormalize(points.float(), self.map_range)
        closed_lut = self.closed_labels.to(logits.device)
        for b in range(logits.shape[0]):
            scores, index = scores_all[b].topk(k)
            keep = (scores >= float(self.test_cfg["score_threshold"])) & open_slot[b, index]
            scores, index = scores[keep], index[keep]
            query, label = index // self.num_classes, index % self.num_classes
            if float(self.test_cfg["nms_distance"]) > 0:
                kept = chamfer_nms(metric[b, query], label, float(self.test_cfg["nms_distance"]))
                scores, query, label = scores[kept], query[kept], label[kept]
            out.append(MapInstances(metric[b, query].cpu().numpy(), label.cpu().numpy(), self.class_names,
                                    closed_lut[label].cpu().numpy(), scores.cpu().numpy()))
        return out

    def predict(self, bev: Tensor, samples: Sequence[DetSample], query_init: Tensor | None = None,
                ref_init: Tensor | None = None, seeds: SeedQueries | None = None) -> list[DetSample]:
        """Copies of the samples with ``pred_map`` (LiDAR-frame points in metres, scores)."""
        if len(samples) != bev.shape[0]:
            raise MapHeadInputError(f"{type(self).__name__}: {bev.shape[0]} BEV maps for {len(samples)} samples")
        outputs = self(bev, query_init, ref_init, seeds)
        preds = self.decode_predictions(*self.one_to_one(outputs["cls"][-1], outputs["pts"][-1], seeds is not None))
        return [dataclasses.replace(s, pred_map=p) for s, p in zip(samples, preds)]
