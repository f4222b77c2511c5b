"""The source protocol and sensor-rate pacing."""
from __future__ import annotations

import threading
import time
from typing import Iterable, Iterator, Protocol

from ..results import BridgeFrame


class Source(Protocol):
    """Yields frames in time order; ``name`` appears in logs."""

    name: str

    def __iter__(self) -> Iterator[BridgeFrame]: ...


def paced(frames: Iterable[BridgeFrame], speed: float = 1.0, stop: threading.Event | None = None,
          max_gap: float = 1.0) -> Iterator[BridgeFrame]:
    """Yield frames at the rate their timestamps say (``speed`` x real time; 0 = as fast as possible).

    Gaps longer than ``max_gap`` seconds (scene changes, loops) are shortened to one sensor
    period.  ``stop`` ends the replay between frames.  Each frame's ``received`` is set to the
    moment it is released, so latencies count from "sensor" arrival.
    """
    stop = stop or threading.Event()
    previous_stamp, previous_release = None, None
    for item in frames:
        if stop.is_set():
            return
        if speed > 0 and previous_stamp is not None:
            gap = item.frame.timestamp - previous_stamp
            gap = gap if 0 <= gap <= max_gap else min(max_gap, 0.1)
            wait = previous_release + gap / speed - time.monotonic()
            if wait > 0 and stop.wait(wait):
                return
        previous_stamp, previous_release = item.frame.timestamp, time.monotonic()
        item.received = previous_release
        yield item
