"""The stack's mmengine ``Runner``: atomic checkpoints, weights-only loads, CPU or GPU DDP.

What it changes against ``mmengine.runner.Runner`` (all scoped to the runner instance, no
patching of mmengine):

* :meth:`save_checkpoint` writes to a temporary file in the checkpoint's folder, fsyncs it and
  ``os.replace``-s it into place, so a crash or a full disk mid-write leaves the previous
  checkpoint -- and ``last_checkpoint``, which ``CheckpointHook`` writes only after a save
  succeeded -- intact.
* :meth:`load_checkpoint` (used by ``resume`` and ``load_from``) reads with
  :func:`~perception.engine.checkpoint.load_checkpoint_file`: ``weights_only=True`` with the
  exact allowlist mmengine checkpoints need, and a :class:`CheckpointError` naming the file for
  truncated or corrupt files.  (Plain mmengine 0.10.7 on torch >= 2.6 cannot resume its own
  checkpoints: torch.load's new ``weights_only=True`` default rejects ``HistoryBuffer``.)
* The DDP backend defaults to NCCL with CUDA and gloo without (``env_cfg.dist_cfg.backend``
  wins when set); on CPU the process group is created from torchrun's environment and the
  model is wrapped without ``device_ids`` (mmengine assumes a GPU for both).
"""
from __future__ import annotations

import copy
import datetime
import os
from typing import Any, Callable

import torch
from mmengine.device import get_device
from mmengine.dist import is_distributed, master_only
from mmengine.fileio import LocalBackend, get_file_backend, join_path
from mmengine.model import is_model_wrapper
from mmengine.registry import MODEL_WRAPPERS
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint_to_model
from torch import nn

from ..utils.atomic import atomic_path
from .checkpoint import load_checkpoint_file


def default_dist_backend() -> str:
    """``nccl`` when CUDA is available, else ``gloo``."""
    return "nccl" if torch.cuda.is_available() else "gloo"


class PerceptionRunner(Runner):
    """mmengine Runner with atomic checkpoint writes, safe loads and CPU-capable DDP."""

    def setup_env(self, env_cfg: dict) -> None:
        """Pick the DDP backend by device unless configured; init CPU process groups ourselves."""
        env_cfg = copy.deepcopy(dict(env_cfg))
        dist_cfg = dict(env_cfg.get("dist_cfg") or {})
        dist_cfg.setdefault("backend", default_dist_backend())
        env_cfg["dist_cfg"] = dist_cfg
        if self.distributed and not is_distributed() and not torch.cuda.is_available():
            if self.launcher != "pytorch":
                raise RuntimeError(f"launcher {self.launcher!r} needs GPUs; on CPU use torchrun "
                                   "(tools/dist_train.sh, --launcher pytorch)")
            kwargs = dict(dist_cfg)
            if kwargs.get("timeout") is not None:
                kwargs["timeout"] = datetime.timedelta(seconds=kwargs["timeout"])
            torch.distributed.init_process_group(**kwargs)  # env:// (RANK, WORLD_SIZE, MASTER_*)
        super().setup_env(env_cfg)

    def wrap_model(self, model_wrapper_cfg: dict | None, model: nn.Module) -> nn.Module:
        """mmengine's wrapping, except DDP on CPU gets no ``device_ids``."""
        if not (self.distributed and get_device() == "cpu") or is_model_wrapper(model):
            return super().wrap_model(model_wrapper_cfg, model)
        if self.cfg.get("sync_bn"):
            self.logger.warning("sync_bn is ignored on CPU (SyncBatchNorm needs CUDA)")
        wrapper_cfg = dict(model_wrapper_cfg or {})
        wrapper_cfg.setdefault("type", "MMDistributedDataParallel")
        wrapper_cfg.setdefault("broadcast_buffers", False)
        wrapper_cfg.setdefault("find_unused_parameters", self.cfg.get("find_unused_parameters", False))
        return MODEL_WRAPPERS.build(wrapper_cfg, default_args=dict(module=model.to("cpu"), device_ids=None))

    @master_only
    def save_checkpoint(self, out_dir: str, filename: str, file_client_args: dict | None = None,
                        save_optimizer: bool = True, save_param_scheduler: bool = True,
                        meta: dict | None = None, by_epoch: bool = True,
                        backend_args: dict | None = None) -> None:
        """mmengine's checkpoint, written atomically (temp file + fsync + ``os.replace``)."""
        kwargs = dict(file_client_args=file_client_args, save_optimizer=save_optimizer,
                      save_param_scheduler=save_param_scheduler, meta=meta, by_epoch=by_epoch,
                      backend_args=backend_args)
        target = join_path(out_dir, filename, backend_args=backend_args)
        if file_client_args is not None or not isinstance(
                get_file_backend(target, backend_args=backend_args), LocalBackend):
            super().save_checkpoint(out_dir, filename, **kwargs)  # remote stores: their own semantics
            return
        with atomic_path(target) as temporary:
            super().save_checkpoint(str(temporary.parent), temporary.name, **kwargs)
            with open(temporary, "rb") as stream:
                os.fsync(stream.fileno())

    def load_checkpoint(self, filename: str, map_location: str | Callable = "cpu", strict: bool = False,
                        revise_keys: list | None = None) -> dict[str, Any]:
        """Load weights (and return the whole checkpoint) with a weights-only, checked read."""
        if map_location == "default":
            map_location = get_device()
        checkpoint = load_checkpoint_file(filename, map_location=map_location)
        self.call_hook("after_load_checkpoint", checkpoint=checkpoint)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        checkpoint = _load_checkpoint_to_model(model, checkpoint, strict,
                                               revise_keys=revise_keys or [(r"^module.", "")])
        self._has_loaded = True
        self.logger.info(f"Load checkpoint from {filename}")
        return checkpoint


def build_runner(cfg: Any) -> Runner:
    """A :class:`PerceptionRunner` from a config (or the class named by ``cfg.runner_type``)."""
    if "runner_type" in cfg:
        from mmengine.registry import RUNNERS, DefaultScope

        with DefaultScope.overwrite_default_scope(cfg.get("default_scope") or "perception"):
            return RUNNERS.build(cfg)
    return PerceptionRunner.from_cfg(cfg)
