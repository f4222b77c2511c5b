"""The rosbridge v2 side: a roslibpy connection that feeds frames in and publishes results out.

roslibpy (Twisted transport) runs its reactor in a daemon thread; subscription callbacks run
there, so they only decode and enqueue.  The connection reconnects with exponential back-off
(``initial_delay`` doubling-ish up to ``max_delay``) when the server goes away, and roslibpy
re-sends our subscribe/advertise requests after each reconnect.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..structures import NUSCENES_CLASSES
from .conversions import frame_from_pointcloud2
from .errors import BridgeMessageError
from .pointcloud2 import encode_pointcloud2
from .results import BridgeFrame, StackOutput
from .ros_messages import decode_compressed_image, diagnostics_message, header, marker_array, path_message
from .tf_buffer import TfBuffer

LOGGER = logging.getLogger(__name__)

POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"
MARKER_ARRAY = "visualization_msgs/msg/MarkerArray"
PATH = "nav_msgs/msg/Path"
DIAGNOSTIC_ARRAY = "diagnostic_msgs/msg/DiagnosticArray"


@dataclass
class RosbridgeOptions:
    """Where to connect and which topics to use (all configurable from the command line)."""

    host: str = "127.0.0.1"
    port: int = 9090
    pointcloud_topic: str = "/points"
    image_topics: tuple[str, ...] = ()
    tf_topics: tuple[str, ...] = ("/tf", "/tf_static")
    fixed_frame: str = "map"
    markers_topic: str = "/perception/markers"
    path_topic: str = "/perception/path"
    diagnostics_topic: str = "/diagnostics"
    points_out_topic: str = "/perception/points"
    publish_points: bool = False
    initial_delay: float = 0.5
    max_delay: float = 10.0
    connect_timeout: float = 10.0
    class_names: tuple[str, ...] = field(default=NUSCENES_CLASSES)


class RosbridgeConnection:
    """One roslibpy ``Ros`` with our back-off settings; ``close`` never stops the shared reactor."""

    def __init__(self, options: RosbridgeOptions) -> None:
        import roslibpy

        self.options = options
        self.ros = roslibpy.Ros(host=options.host, port=options.port)
        # instance attributes shadow roslibpy's class-wide setters (no global state touched)
        factory = self.ros.factory
        factory.initialDelay = factory.delay = options.initial_delay
        factory.maxDelay = options.max_delay
        self.connected = threading.Event()
        self.connections = 0
        factory.on("ready", self._on_ready)  # fires on every (re)connection
        factory.on("close", lambda _proto: self.connected.clear())
        if self.ros.is_connected:
            self._on_ready(None)

    def _on_ready(self, _proto: Any) -> None:
        self.connections += 1
        self.connected.set()
        LOGGER.info("connected to rosbridge at ws://%s:%d (connection %d)",
                    self.options.host, self.options.port, self.connections)

    def start(self, wait: bool = True) -> "RosbridgeConnection":
        """Start the reactor thread; with ``wait``, block until connected (raises on timeout)."""
        self.ros.factory.manager.run()
        if wait and not self.connected.wait(self.options.connect_timeout):
            raise ConnectionError(f"no rosbridge server at ws://{self.options.host}:{self.options.port} "
                                  f"after {self.options.connect_timeout:.0f} s (still retrying in the background)")
        return self

    def topic(self, name: str, message_type: str, **kwargs: Any):
        import roslibpy

        return roslibpy.Topic(self.ros, name, message_type, **kwargs)

    def close(self) -> None:
        """Disconnect cleanly (no reconnect afterwards)."""
        try:
            self.ros.close(timeout=2)
        except Exception as error:  # noqa: BLE001 - already gone is fine at shutdown
            LOGGER.debug("rosbridge close: %s", error)
        self.connected.clear()


class RosbridgeSource:
    """Subscribes to the point cloud (and optional cameras / TF) and submits frames.

    ``submit(BridgeFrame)`` and ``malformed(what, error)`` are the node's inputs; every
    decoding error is reported there and the message skipped.
    """

    def __init__(self, connection: RosbridgeConnection, submit: Callable[[BridgeFrame], None],
                 malformed: Callable[[str, Exception], None]) -> None:
        self.connection = connection
        self.options = connection.options
        self.submit = submit
        self.malformed = malformed
        self.tf = TfBuffer()
        self.latest_images: dict[str, np.ndarray] = {}
        self._topics = []

    def start(self) -> "RosbridgeSource":
        opts = self.options
        cloud = self.connection.topic(opts.pointcloud_topic, POINTCLOUD2, queue_length=1)
        cloud.subscribe(self._on_cloud)
        self._topics.append(cloud)
        for name in opts.tf_topics:
            tf = self.connection.topic(name, TF_MESSAGE)
            tf.subscribe(self._on_tf)
            self._topics.append(tf)
        for name in opts.image_topics:
            image = self.connection.topic(name, COMPRESSED_IMAGE, queue_length=1)
            image.subscribe(lambda msg, name=name: self._on_image(name, msg))
            self._topics.append(image)
        return self

    def _on_cloud(self, msg: dict[str, Any]) -> None:
        try:
            frame_id = str((msg.get("header") or {}).get("frame_id", "") or "lidar")
            pose = self.tf.lookup(frame_id, self.options.fixed_frame)
            frame, frame_id = frame_from_pointcloud2(msg, pose, self.options.class_names)
        except (BridgeMessageError, AttributeError, TypeError, ValueError) as error:
            self.malformed(f"{POINTCLOUD2} on {self.options.pointcloud_topic}", error)
            return
        self.submit(BridgeFrame(frame, frame_id, source="rosbridge",
                                images=dict(self.latest_images)))

    def _on_tf(self, msg: dict[str, Any]) -> None:
        try:
            self.tf.add_message(msg)
        except (BridgeMessageError, AttributeError, TypeError, ValueError) as error:
            self.malformed(TF_MESSAGE, error)

    def _on_image(self, topic: str, msg: dict[str, Any]) -> None:
        try:
            self.latest_images[topic] = decode_compressed_image(msg)
        except (BridgeMessageError, AttributeError, TypeError, ValueError) as error:
            self.malformed(f"{COMPRESSED_IMAGE} on {topic}", error)

    def close(self) -> None:
        for topic in self._topics:
            topic.unsubscribe()
        self._topics.clear()


class RosbridgePublisher:
    """Node sink: MarkerArray (boxes, labels, map), Path (when planned), DiagnosticArray."""

    def __init__(self, connection: RosbridgeConnection, node_name: str = "perception_bridge") -> None:
        import roslibpy

        self._message = roslibpy.Message
        self.connection = connection
        opts = connection.options
        self.node_name = node_name
        self.markers = connection.topic(opts.markers_topic, MARKER_ARRAY, queue_size=1)
        self.path = connection.topic(opts.path_topic, PATH, queue_size=1)
        self.diagnostics = connection.topic(opts.diagnostics_topic, DIAGNOSTIC_ARRAY, queue_size=1)
        self.points = connection.topic(opts.points_out_topic, POINTCLOUD2, queue_size=1) \
            if opts.publish_points else None
        for topic in (self.markers, self.path, self.diagnostics, self.points):
            if topic is not None:
                topic.advertise()
        self.published = 0

    def publish(self, item: BridgeFrame, output: StackOutput, stats) -> None:
        if not self.connection.connected.is_set():
            return  # roslibpy would buffer without bound while disconnected
        stamp = item.frame.timestamp
        if self.points is not None:
            frame = item.frame
            self.points.publish(self._message(encode_pointcloud2(frame.points, frame.point_features,
                                                                 header(stamp, item.frame_id))))
        self.markers.publish(self._message(marker_array(output, stamp, item.frame_id)))
        if output.path is not None:
            self.path.publish(self._message(path_message(output.path, stamp, item.frame_id)))
        self.diagnostics.publish(self._message(diagnostics_message(
            self.node_name, stamp, output.latencies_ms, stats.counters())))
        self.published += 1

    def close(self) -> None:
        for topic in (self.markers, self.path, self.diagnostics, self.points):
            if topic is not None:
                topic.unadvertise()
