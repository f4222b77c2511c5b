"""What flows through the bridge: an input frame with its arrival time, and the stack's output."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..structures import Boxes3D, Frame


@dataclass
class BridgeFrame:
    """One input frame plus where it came from.

    ``frame_id`` is the ROS frame of the points (the LiDAR frame); ``received`` is the
    ``time.monotonic()`` at arrival, so queue wait and end-to-end latency can be measured;
    ``images`` holds the newest decoded camera images (topic -> ``(H, W, 3)`` RGB) for
    camera heads.
    """

    frame: Frame
    frame_id: str = "lidar"
    received: float = field(default_factory=time.monotonic)
    source: str = ""
    images: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class MapPolyline:
    """A map element in the LiDAR frame: ``points`` is ``(K, 3)``."""

    category: str
    points: np.ndarray
    closed: bool = False


@dataclass
class StackOutput:
    """Everything a model stack says about one frame, in the frame's LiDAR frame.

    ``path`` is the planned ego path ``(T, 3)`` as x, y, yaw (``None`` without a planner);
    ``latencies_ms`` maps stage name -> milliseconds, in execution order.
    """

    boxes: Boxes3D
    class_names: tuple[str, ...]
    map_polylines: list[MapPolyline] = field(default_factory=list)
    path: np.ndarray | None = None
    latencies_ms: dict[str, float] = field(default_factory=dict)
