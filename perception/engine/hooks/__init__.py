"""Training hooks of the stack (registered in :data:`perception.registry.HOOKS`)."""
from .heap_trim import HeapTrimHook
from .loss_curve import LossCurveHook
from .progress import ProgressBarHook

__all__ = ["HeapTrimHook", "LossCurveHook", "ProgressBarHook"]
