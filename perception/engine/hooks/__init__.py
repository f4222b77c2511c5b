"""Training hooks of the stack (registered in :data:`perception.registry.HOOKS`)."""
from .loss_curve import LossCurveHook
from .progress import ProgressBarHook

__all__ = ["LossCurveHook", "ProgressBarHook"]
