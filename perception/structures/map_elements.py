"""Map elements and agent histories in the world frame."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .geometry import apply_transform


@dataclass
class MapElement:
    """One map element: a polyline (``closed=False``) or polygon (``closed=True``).

    ``points`` is ``(K, 2)`` or ``(K, 3)`` in the world frame; polygons do not repeat the
    first vertex at the end.  ``category`` is dataset vocabulary mapped to the stack's
    names (``divider``, ``ped_crossing``, ``boundary``, ``lane_centerline``,
    ``drivable_area``, ``walkway``, ...).  ``attributes`` keeps dataset details such as a
    divider's mark type (``{"mark_type": "DASHED_WHITE"}``).
    """

    category: str
    points: np.ndarray
    closed: bool = False
    element_id: str = ""
    attributes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.points = np.asarray(self.points, dtype=np.float64)
        if self.points.ndim != 2 or self.points.shape[1] not in (2, 3) or len(self.points) < 2:
            raise ValueError(
                f"MapElement {self.element_id or self.category!r}: points must be (K>=2, 2|3), "
                f"got {self.points.shape}"
            )

    def transformed(self, transform: np.ndarray) -> "MapElement":
        """The element in another frame (``transform`` maps world to that frame)."""
        xyz = self.points if self.points.shape[1] == 3 else np.pad(self.points, ((0, 0), (0, 1)))
        moved = apply_transform(transform, xyz)
        return MapElement(
            self.category, moved[:, : self.points.shape[1]], self.closed, self.element_id, dict(self.attributes)
        )


@dataclass
class AgentHistory:
    """Past (and, for training, future) states of one tracked agent in the world frame.

    ``timestamps`` is ``(T,)`` seconds; ``states`` is ``(T, 5)`` as ``x, y, yaw, vx, vy``;
    ``valid`` is ``(T,)`` bool (False where the agent was not observed).
    """

    track_id: str
    category: str
    timestamps: np.ndarray
    states: np.ndarray
    valid: np.ndarray
    size: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        self.timestamps = np.asarray(self.timestamps, dtype=np.float64).reshape(-1)
        self.states = np.asarray(self.states, dtype=np.float64).reshape(-1, 5)
        self.valid = np.asarray(self.valid, dtype=bool).reshape(-1)
        if not (len(self.timestamps) == len(self.states) == len(self.valid)):
            raise ValueError(
                f"AgentHistory {self.track_id}: timestamps {len(self.timestamps)}, states "
                f"{len(self.states)} and valid {len(self.valid)} differ in length"
            )
