"""One planning/prediction scene: ego and agent tracks over time plus the map, in the world frame.

Every planning component speaks this format: the Argoverse 2 motion-forecasting loader, the
synthetic world, the tracker (which builds agent tracks from detections), the STR model's
context encoder, the baselines, the metrics and the closed-loop simulator.  Index
``current_index`` is "now": states up to it are history, states after it the future (ground
truth for training and open-loop metrics; absent or invalid at inference).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..structures.map_elements import AgentHistory, MapElement


class PlanningSceneError(ValueError):
    """Raised for a scene whose tracks, timestamps or indices disagree."""


@dataclass
class PlanningScene:
    """``timestamps`` ``(T,)`` seconds shared by ``ego`` and every agent (states ``x, y, yaw,
    vx, vy`` in the world frame, ``valid`` per step); ``map_elements`` in the world frame;
    ``focal_track_ids`` are the agents scored by prediction metrics (AV2's focal / scored tracks)."""

    scene_id: str
    timestamps: np.ndarray
    current_index: int
    ego: AgentHistory
    agents: list[AgentHistory] = field(default_factory=list)
    map_elements: list[MapElement] = field(default_factory=list)
    focal_track_ids: list[str] = field(default_factory=list)
    city: str = ""

    def __post_init__(self) -> None:
        self.timestamps = np.asarray(self.timestamps, dtype=np.float64).reshape(-1)
        steps = len(self.timestamps)
        if not 0 <= self.current_index < steps:
            raise PlanningSceneError(f"scene {self.scene_id}: current_index {self.current_index} outside "
                                     f"[0, {steps})")
        for track in [self.ego, *self.agents]:
            if len(track.timestamps) != steps:
                raise PlanningSceneError(f"scene {self.scene_id}: track {track.track_id} has "
                                         f"{len(track.timestamps)} steps, the scene {steps}")
        known = {agent.track_id for agent in self.agents}
        missing = [track_id for track_id in self.focal_track_ids if track_id not in known]
        if missing:
            raise PlanningSceneError(f"scene {self.scene_id}: focal tracks {missing} are not among the agents")

    @property
    def dt(self) -> float:
        """The step between timestamps (seconds); scenes are sampled at a fixed rate."""
        return float(np.median(np.diff(self.timestamps))) if len(self.timestamps) > 1 else 0.0

    def agent(self, track_id: str) -> AgentHistory:
        """The agent track with ``track_id`` (KeyError naming it when absent)."""
        for agent in self.agents:
            if agent.track_id == track_id:
                return agent
        raise KeyError(f"scene {self.scene_id}: no agent track {track_id!r}")
