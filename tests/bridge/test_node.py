"""The drop-oldest queue and the node: overload drops (counted), failures never stop the worker."""
from __future__ import annotations

import threading
import time

import pytest
from bridge_fakes import FakeStack, make_frame

from perception.bridge.node import BridgeNode
from perception.bridge.queues import DropOldestQueue
from perception.bridge.results import BridgeFrame


def test_queue_drops_oldest_and_counts() -> None:
    queue: DropOldestQueue[int] = DropOldestQueue(3)
    dropped = [queue.put(i) for i in range(10)]
    assert dropped == [False] * 3 + [True] * 7
    assert queue.dropped == 7 and len(queue) == 3
    assert [queue.get(0) for _ in range(3)] == [7, 8, 9]
    assert queue.get(timeout=0.01) is None
    with pytest.raises(ValueError, match="maxsize"):
        DropOldestQueue(0)


def test_queue_close_wakes_waiters() -> None:
    queue: DropOldestQueue[int] = DropOldestQueue(1)
    result = []
    waiter = threading.Thread(target=lambda: result.append(queue.get(timeout=5)))
    waiter.start()
    queue.close()
    waiter.join(1)
    assert result == [None] and not waiter.is_alive()
    assert queue.put(1) is False and len(queue) == 0


class RecordingSink:
    def __init__(self) -> None:
        self.outputs, self.closed = [], False

    def publish(self, item, output, stats) -> None:
        self.outputs.append((item.frame.token, output))

    def close(self) -> None:
        self.closed = True


@pytest.mark.timeout(20)
def test_burst_faster_than_inference_drops_and_bounds_latency() -> None:
    """40 frames at 1 kHz into a 20 ms stack: most are dropped, the queue never exceeds its size,
    and every processed frame waited at most (queue size + 1) stack runs."""
    delay, queue_size = 0.02, 2
    sink = RecordingSink()
    node = BridgeNode(FakeStack(delay), [sink], queue_size).start()
    longest_queue = 0
    for index in range(40):
        node.submit(BridgeFrame(make_frame(f"f{index}", timestamp=index * 0.001)))
        longest_queue = max(longest_queue, len(node.queue))
        time.sleep(0.001)
    assert node.wait_idle(5)
    node.stop()
    stats = node.stats
    assert stats.received == 40 and stats.dropped > 20
    assert stats.processed + stats.dropped == 40 and longest_queue <= queue_size
    assert sink.outputs[-1][0] == "f39"  # the newest frame always gets through
    assert stats.max_end_to_end_ms < (queue_size + 1) * delay * 1e3 + 250
    assert set(stats.latencies_ms) >= {"queue_wait", "detector", "publish"} and sink.closed


@pytest.mark.timeout(20)
def test_stack_and_sink_failures_are_counted_not_fatal() -> None:
    class BrokenSink(RecordingSink):
        def publish(self, item, output, stats) -> None:
            raise OSError("socket gone")

    sink = RecordingSink()
    node = BridgeNode(FakeStack(fail_on={"bad"}), [BrokenSink(), sink], queue_size=4).start()
    for token in ("a", "bad", "b"):
        node.submit(BridgeFrame(make_frame(token)))
        assert node.wait_idle(5)
    node.count_malformed("PointCloud2", ValueError("bad layout"))
    node.stop()
    assert node.stats.failed == 1 and node.stats.processed == 2 and node.stats.malformed == 1
    assert [token for token, _ in sink.outputs] == ["a", "b"]
