"""Node sink serving the scene to Foxglove Studio over the Foxglove WebSocket protocol
(foxglove-sdk), optionally recording the same channels to an MCAP file.

Channels (protobuf, Foxglove well-known schemas): ``/lidar/points`` PointCloud,
``/perception/boxes`` SceneUpdate (cubes + track-id labels), ``/perception/map`` SceneUpdate
(polylines), ``/perception/path`` SceneUpdate (ego path line), ``/tf`` FrameTransforms
(world -> sensor), and ``/perception/diagnostics`` JSON (per-stage latency, counters).
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..visualization.colors import MAP_COLORS, class_color
from .results import BridgeFrame, StackOutput

LOGGER = logging.getLogger(__name__)
DIAGNOSTICS_SCHEMA = {
    "type": "object",
    "properties": {"latencies_ms": {"type": "object"}, "counters": {"type": "object"},
                   "frame": {"type": "string"}},
}
TOPICS = {"points": "/lidar/points", "boxes": "/perception/boxes", "map": "/perception/map",
          "path": "/perception/path", "tf": "/tf", "diagnostics": "/perception/diagnostics"}


def _color(hex_color: str, alpha: float = 1.0):
    from foxglove.messages import Color

    value = hex_color.lstrip("#")
    r, g, b = (int(value[i:i + 2], 16) / 255.0 for i in (0, 2, 4))
    return Color(r=r, g=g, b=b, a=alpha)


def _pose(x: float = 0.0, y: float = 0.0, z: float = 0.0, yaw: float = 0.0):
    from foxglove.messages import Pose, Quaternion, Vector3

    return Pose(position=Vector3(x=float(x), y=float(y), z=float(z)),
                orientation=Quaternion(x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2)))


def _timestamp(seconds: float):
    from foxglove.messages import Timestamp

    sec = math.floor(seconds)
    return Timestamp(int(sec), min(int(round((seconds - sec) * 1e9)), 999_999_999))


class FoxgloveSink:
    """Starts a Foxglove WebSocket server (``port=0`` picks a free one) and logs every result."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8765, mcap_path: str | Path | None = None,
                 serve: bool = True, max_points: int | None = None, name: str = "perception bridge",
                 world_frame: str = "world", backlog: int = 64) -> None:
        import foxglove
        from foxglove.channels import FrameTransformsChannel, PointCloudChannel, SceneUpdateChannel

        self.context = foxglove.Context()
        # a slow client keeps at most ``backlog`` messages (~10 frames); older data-plane ones are dropped
        self.server = foxglove.start_server(name=name, host=host, port=port, context=self.context,
                                            message_backlog_size=backlog) if serve else None
        self.mcap = foxglove.open_mcap(str(mcap_path), allow_overwrite=True, context=self.context) \
            if mcap_path else None
        self.max_points = max_points
        self.world_frame = world_frame
        self.points = PointCloudChannel(TOPICS["points"], context=self.context)
        self.boxes = SceneUpdateChannel(TOPICS["boxes"], context=self.context)
        self.map = SceneUpdateChannel(TOPICS["map"], context=self.context)
        self.path = SceneUpdateChannel(TOPICS["path"], context=self.context)
        self.tf = FrameTransformsChannel(TOPICS["tf"], context=self.context)
        self.diagnostics = foxglove.Channel(TOPICS["diagnostics"], schema=DIAGNOSTICS_SCHEMA, context=self.context)
        self._rng = np.random.default_rng(0)
        self.published = 0

    @property
    def port(self) -> int | None:
        return None if self.server is None else self.server.port

    def publish(self, item: BridgeFrame, output: StackOutput, stats: Any) -> None:
        frame, frame_id = item.frame, item.frame_id
        stamp = frame.timestamp
        log_time = int(stamp * 1e9)
        self.tf.log(self._transform(frame.lidar2global, frame_id, stamp), log_time=log_time)
        self.points.log(self._cloud(frame.points, frame.point_features, frame_id, stamp), log_time=log_time)
        self.boxes.log(self._boxes(output, frame_id, stamp), log_time=log_time)
        self.map.log(self._map(output, frame_id, stamp), log_time=log_time)
        if output.path is not None:
            self.path.log(self._path(output.path, frame_id, stamp), log_time=log_time)
        self.diagnostics.log({"frame": frame.token, "latencies_ms": output.latencies_ms,
                              "counters": stats.counters()}, log_time=log_time)
        self.published += 1

    def _transform(self, lidar2global: np.ndarray, frame_id: str, stamp: float):
        from foxglove.messages import FrameTransform, FrameTransforms, Quaternion, Vector3

        from ..structures import matrix_to_quaternion

        w, x, y, z = matrix_to_quaternion(lidar2global[:3, :3])
        t = lidar2global[:3, 3]
        return FrameTransforms(transforms=[FrameTransform(
            timestamp=_timestamp(stamp), parent_frame_id=self.world_frame, child_frame_id=frame_id,
            translation=Vector3(x=float(t[0]), y=float(t[1]), z=float(t[2])),
            rotation=Quaternion(x=float(x), y=float(y), z=float(z), w=float(w)))])

    def _cloud(self, points: np.ndarray, names: tuple[str, ...], frame_id: str, stamp: float):
        from foxglove.messages import PackedElementField, PackedElementFieldNumericType, PointCloud

        if self.max_points is not None and len(points) > self.max_points:
            points = points[self._rng.choice(len(points), self.max_points, replace=False)]
        data = np.ascontiguousarray(points, dtype=np.float32)
        fields = [PackedElementField(name=name, offset=4 * index, type=PackedElementFieldNumericType.Float32)
                  for index, name in enumerate(names)]
        return PointCloud(timestamp=_timestamp(stamp), frame_id=frame_id, pose=_pose(),
                          point_stride=4 * len(names), fields=fields, data=data.tobytes())

    def _boxes(self, output: StackOutput, frame_id: str, stamp: float):
        from foxglove.messages import CubePrimitive, SceneEntity, SceneEntityDeletion, SceneUpdate, TextPrimitive
        from foxglove.messages import SceneEntityDeletionType, Vector3

        entities = []
        boxes = output.boxes
        for index in range(len(boxes)):
            x, y, z, length, width, height, yaw = (float(v) for v in boxes.data[index, :7])
            label = int(boxes.labels[index])
            name = output.class_names[label] if 0 <= label < len(output.class_names) else str(label)
            track = boxes.track_ids[index]
            score = "" if boxes.scores is None else f" {boxes.scores[index]:.2f}"
            entities.append(SceneEntity(
                timestamp=_timestamp(stamp), frame_id=frame_id, id=f"box/{track or index}",
                cubes=[CubePrimitive(pose=_pose(x, y, z, yaw), size=Vector3(x=length, y=width, z=height),
                                     color=_color(class_color(name), 0.5))],
                texts=[TextPrimitive(pose=_pose(x, y, z + height / 2 + 0.5), billboard=True, font_size=14.0,
                                     scale_invariant=True, color=_color(class_color(name)),
                                     text=f"{name}{' #' + track if track else ''}{score}")]))
        return SceneUpdate(deletions=[SceneEntityDeletion(timestamp=_timestamp(stamp),
                                                          type=SceneEntityDeletionType.All)],
                           entities=entities)

    def _lines(self, entity_id: str, polylines: list[tuple[np.ndarray, str]], frame_id: str, stamp: float,
               thickness: float):
        from foxglove.messages import LinePrimitive, Point3, SceneEntity, SceneEntityDeletion, SceneUpdate
        from foxglove.messages import SceneEntityDeletionType

        lines = [LinePrimitive(pose=_pose(), thickness=thickness, color=_color(color),
                               points=[Point3(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in points])
                 for points, color in polylines]
        return SceneUpdate(deletions=[SceneEntityDeletion(timestamp=_timestamp(stamp),
                                                          type=SceneEntityDeletionType.All)],
                           entities=[SceneEntity(timestamp=_timestamp(stamp), frame_id=frame_id, id=entity_id,
                                                 lines=lines)])

    def _map(self, output: StackOutput, frame_id: str, stamp: float):
        polylines = []
        for line in output.map_polylines:
            points = np.asarray(line.points, dtype=np.float64)
            if line.closed and len(points) > 2:
                points = np.concatenate([points, points[:1]])
            polylines.append((points, MAP_COLORS.get(line.category, "#a0a0a0")))
        return self._lines("map", polylines, frame_id, stamp, 0.15)

    def _path(self, path: np.ndarray, frame_id: str, stamp: float):
        xy = np.asarray(path, dtype=np.float64).reshape(-1, 3)[:, :2]
        points = np.pad(xy, ((0, 0), (0, 1)))
        return self._lines("ego_path", [(points, "#00c0ff")], frame_id, stamp, 0.3)

    def close(self) -> None:
        """Stop the server and finish the MCAP file."""
        if self.mcap is not None:
            self.mcap.close()
            self.mcap = None
        if self.server is not None:
            self.server.stop()
            self.server = None

