"""The latest transform of every TF edge, chained to look up ``frame -> fixed frame``.

No time interpolation: a live bridge wants the newest pose, and the detector runs in the
sensor frame anyway (the pose only places the map and keeps track ids stable).
"""
from __future__ import annotations

import threading
from typing import Any, Mapping

import numpy as np

from .ros_messages import transforms_of


class TfBuffer:
    """``child -> (parent, child->parent)`` edges; thread-safe."""

    def __init__(self, max_depth: int = 32) -> None:
        self._edges: dict[str, tuple[str, np.ndarray]] = {}
        self._lock = threading.Lock()
        self.max_depth = max_depth

    def add_message(self, msg: Mapping[str, Any]) -> int:
        """Store every transform of a TFMessage; returns how many were stored."""
        count = 0
        for parent, child, matrix in transforms_of(msg):
            with self._lock:
                self._edges[child] = (parent, matrix)
            count += 1
        return count

    def lookup(self, frame: str, target: str) -> np.ndarray | None:
        """4x4 mapping ``frame`` coordinates into ``target``, or None when not connected."""
        frame, target = frame.lstrip("/"), target.lstrip("/")
        matrix = np.eye(4)
        with self._lock:
            for _ in range(self.max_depth):
                if frame == target:
                    return matrix
                if frame not in self._edges:
                    return None
                parent, edge = self._edges[frame]
                matrix = edge @ matrix
                frame = parent
        return None
