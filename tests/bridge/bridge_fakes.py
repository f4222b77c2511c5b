"""Fakes for the bridge tests: a stack with a chosen delay and canned output, and frames."""
from __future__ import annotations

import time

import numpy as np
from perception.bridge.results import MapPolyline, StackOutput
from perception.structures import Boxes3D, Frame

CLASSES = ("car", "pedestrian")


class FakeStack:
    """Sleeps ``delay`` seconds, then returns two boxes, one map line and a path."""

    def __init__(self, delay: float = 0.0, fail_on: set[str] | None = None) -> None:
        self.delay = delay
        self.fail_on = fail_on or set()
        self.calls: list[str] = []

    def __call__(self, frame: Frame) -> StackOutput:
        self.calls.append(frame.token)
        if frame.token in self.fail_on:
            raise RuntimeError(f"fake failure on {frame.token}")
        start = time.perf_counter()
        time.sleep(self.delay)
        boxes = Boxes3D(np.array([[5.0, 1.0, 0.0, 4.5, 1.9, 1.6, 0.3, 1.0, 0.0],
                                  [-3.0, 8.0, 0.0, 0.7, 0.7, 1.8, -1.2, 0.0, 0.0]]),
                        np.array([0, 1]), ["11", "12"], scores=np.array([0.9, 0.6]))
        line = MapPolyline("divider", np.array([[-10.0, -2.0, -1.8], [0.0, -2.0, -1.8], [10.0, -2.0, -1.8]]))
        area = MapPolyline("ped_crossing", np.array([[2.0, 3.0, -1.8], [4.0, 3.0, -1.8], [4.0, 6.0, -1.8]]), True)
        path = np.array([[0.0, 0.0, 0.0], [2.0, 0.1, 0.05], [4.0, 0.3, 0.1]])
        return StackOutput(boxes, CLASSES, [line, area], path,
                           {"detector": (time.perf_counter() - start) * 1e3, "tracker": 0.01})


def make_frame(token: str = "f0", points: int = 50, timestamp: float = 100.0, seed: int = 0) -> Frame:
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(-20, 20, size=(points, 3)).astype(np.float32)
    intensity = rng.uniform(0, 1, size=(points, 1)).astype(np.float32)
    return Frame(token=token, timestamp=timestamp, dataset="test", points=np.hstack([xyz, intensity]),
                 point_features=("x", "y", "z", "intensity"), lidar2ego=np.eye(4), ego2global=np.eye(4),
                 class_names=CLASSES)
