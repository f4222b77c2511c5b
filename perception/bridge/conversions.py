"""Incoming ROS data -> :class:`~perception.structures.Frame` for the stack."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

from ..structures import NUSCENES_CLASSES, Frame
from .errors import BridgeMessageError
from .pointcloud2 import decode_pointcloud2
from .ros_messages import seconds_of

LIDAR_FEATURE_ALIASES = {"i": "intensity", "reflectivity": "intensity", "t": "time_lag"}


def frame_from_pointcloud2(msg: Mapping[str, Any], lidar2global: np.ndarray | None = None,
                           class_names: Sequence[str] = NUSCENES_CLASSES) -> tuple[Frame, str]:
    """A Frame (LiDAR frame = ego frame) of one PointCloud2 dict, and the cloud's ``frame_id``.

    Field names are taken from the message; common aliases (``i``, ``reflectivity``) map
    to ``intensity``.  ``lidar2global`` is the sensor pose from TF (identity when unknown).
    """
    points, names = decode_pointcloud2(msg)
    renamed = [LIDAR_FEATURE_ALIASES.get(name, name) for name in names]
    names = tuple(new if renamed.count(new) == 1 and (new == old or new not in names) else old
                  for old, new in zip(names, renamed))
    hdr = msg.get("header") or {}
    if not isinstance(hdr, Mapping):
        raise BridgeMessageError("PointCloud2: 'header' is not an object")
    try:
        stamp = seconds_of(hdr.get("stamp") or {})
    except (TypeError, ValueError) as error:
        raise BridgeMessageError(f"PointCloud2: bad header.stamp ({error})") from error
    frame_id = str(hdr.get("frame_id", "") or "lidar").lstrip("/")
    frame = Frame(token=f"{frame_id}@{stamp:.6f}", timestamp=stamp, dataset="ros", points=points,
                  point_features=names, lidar2ego=np.eye(4),
                  ego2global=np.eye(4) if lidar2global is None else lidar2global,
                  class_names=tuple(class_names))
    return frame, frame_id


def to_plain(value: Any) -> Any:
    """A rosbags message object (nested dataclasses) as plain dicts / lists; arrays stay arrays."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                if not f.name.startswith("__")}
    if isinstance(value, (list, tuple)):
        return [to_plain(item) for item in value]
    return value
