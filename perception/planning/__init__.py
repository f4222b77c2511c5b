"""Planning layer: scenes (agent histories + map), tracking, baselines, metrics and closed-loop runs."""
from .scene import PlanningScene, PlanningSceneError

__all__ = ["PlanningScene", "PlanningSceneError"]
