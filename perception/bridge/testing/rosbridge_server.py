"""A rosbridge v2 protocol server for local testing (no ROS needed), on ``websockets``.

It speaks enough of rosbridge for a client like ours (advertise / unadvertise / publish /
subscribe / unsubscribe; ``status`` replies for the rest) and checks every request against
the real ROS 2 message definitions: unknown types, unknown fields and wrong field types are
recorded in :attr:`RosbridgeTestServer.errors` and answered with an error ``status``.  Tests
and users can publish to subscribers, inject raw (malformed) text and drop connections.

Run ``python -m perception.bridge.testing.rosbridge_server --port 9090`` to try the bridge
without a ROS install; it prints what it receives.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import threading
import time
from collections import defaultdict
from typing import Any, Callable

from .ros_validation import RosMessageValidator, ros2_type_name

LOGGER = logging.getLogger(__name__)


class RosbridgeTestServer:
    """Validating rosbridge server on a background asyncio loop; ``port=0`` picks a free port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, validator: RosMessageValidator | None = None,
                 on_message: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.host, self.port = host, port
        self.validator = validator or RosMessageValidator()
        self.on_message = on_message
        self.errors: list[str] = []
        self.published: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.advertised: dict[str, str] = {}
        self.subscriptions: dict[str, str] = {}
        self.ops: list[str] = []
        self.connections_seen = 0
        self._clients: set[Any] = set()
        self._subscribers: dict[str, set[Any]] = defaultdict(set)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- lifecycle --------------------------------------------------------------------
    def start(self, timeout: float = 5.0) -> "RosbridgeTestServer":
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._open())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="rosbridge-test-server", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError("rosbridge test server did not start")
        return self

    async def _open(self) -> None:
        from websockets.asyncio.server import serve

        self._server = await serve(self._handle, self.host, self.port, max_size=None)
        self.port = self._server.sockets[0].getsockname()[1]

    def _call(self, coro, timeout: float = 5.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def stop(self) -> None:
        """Close every connection and the listening socket, then end the loop."""
        if self._loop is None:
            return
        self.go_away()
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self._loop = None

    def go_away(self) -> None:
        """Stop listening and drop all clients (the server 'goes away'); ``come_back`` reopens."""
        async def close() -> None:
            self._server.close()
            for client in list(self._clients):
                await client.close()
            await self._server.wait_closed()
        self._call(close())
        with self._lock:
            self._subscribers.clear()

    def come_back(self) -> None:
        """Listen again on the same port."""
        self._call(self._open())

    def __enter__(self) -> "RosbridgeTestServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def client_count(self) -> int:
        """Open client connections."""
        return len(self._clients)

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    # --- what tests drive -------------------------------------------------------------
    def publish(self, topic: str, msg: Any) -> int:
        """Send ``msg`` to every subscriber of ``topic``; returns how many got it."""
        return self.send_raw_to(topic, json.dumps({"op": "publish", "topic": topic, "msg": msg}))

    def send_raw_to(self, topic: str, text: str) -> int:
        """Send a raw text frame (possibly malformed) to the subscribers of ``topic``."""
        with self._lock:
            clients = list(self._subscribers.get(topic, ()))

        async def send() -> None:
            for client in clients:
                await client.send(text)
        self._call(send())
        return len(clients)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Poll ``predicate`` until true or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return predicate()

    def wait_subscribed(self, topic: str, timeout: float = 5.0) -> bool:
        return self.wait_for(lambda: bool(self._subscribers.get(topic)), timeout)

    # --- protocol -----------------------------------------------------------------------
    async def _handle(self, connection: Any) -> None:
        self._clients.add(connection)
        self.connections_seen += 1
        try:
            async for text in connection:
                await self._dispatch(connection, text)
        except Exception as error:  # noqa: BLE001 - a dropped client ends its handler
            LOGGER.debug("client gone: %s", error)
        finally:
            self._clients.discard(connection)
            with self._lock:
                for subscribers in self._subscribers.values():
                    subscribers.discard(connection)

    def _error(self, problem: str) -> str:
        with self._lock:
            self.errors.append(problem)
        LOGGER.warning("rosbridge test server: %s", problem)
        return json.dumps({"op": "status", "level": "error", "msg": problem})

    async def _dispatch(self, connection: Any, text: Any) -> None:
        try:
            request = json.loads(text)
            op = request["op"]
        except (TypeError, ValueError, KeyError) as error:
            await connection.send(self._error(f"not a rosbridge request: {error}"))
            return
        self.ops.append(op)
        reply = None
        if op in ("advertise", "subscribe"):
            topic, kind = request.get("topic"), request.get("type")
            if not isinstance(topic, str) or not topic.startswith("/"):
                reply = self._error(f"{op}: bad topic {topic!r}")
            elif not isinstance(kind, str) or not self.validator.knows(kind):
                reply = self._error(f"{op} {topic}: unknown message type {kind!r}")
            elif op == "advertise":
                self.advertised[topic] = ros2_type_name(kind)
            else:
                self.subscriptions[topic] = ros2_type_name(kind)
                with self._lock:
                    self._subscribers[topic].add(connection)
        elif op == "unsubscribe":
            with self._lock:
                self._subscribers.get(request.get("topic"), set()).discard(connection)
        elif op == "unadvertise":
            self.advertised.pop(request.get("topic"), None)
        elif op == "publish":
            topic = request.get("topic")
            if topic not in self.advertised:
                reply = self._error(f"publish on {topic!r} before advertise")
            else:
                problems = self.validator.validate(self.advertised[topic], request.get("msg"))
                if problems:
                    reply = self._error(f"publish {topic} ({self.advertised[topic]}): " + "; ".join(problems[:5]))
                else:
                    with self._lock:
                        self.published[topic].append(request["msg"])
        else:
            reply = self._error(f"unsupported op {op!r}")
        if self.on_message is not None:
            self.on_message(request)
        if reply is not None:
            await connection.send(reply)


def main(argv: list[str] | None = None) -> int:
    """Serve until Ctrl-C, printing a line per validated message."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9090)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)

    def show(request: dict[str, Any]) -> None:
        print(f"{request.get('op')} {request.get('topic', '')} {request.get('type', '')}", flush=True)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server = RosbridgeTestServer(args.host, args.port, on_message=show).start()
    print(f"rosbridge test server on {server.url}", flush=True)
    try:
        stop.wait()
    finally:
        server.stop()
        print(f"{len(server.errors)} invalid requests", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
