"""The bridge node: sources push frames into a drop-oldest queue, one worker runs the stack
and hands every result to the sinks (rosbridge publisher, Foxglove server, MCAP).

Transport-free on purpose, so tests can drive it with a fake stack and fake sinks.  A failing
stack call or sink is logged and counted, never fatal.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol, Sequence

from .queues import DropOldestQueue
from .results import BridgeFrame, StackOutput
from .stack import Stack

LOGGER = logging.getLogger(__name__)


class Sink(Protocol):
    """Where results go; ``publish`` is called from the worker thread."""

    def publish(self, item: BridgeFrame, output: StackOutput, stats: "NodeStats") -> None: ...

    def close(self) -> None: ...


@dataclass
class NodeStats:
    """Counters and the last frame's latencies (ms), read by diagnostics and tests."""

    received: int = 0
    processed: int = 0
    dropped: int = 0
    malformed: int = 0
    failed: int = 0
    latencies_ms: dict[str, float] = field(default_factory=dict)
    max_end_to_end_ms: float = 0.0

    def counters(self) -> dict[str, int]:
        return {"frames_received": self.received, "frames_processed": self.processed,
                "frames_dropped": self.dropped, "messages_malformed": self.malformed,
                "frames_failed": self.failed}


class BridgeNode:
    """Owns the queue, the worker thread and the sinks."""

    def __init__(self, stack: Stack, sinks: Sequence[Sink] = (), queue_size: int = 2) -> None:
        self.stack = stack
        self.sinks = list(sinks)
        self.queue: DropOldestQueue[BridgeFrame] = DropOldestQueue(queue_size)
        self.stats = NodeStats()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._stopping = threading.Event()

    # --- inputs (any thread) -------------------------------------------------------------
    def submit(self, item: BridgeFrame) -> None:
        """Queue a frame; the oldest waiting one is dropped (and counted) when full."""
        with self._lock:
            self.stats.received += 1
            if self.queue.put(item):
                self.stats.dropped += 1

    def count_malformed(self, what: str, error: Exception) -> None:
        """Log a message that could not be decoded and count it."""
        with self._lock:
            self.stats.malformed += 1
        LOGGER.warning("skipped malformed %s: %s", what, error)

    # --- worker ---------------------------------------------------------------------------
    def start(self) -> "BridgeNode":
        if self._worker is None:
            self._worker = threading.Thread(target=self._run, name="bridge-worker", daemon=True)
            self._worker.start()
        return self

    def _run(self) -> None:
        while not self._stopping.is_set():
            item = self.queue.get(timeout=0.1)
            if item is not None:
                self.process(item)

    def process(self, item: BridgeFrame) -> StackOutput | None:
        """Run the stack on one frame and publish; returns None when the stack failed."""
        start = time.monotonic()
        try:
            output = self.stack(item.frame)
        except Exception as error:  # noqa: BLE001 - one bad frame must not stop the node
            with self._lock:
                self.stats.failed += 1
            LOGGER.exception("stack failed on frame %s: %s", item.frame.token, error)
            return None
        output.latencies_ms = {"queue_wait": (start - item.received) * 1e3, **output.latencies_ms}
        publish_start = time.monotonic()
        for sink in self.sinks:
            try:
                sink.publish(item, output, self.stats)
            except Exception as error:  # noqa: BLE001 - a sink failure is logged, not fatal
                LOGGER.exception("sink %s failed: %s", type(sink).__name__, error)
        output.latencies_ms["publish"] = (time.monotonic() - publish_start) * 1e3
        end_to_end = (time.monotonic() - item.received) * 1e3
        with self._lock:
            self.stats.processed += 1
            self.stats.latencies_ms = dict(output.latencies_ms)
            self.stats.max_end_to_end_ms = max(self.stats.max_end_to_end_ms, end_to_end)
        return output

    def pending(self) -> int:
        """Frames received but not yet processed, dropped or failed."""
        with self._lock:
            stats = self.stats
            return stats.received - stats.processed - stats.dropped - stats.failed

    def wait_idle(self, timeout: float) -> bool:
        """Wait until the queue is empty and no frame is in flight (tests, end of a replay)."""
        deadline = time.monotonic() + timeout
        while self.pending():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the worker (after its current frame) and close every sink."""
        self._stopping.set()
        self.queue.close()
        if self._worker is not None:
            self._worker.join(timeout)
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as error:  # noqa: BLE001
                LOGGER.warning("closing sink %s failed: %s", type(sink).__name__, error)
