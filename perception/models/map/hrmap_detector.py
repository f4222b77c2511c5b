"""HRMapNetDetector: a :class:`~.map_detector.MapDetector` whose ``bev_prior`` is an
:class:`~.hrmap_prior.HRMapPrior`, plus the test-time protocol of the global map.

A test (or val) pass predicts with the map *as committed before the pass* and records its own
predictions as pending updates (``global_map.online=False``, the default).  At the end of the pass
:meth:`HRMapNetDetector.finish_pass` merges the ranks' maps (DDP), commits them and optionally
saves them; the next pass over the same streets then sees the historical map.  Because the prior
is frozen during a pass and the merge is order independent, a multi-process evaluation gives the
same predictions, metrics and final map as a single process.  ``HRMapPassHook`` calls
``finish_pass`` after every val / test epoch (and can load a map before the first).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from mmengine.hooks import Hook
from torch import Tensor, nn

from ...registry import HOOKS, MODELS
from ...structures.det_sample import DetSample
from ...structures.map_instances import MapInstances
from .hrmap_distributed import merge_across_ranks
from .hrmap_global_map import GlobalRasterMap
from .hrmap_prior import HRMapPrior
from .map_detector import MapDetector


def default_reference_points(head: nn.Module) -> Tensor:
    """The head's learned initial reference points ``(Q, P, 2)`` in [0, 1] (what ``ref_init``
    replaces): ``head.default_reference_points()`` when the head has it, else read from the
    MapTR (``instance_embed`` + ``point_embed`` -> ``ref_head``) or MapQR (``query_embed`` ->
    ``ref_head``) parameters."""
    if hasattr(head, "default_reference_points"):
        return head.default_reference_points()
    q, p, c = head.num_queries, head.num_points, head.embed_dims
    if hasattr(head, "instance_embed") and hasattr(head, "point_embed"):
        embed = head.instance_embed.weight[:q, None] + head.point_embed.weight[None]
        return head.ref_head(embed[..., :c]).sigmoid()
    if hasattr(head, "query_embed"):
        return head.ref_head(head.query_embed.weight[:q]).view(q, p, 2).sigmoid()
    raise TypeError(f"HRMapNetDetector: cannot read the initial reference points of {type(head).__name__}; "
                    "give it a default_reference_points() method")


@MODELS.register_module()
class HRMapNetDetector(MapDetector):
    """MapDetector + HRMapNet historical raster map (module doc); ``bev_prior`` defaults to
    an :class:`HRMapPrior` config and must build one."""

    def __init__(self, *args: Any, bev_prior: dict | nn.Module | None = None, **kwargs: Any) -> None:
        if bev_prior is None:
            raise ValueError("HRMapNetDetector: needs bev_prior=dict(type='HRMapPrior', ...)")
        super().__init__(*args, bev_prior=bev_prior, **kwargs)
        if not isinstance(self.bev_prior, HRMapPrior):
            raise TypeError(f"HRMapNetDetector: bev_prior must be an HRMapPrior, got {type(self.bev_prior).__name__}")

    @property
    def global_map(self) -> GlobalRasterMap:
        return self.bev_prior.global_map

    def _head_inputs(self, inputs: Mapping[str, Any], data_samples: list[DetSample]) -> dict[str, Any]:
        bev = self.extract_bev(inputs)
        refs = self._default_refs()
        prior = self.bev_prior(bev, data_samples, default_refs=refs, own=self._own_predictions(bev, data_samples))
        return {"bev": prior.pop("bev", bev), **prior}

    def _default_refs(self) -> Tensor | None:
        """The head's initial reference points when seeds replace learned queries (None otherwise)."""
        seeding = self.bev_prior.query_init
        return default_reference_points(self.map_head) if seeding is not None and seeding.slots == "replace" else None

    def _own_predictions(self, bev: Tensor, data_samples: list[DetSample]) -> list[MapInstances | None] | None:
        """Training with ``bev_prior.self_prior``: the head's predictions of the drawn samples
        made without a prior (no gradients), to serve as their prior (HRMapPrior doc)."""
        drawn = self.bev_prior.self_prior_draws(len(data_samples))
        if not drawn.any():
            return None
        prior = self.bev_prior
        with torch.no_grad():
            prior.enabled = False
            try:
                refs = self._default_refs()
                blank = prior(bev.detach(), data_samples, default_refs=refs)
                predicted = self.map_head.predict(bev=blank.pop("bev", bev.detach()), samples=data_samples, **blank)
            finally:
                prior.enabled = True
        return [sample.pred_map if pick else None for sample, pick in zip(predicted, drawn)]

    def finish_pass(self, save_to: str | Path | None = None) -> GlobalRasterMap:
        """Merge the ranks' pending updates (collective under DDP), commit, optionally save (rank 0)."""
        merge_across_ranks(self.global_map)
        self.global_map.commit()
        if save_to is not None and _rank() == 0:
            self.global_map.save(save_to)
        return self.global_map

    def load_global_map(self, path: str | Path) -> None:
        """Replace the global map by a saved one (keeps this model's update settings)."""
        current = self.global_map.settings()
        overrides = {k: current[k] for k in ("fusion", "increment", "decay", "threshold", "online")}
        self.bev_prior.global_map = GlobalRasterMap.load(path, **overrides)


def _rank() -> int:
    return torch.distributed.get_rank() if torch.distributed.is_available() and torch.distributed.is_initialized() else 0


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


@HOOKS.register_module()
class HRMapPassHook(Hook):
    """Load a global map (``load_from``) before training or the first val/test epoch, whichever
    comes first, and finish the pass after each val/test epoch (merge ranks, commit, save
    ``<work_dir>/<save_name>`` when ``save_name``)."""

    priority = "LOW"

    def __init__(self, load_from: str | None = None, save_name: str | None = "hrmap_global_map.npz") -> None:
        self.load_from, self.save_name = load_from, save_name
        self._loaded = False

    def _model(self, runner: Any) -> HRMapNetDetector:
        model = _unwrap(runner.model)
        if not isinstance(model, HRMapNetDetector):
            raise TypeError(f"HRMapPassHook needs an HRMapNetDetector, got {type(model).__name__}")
        return model

    def _start(self, runner: Any) -> None:
        if self.load_from and not self._loaded:
            self._model(runner).load_global_map(self.load_from)
            self._loaded = True

    def _finish(self, runner: Any) -> None:
        save_to = Path(runner.work_dir) / self.save_name if self.save_name else None
        self._model(runner).finish_pass(save_to)

    def before_train(self, runner: Any) -> None:
        self._start(runner)  # train_prior="map" reads it

    def before_val_epoch(self, runner: Any) -> None:
        self._start(runner)

    def before_test_epoch(self, runner: Any) -> None:
        self._start(runner)

    def after_val_epoch(self, runner: Any, metrics: dict | None = None) -> None:
        self._finish(runner)

    def after_test_epoch(self, runner: Any, metrics: dict | None = None) -> None:
        self._finish(runner)
