"""Engine of the stack (registered in :mod:`perception.registry`): the runner with atomic,
weights-only checkpoints, hooks (loss curve, progress bars) and the autocast optim wrapper.

The sparse-conv autotuner lives in :mod:`perception.engine.autotune` (imported on demand).
"""
from .checkpoint import CheckpointError, checkpoint_safe_globals, load_checkpoint_file
from .hooks import LossCurveHook, ProgressBarHook
from .optim import AutocastOptimWrapper
from .runner import PerceptionRunner, build_runner, default_dist_backend

__all__ = ["AutocastOptimWrapper", "CheckpointError", "LossCurveHook", "PerceptionRunner",
           "ProgressBarHook", "build_runner", "checkpoint_safe_globals", "default_dist_backend",
           "load_checkpoint_file"]
