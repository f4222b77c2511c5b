"""HRMapPrior: the ``bev_prior`` module of :class:`~.map_detector.MapDetector` for HRMapNet.

Per batch it crops the global raster map (:class:`~.hrmap_global_map.GlobalRasterMap`, keyed by
the sample's location) to each sample's BEV, fuses it into the BEV features
(:class:`~.hrmap_aggregation.HRMapBEVAggregation`) and seeds map queries from its confident cells
(:class:`~.hrmap_query_init.HRMapQueryInit`).  After prediction, :meth:`HRMapPrior.update` draws
the predicted vectors (:func:`~.hrmap_rasterize.rasterize_instances`) into the global map.

Where the prior comes from in training (``train_prior``):

* ``"gt"`` (default): the sample's own vector ground truth, rasterized and corrupted (whole prior
  dropped with ``drop_prob``, instances dropped with ``instance_drop`` (a probability, or a
  ``(low, high)`` range it is drawn from per sample: then how complete the prior is varies, so
  an element missing from it is no evidence against the element), confidence scaled into
  ``[min_confidence, 1]``, a random shift of up to ``shift`` metres; optionally each vertex
  jittered by ``jitter`` metres (std) and ``false_instances`` spurious elements on average, copies
  of the sample's own elements moved by up to ``false_offset`` metres and turned at random; with
  ``fragment`` that share of the elements broken into pieces by 1-3 gaps of ``fragment_gap``
  metres, as a predicted map breaks an element into several connected components): a
  stand-in for a map built by earlier traversals, so one short training run teaches both the
  with- and without-prior case.  Jitter and spurious elements make it look like a map drawn from
  a weak model's own predictions (crumpled lines, false positives), which is what a second
  traversal reads, so the model learns to weigh the prior against its LiDAR evidence.
  An approximation of HRMapNet, which fills the map with predictions while training.
With ``self_prior > 0`` that share of the training samples instead gets the model's own
prediction of the frame as its prior (made without a prior and without gradients by
:class:`~.hrmap_detector.HRMapNetDetector`, drawn above ``update_score_threshold`` as the
test-time map is): the fragments, merges and misses of a map drawn from predictions, which
query initialization must learn to take with caution.

* ``"map"``: the global map as at test time (fill it first: with ground truth, or with the
  trained model's own predictions over the train drives, ``tools/hrmap_proof.py``'s
  ``trainmap_build`` pass); each sample's crop is replaced by zeros with ``drop_prob``.
  ``HRMapPassHook(load_from=...)`` loads that map before training.  Caution: a model's
  predictions over frames it has memorised are nearly perfect, so it may learn to copy the
  prior (on the 30-frame synthetic set its mAP without a map halved, README).

Poses: crops and updates use ``lidar2global @ inv(lidar_aug_matrix)`` (``metainfo["aug"]``), the
pose of the augmented frame the features and predictions live in.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ...registry import MODELS
from ...structures.det_sample import DetSample
from ...structures.map_instances import MapInstances
from .base_head import SeedQueries
from .geometry import resample_polyline
from .hrmap_global_map import GlobalRasterMap, bev_grid
from .hrmap_rasterize import rasterize_instances

TRAIN_PRIORS: tuple[str, ...] = ("gt", "map")


class HRMapLocationError(KeyError):
    """A sample carries no location to key the global map with."""


def sample_location(sample: DetSample, key: str) -> str:
    """The global-map key of ``sample``: ``metainfo[key]`` (``PackDetInputs`` packs the frame's location)."""
    location = sample.metainfo.get(key)
    if not location:
        raise HRMapLocationError(
            f"sample {sample.token}: metainfo has no {key!r} to key the HRMapNet global map; PackDetInputs "
            f"copies the frame's location there, so the dataset gave the frame none (add "
            f"dict(type='HRMapLocation', fallback='my-town') before PackDetInputs to name one)")
    return str(location)


def sample_pose(sample: DetSample) -> np.ndarray:
    """World pose of the (possibly augmented) LiDAR frame the sample's features live in."""
    aug = (sample.metainfo.get("aug") or {}).get("lidar_aug_matrix")
    pose = np.asarray(sample.lidar2global, dtype=np.float64)
    return pose if aug is None else pose @ np.linalg.inv(np.asarray(aug, dtype=np.float64))


@MODELS.register_module()
class HRMapPrior(nn.Module):
    """Historical raster map prior (module doc).

    Args:
        class_names: map classes (channels of the global map), the head's order.
        bev_channels: channels of the BEV features.
        map_range: ``(x_min, y_min, x_max, y_max)`` of the head's predictions (query init crop).
        bev_range: extent of the BEV features (aggregation crop); defaults to ``map_range``.
        resolution: metres per cell of the crops and of the global map (default 0.3 m).
        global_map: :class:`GlobalRasterMap` options (``fusion``, ``tile_cells``, ``increment``...).
        aggregation / query_init: options of the two consumers; None switches one off.
        update_score_threshold / line_half_width: how predictions are drawn into the map.
    """

    def __init__(self, class_names: Sequence[str], bev_channels: int, map_range: Sequence[float],
                 bev_range: Sequence[float] | None = None, resolution: float = 0.3,
                 global_map: Mapping[str, Any] | None = None, aggregation: Mapping[str, Any] | None = None,
                 query_init: Mapping[str, Any] | None = None, update_score_threshold: float = 0.3,
                 line_half_width: float = 0.6, location_key: str = "location", train_prior: str = "gt",
                 drop_prob: float = 0.3, instance_drop: float | Sequence[float] = 0.3,
                 min_confidence: float = 0.5, shift: float = 0.5, jitter: float = 0.0, false_instances: float = 0.0,
                 false_offset: float = 8.0, fragment: float = 0.0, fragment_gap: Sequence[float] = (1.0, 4.0),
                 self_prior: float = 0.0, enabled: bool = True) -> None:
        super().__init__()
        if train_prior not in TRAIN_PRIORS:
            raise ValueError(f"HRMapPrior: train_prior must be one of {TRAIN_PRIORS}, got {train_prior!r}")
        self.class_names = tuple(class_names)
        num_classes = len(self.class_names)
        self.map_grid = _grid_of(map_range, resolution)
        self.bev_grid = _grid_of(bev_range if bev_range is not None else map_range, resolution)
        self.global_map = GlobalRasterMap(num_classes=num_classes, resolution=resolution, **dict(global_map or {}))
        self.aggregation = None if aggregation is None else MODELS.build(
            dict(type="HRMapBEVAggregation", bev_channels=bev_channels, prior_channels=num_classes,
                 **dict(aggregation)))
        self.query_init = None if query_init is None else MODELS.build(
            dict(type="HRMapQueryInit", num_classes=num_classes, map_range=tuple(map_range), **dict(query_init)))
        self.update_score_threshold, self.line_half_width = update_score_threshold, line_half_width
        self.location_key, self.train_prior = location_key, train_prior
        drop_range = (instance_drop, instance_drop) if isinstance(instance_drop, (int, float)) else tuple(instance_drop)
        if len(drop_range) != 2 or not 0 <= drop_range[0] <= drop_range[1] <= 1:
            raise ValueError(f"HRMapPrior: instance_drop must be a probability or a (low, high) range in "
                             f"[0, 1], got {instance_drop!r}")
        self.drop_prob, self.instance_drop = drop_prob, tuple(float(v) for v in drop_range)
        self.min_confidence, self.shift = min_confidence, shift
        for name, value in (("jitter", jitter), ("false_instances", false_instances), ("false_offset", false_offset)):
            if not value >= 0:
                raise ValueError(f"HRMapPrior: {name} must be >= 0, got {value!r}")
        self.jitter, self.false_instances, self.false_offset = float(jitter), float(false_instances), float(false_offset)
        if not 0 <= fragment <= 1:
            raise ValueError(f"HRMapPrior: fragment must be a probability, got {fragment!r}")
        if len(fragment_gap) != 2 or not 0 < fragment_gap[0] <= fragment_gap[1]:
            raise ValueError(f"HRMapPrior: fragment_gap must be a (low, high) gap length in metres, got {fragment_gap!r}")
        self.fragment, self.fragment_gap = float(fragment), (float(fragment_gap[0]), float(fragment_gap[1]))
        if not 0 <= self_prior <= 1:
            raise ValueError(f"HRMapPrior: self_prior must be a probability, got {self_prior!r}")
        self.self_prior = float(self_prior)
        self.enabled = enabled
        """False: the prior is all zeros (the 'without historical map' evaluation, same weights)."""

    # ------------------------------------------------------------------ priors
    def crops(self, samples: Sequence[DetSample], device: torch.device,
              own: Sequence[MapInstances | None] | None = None) -> tuple[Tensor, Tensor]:
        """``(B, C, H, W)`` prior rasters on the BEV grid and on the map grid; in training a
        sample with an ``own`` prediction gets that, drawn like a test-time map update."""
        bev, mapped = [], []
        for index, sample in enumerate(samples):
            prediction = own[index] if own is not None and self.training else None
            if not self.enabled:
                bev.append(torch.zeros(len(self.class_names), *self.bev_grid.shape))
                mapped.append(torch.zeros(len(self.class_names), *self.map_grid.shape))
            elif prediction is not None:
                bev.append(rasterize_instances(prediction, self.bev_grid, self.line_half_width,
                                               self.update_score_threshold))
                mapped.append(bev[-1] if self.map_grid == self.bev_grid else rasterize_instances(
                    prediction, self.map_grid, self.line_half_width, self.update_score_threshold))
            elif self.training and self.train_prior == "gt":
                bev_raster, map_raster = self._gt_prior(sample)
                bev.append(bev_raster)
                mapped.append(map_raster)
            elif self.training and np.random.rand() < self.drop_prob:  # "map": some samples without
                bev.append(torch.zeros(len(self.class_names), *self.bev_grid.shape))
                mapped.append(torch.zeros(len(self.class_names), *self.map_grid.shape))
            else:
                location, pose = sample_location(sample, self.location_key), sample_pose(sample)
                bev.append(self.global_map.crop_to_ego(location, pose, self.bev_grid))
                mapped.append(bev[-1] if self.map_grid == self.bev_grid
                              else self.global_map.crop_to_ego(location, pose, self.map_grid))
        return torch.stack(bev).to(device), torch.stack(mapped).to(device)

    def _gt_prior(self, sample: DetSample) -> tuple[Tensor, Tensor]:
        """The corrupted ground-truth prior of one training sample (module doc)."""
        channels = len(self.class_names)
        empty = (torch.zeros(channels, *self.bev_grid.shape), torch.zeros(channels, *self.map_grid.shape))
        gt = sample.gt_map
        if gt is None or not len(gt) or np.random.rand() < self.drop_prob:
            return empty
        drop = np.random.uniform(*self.instance_drop) if self.instance_drop[0] < self.instance_drop[1] \
            else self.instance_drop[0]
        keep = np.random.rand(len(gt)) >= drop
        if not keep.any():
            return empty
        offset = np.random.uniform(-self.shift, self.shift, size=(1, 1, 2)).astype(np.float32)
        points, labels, closed = gt.points[keep] + offset, gt.labels[keep], gt.closed[keep]
        spurious = np.random.poisson(self.false_instances) if self.false_instances > 0 else 0
        if spurious:
            pick = np.random.randint(len(gt), size=spurious)
            points = np.concatenate([points, self._moved_copies(gt.points[pick])])
            labels, closed = np.concatenate([labels, gt.labels[pick]]), np.concatenate([closed, gt.closed[pick]])
        if self.fragment > 0:
            points, labels, closed = fragment_instances(points, labels, closed, self.fragment, self.fragment_gap)
            if not len(points):
                return empty
        if self.jitter > 0:
            points = points + np.random.normal(0.0, self.jitter, size=points.shape).astype(np.float32)
        scores = np.random.uniform(self.min_confidence, 1.0, size=len(points)).astype(np.float32)
        noisy = MapInstances(points.astype(np.float32), labels, gt.class_names, closed, scores)
        bev = rasterize_instances(noisy, self.bev_grid, self.line_half_width)
        mapped = bev if self.map_grid == self.bev_grid else rasterize_instances(noisy, self.map_grid,
                                                                                self.line_half_width)
        return bev, mapped

    def _moved_copies(self, points: np.ndarray) -> np.ndarray:
        """``(N, P, 2)`` element copies, each turned about its centre by a random angle and moved by up
        to ``false_offset`` metres per axis: false positives of the shapes the map really holds."""
        count = len(points)
        angle = np.random.uniform(-np.pi, np.pi, size=count)
        rot = np.stack([np.stack([np.cos(angle), -np.sin(angle)], 1), np.stack([np.sin(angle), np.cos(angle)], 1)], 1)
        centre = points.mean(axis=1, keepdims=True)
        move = np.random.uniform(-self.false_offset, self.false_offset, size=(count, 1, 2))
        return (np.einsum("nij,npj->npi", rot, points - centre) + centre + move).astype(np.float32)

    def self_prior_draws(self, count: int) -> np.ndarray:
        """Which of ``count`` training samples get their own prediction as the prior (``self_prior``)."""
        if not self.training or not self.enabled or self.self_prior <= 0:
            return np.zeros(count, bool)
        return np.random.rand(count) < self.self_prior

    def forward(self, bev: Tensor, samples: Sequence[DetSample], default_refs: Tensor | None = None,
                own: Sequence[MapInstances | None] | None = None) -> dict[str, Tensor]:
        """``{"bev": aggregated BEV, "query_init": ..., "ref_init": ...}`` for the map head
        (``{"bev", "seeds"}`` with ``query_init.slots="extra"``).

        ``ref_init`` needs the head's own reference points for the unseeded query slots
        (``default_refs`` ``(Q, P, 2)`` or ``(B, Q, P, 2)``); without them only ``query_init`` is given.
        ``own``: per sample the model's own prediction to use as its training prior, or None.
        """
        prior_bev, prior_map = self.crops(samples, bev.device, own)
        out: dict[str, Tensor] = {}
        if self.aggregation is not None:
            out["bev"] = self.aggregation(bev, prior_bev)
        if self.query_init is None:
            return out
        seeds = self.query_init(prior_map.to(bev.dtype))
        if self.query_init.slots == "extra":
            out["seeds"] = SeedQueries(seeds["query_init"], seeds["ref_init"], seeds["mask"])
        else:
            out["query_init"] = seeds["query_init"]
            if default_refs is not None:
                out["ref_init"] = self.query_init.fill(seeds["ref_init"], seeds["mask"], default_refs)
        return out

    # ------------------------------------------------------------------ map writing
    @torch.no_grad()
    def update(self, samples: Sequence[DetSample]) -> None:
        """Draw each sample's ``pred_map`` into the global map (test time only; a no-op while
        training or when the prior is disabled but the map still records, see ``enabled``)."""
        if self.training:
            return
        for sample in samples:
            if sample.pred_map is None:
                raise ValueError(f"HRMapPrior.update: sample {sample.token} has no pred_map")
            raster = rasterize_instances(sample.pred_map, self.map_grid, self.line_half_width,
                                         self.update_score_threshold)
            self.global_map.update(sample_location(sample, self.location_key), sample_pose(sample),
                                   raster, self.map_grid)

    def update_with_ground_truth(self, samples: Sequence[DetSample]) -> None:
        """Draw ground-truth vectors into the global map (a perfect historical map, e.g. for ``train_prior='map'``)."""
        for sample in samples:
            if sample.gt_map is None:
                raise ValueError(f"HRMapPrior: sample {sample.token} has no gt_map")
            raster = rasterize_instances(sample.gt_map, self.map_grid, self.line_half_width)
            self.global_map.update(sample_location(sample, self.location_key), sample_pose(sample),
                                   raster, self.map_grid)


def fragment_instances(points: np.ndarray, labels: np.ndarray, closed: np.ndarray, prob: float,
                       gap: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Break each element ``(N, P, 2)`` with probability ``prob`` into open pieces separated by 1-3
    gaps of ``gap`` metres (a polygon's outline too); every piece is resampled to ``P`` points,
    pieces shorter than two samples vanish.  Returns the new ``points``, ``labels``, ``closed``."""
    num_points = points.shape[1]
    out_points, out_labels, out_closed = [], [], []
    for element, label, is_closed in zip(points, labels, closed):
        if np.random.rand() >= prob:
            out_points.append(element)
            out_labels.append(label)
            out_closed.append(is_closed)
            continue
        dense = resample_polyline(element, 8 * num_points, bool(is_closed))
        arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
        kept = np.ones(len(dense), bool)
        for _ in range(np.random.randint(1, 4)):
            centre, half = np.random.uniform(0.0, arc[-1]), 0.5 * np.random.uniform(*gap)
            kept &= np.abs(arc - centre) > half
        breaks = np.flatnonzero(np.diff(kept.astype(np.int8)) != 0) + 1
        for run in np.split(np.arange(len(dense)), breaks):
            if kept[run[0]] and len(run) >= 2:
                out_points.append(resample_polyline(dense[run], num_points, False))
                out_labels.append(label)
                out_closed.append(False)
    if not out_points:
        return points[:0], labels[:0], closed[:0]
    return (np.stack(out_points).astype(np.float32), np.asarray(out_labels, dtype=labels.dtype),
            np.asarray(out_closed, dtype=closed.dtype))


def _grid_of(area: Sequence[float], resolution: float):
    """The BEV grid of ``(x_min, y_min, x_max, y_max)`` or a 6-value point-cloud range."""
    if len(area) == 6:
        area = (area[0], area[1], area[3], area[4])
    if len(area) != 4:
        raise ValueError(f"HRMapPrior: ranges must be (x_min, y_min, x_max, y_max) or a 6-value "
                         f"point-cloud range, got {area}")
    return bev_grid((area[0], area[2]), (area[1], area[3]), resolution)
