"""Replay of ROS 1 / ROS 2 bags through ``rosbags`` (no ROS install needed).

Point clouds on the chosen topic become frames; ``/tf`` and ``/tf_static`` messages in the bag
update a :class:`~perception.bridge.tf_buffer.TfBuffer` so frames carry the sensor pose.
Messages that do not decode are logged, counted in :attr:`BagSource.malformed` and skipped.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

from ...structures import NUSCENES_CLASSES
from ..conversions import frame_from_pointcloud2, to_plain
from ..errors import BridgeConfigError, BridgeMessageError
from ..results import BridgeFrame
from ..tf_buffer import TfBuffer

LOGGER = logging.getLogger(__name__)
POINTCLOUD_TYPES = ("sensor_msgs/msg/PointCloud2", "sensor_msgs/PointCloud2")
TF_TYPES = ("tf2_msgs/msg/TFMessage", "tf2_msgs/TFMessage", "tf/tfMessage", "tf/msg/tfMessage")


class BagSource:
    """Frames from a ROS 1 ``.bag`` or a ROS 2 bag directory (sqlite3 or mcap storage)."""

    name = "bag"

    def __init__(self, path: str | Path, topic: str | None = None, fixed_frame: str = "map",
                 class_names: tuple[str, ...] = NUSCENES_CLASSES, max_frames: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise BridgeConfigError(f"bag source: {self.path} does not exist")
        self.topic, self.fixed_frame, self.class_names = topic, fixed_frame, class_names
        self.max_frames = max_frames
        self.malformed = 0

    def __iter__(self) -> Iterator[BridgeFrame]:
        from rosbags.highlevel import AnyReader

        tf = TfBuffer()
        count = 0
        with AnyReader([self.path]) as reader:
            clouds = [c for c in reader.connections if c.msgtype in POINTCLOUD_TYPES
                      and (self.topic is None or c.topic == self.topic)]
            if not clouds:
                found = sorted({f"{c.topic} ({c.msgtype})" for c in reader.connections})
                raise BridgeConfigError(f"bag {self.path}: no PointCloud2 on {self.topic or 'any topic'}; "
                                        f"topics: {found}")
            tfs = [c for c in reader.connections if c.msgtype in TF_TYPES]
            for connection, _, raw in reader.messages(connections=clouds + tfs):
                try:
                    msg = to_plain(reader.deserialize(raw, connection.msgtype))
                    if connection.msgtype in TF_TYPES:
                        tf.add_message(msg)
                        continue
                    frame_id = str(msg["header"]["frame_id"] or "lidar")
                    frame, frame_id = frame_from_pointcloud2(msg, tf.lookup(frame_id, self.fixed_frame),
                                                             self.class_names)
                except (BridgeMessageError, KeyError, TypeError, ValueError, AssertionError) as error:
                    self.malformed += 1
                    LOGGER.warning("bag %s: skipped malformed %s on %s: %s", self.path.name, connection.msgtype,
                                   connection.topic, error)
                    continue
                yield BridgeFrame(frame, frame_id, source=f"bag:{connection.topic}")
                count += 1
                if self.max_frames is not None and count >= self.max_frames:
                    return
