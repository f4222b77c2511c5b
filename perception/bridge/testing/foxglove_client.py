"""A Foxglove WebSocket protocol client that decodes what a server advertises and sends.

It reads ``serverInfo`` and ``advertise``, builds protobuf message classes from each
channel's advertised schema (a base64 ``FileDescriptorSet``) or parses JSON channels,
subscribes, and decodes binary ``messageData`` frames (opcode 1: subscription id u32,
log time u64, payload; little endian).  Used by the tests and to render the README
screenshot from exactly what Foxglove Studio would receive.
"""
from __future__ import annotations

import asyncio
import base64
import json
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Callable

SUBPROTOCOLS = ("foxglove.sdk.v1", "foxglove.websocket.v1")
OP_MESSAGE_DATA = 0x01


@dataclass
class FoxgloveScene:
    """Decoded traffic: ``channels`` topic -> advertised channel, ``messages`` topic -> decoded dicts."""

    server_info: dict[str, Any] = field(default_factory=dict)
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: dict[str, list[Any]] = field(default_factory=dict)
    log_times: dict[str, list[int]] = field(default_factory=dict)

    def latest(self, topic: str) -> Any:
        return self.messages[topic][-1]


def protobuf_decoder(schema_name: str, schema_b64: str) -> Callable[[bytes], dict[str, Any]]:
    """bytes -> dict for one protobuf channel, from its advertised FileDescriptorSet."""
    from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

    file_set = descriptor_pb2.FileDescriptorSet.FromString(base64.b64decode(schema_b64))
    pool = descriptor_pool.DescriptorPool()
    for proto in file_set.file:
        pool.Add(proto)
    message_class = message_factory.GetMessageClass(pool.FindMessageTypeByName(schema_name))

    def decode(payload: bytes) -> dict[str, Any]:
        message = message_class.FromString(payload)
        return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                         always_print_fields_with_no_presence=True)
    return decode


def channel_decoder(channel: dict[str, Any]) -> Callable[[bytes], Any]:
    """The payload decoder of an advertised channel (protobuf or JSON); ValueError otherwise."""
    encoding = channel.get("encoding")
    if encoding == "protobuf":
        return protobuf_decoder(channel["schemaName"], channel["schema"])
    if encoding == "json":
        return lambda payload: json.loads(payload.decode("utf-8"))
    raise ValueError(f"channel {channel.get('topic')}: unsupported encoding {encoding!r}")


async def _collect(url: str, topics: tuple[str, ...], min_messages: int, timeout: float,
                   required: tuple[str, ...]) -> FoxgloveScene:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    scene = FoxgloveScene()
    decoders: dict[int, tuple[str, Callable[[bytes], Any]]] = {}
    deadline = time.monotonic() + timeout

    def done() -> bool:
        return all(len(scene.messages.get(topic, ())) >= min_messages for topic in required)

    async with connect(url, subprotocols=list(SUBPROTOCOLS), max_size=None) as ws:
        next_id = 1
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                frame = await asyncio.wait_for(ws.recv(), remaining)
            except (asyncio.TimeoutError, ConnectionClosed):
                break  # out of time, or the server went away: return what arrived
            if isinstance(frame, bytes):
                if frame[0] != OP_MESSAGE_DATA:
                    continue
                subscription, log_time = struct.unpack_from("<IQ", frame, 1)
                topic, decode = decoders[subscription]
                scene.messages.setdefault(topic, []).append(decode(frame[13:]))
                scene.log_times.setdefault(topic, []).append(log_time)
                continue
            message = json.loads(frame)
            if message.get("op") == "serverInfo":
                scene.server_info = message
            elif message.get("op") == "advertise":
                subscriptions = []
                for channel in message["channels"]:
                    scene.channels[channel["topic"]] = channel
                    if channel["topic"] in topics or not topics:
                        decoders[next_id] = (channel["topic"], channel_decoder(channel))
                        subscriptions.append({"id": next_id, "channelId": channel["id"]})
                        next_id += 1
                if subscriptions:
                    await ws.send(json.dumps({"op": "subscribe", "subscriptions": subscriptions}))
    return scene


def collect_foxglove(url: str, topics: tuple[str, ...], min_messages: int = 1, timeout: float = 10.0,
                     required: tuple[str, ...] | None = None) -> FoxgloveScene:
    """Connect, subscribe to ``topics`` and return once each of ``required`` (default: all
    ``topics``) has ``min_messages``, when the server closes, or at ``timeout``."""
    return asyncio.run(_collect(url, tuple(topics), min_messages, timeout,
                                tuple(topics if required is None else required)))
