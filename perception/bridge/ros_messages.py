"""Builders and readers of the ROS 2 messages the bridge speaks, as rosbridge JSON dicts.

Outgoing: visualization_msgs/msg/MarkerArray (boxes, track ids, map polylines),
nav_msgs/msg/Path, diagnostic_msgs/msg/DiagnosticArray.  Incoming: tf2_msgs/msg/TFMessage
and sensor_msgs/msg/CompressedImage.  Field names follow the ROS 2 (Humble) definitions;
the test server checks them against rosbags' typestore.
"""
from __future__ import annotations

import io
import math
from typing import Any, Iterable, Mapping

import numpy as np

from ..structures import quaternion_to_matrix
from ..visualization.colors import MAP_COLORS, class_color
from .errors import BridgeMessageError
from .pointcloud2 import message_bytes
from .results import StackOutput

MARKER_CUBE, MARKER_LINE_STRIP, MARKER_LINE_LIST, MARKER_TEXT = 1, 4, 5, 9
MARKER_ADD, MARKER_DELETEALL = 0, 3
DIAG_OK, DIAG_WARN = 0, 1


def stamp_of(seconds: float) -> dict[str, int]:
    """builtin_interfaces/msg/Time of a float timestamp."""
    sec = math.floor(seconds)
    return {"sec": int(sec), "nanosec": min(int(round((seconds - sec) * 1e9)), 999_999_999)}


def seconds_of(stamp: Mapping[str, Any]) -> float:
    """Float seconds of a ROS 2 (``sec``/``nanosec``) or ROS 1 (``secs``/``nsecs``) time."""
    if "sec" in stamp:
        return float(stamp["sec"]) + float(stamp.get("nanosec", 0)) * 1e-9
    return float(stamp.get("secs", 0)) + float(stamp.get("nsecs", 0)) * 1e-9


def header(seconds: float, frame_id: str) -> dict[str, Any]:
    """std_msgs/msg/Header."""
    return {"stamp": stamp_of(seconds), "frame_id": frame_id}


def yaw_quaternion(yaw: float) -> dict[str, float]:
    """geometry_msgs/msg/Quaternion of a rotation about +z."""
    return {"x": 0.0, "y": 0.0, "z": math.sin(yaw / 2.0), "w": math.cos(yaw / 2.0)}


def rgba(hex_color: str, alpha: float = 1.0) -> dict[str, float]:
    """std_msgs/msg/ColorRGBA of ``#rrggbb``."""
    value = hex_color.lstrip("#")
    r, g, b = (int(value[i:i + 2], 16) / 255.0 for i in (0, 2, 4))
    return {"r": r, "g": g, "b": b, "a": float(alpha)}


def _point(x: float, y: float, z: float) -> dict[str, float]:
    return {"x": float(x), "y": float(y), "z": float(z)}


def _marker(hdr: dict[str, Any], ns: str, marker_id: int, kind: int) -> dict[str, Any]:
    return {
        "header": hdr, "ns": ns, "id": int(marker_id), "type": kind, "action": MARKER_ADD,
        "pose": {"position": _point(0, 0, 0), "orientation": yaw_quaternion(0.0)},
        "scale": _point(1, 1, 1), "color": rgba("#ffffff"),
        "lifetime": {"sec": 0, "nanosec": 0}, "frame_locked": False,
        "points": [], "colors": [], "text": "", "mesh_resource": "", "mesh_use_embedded_materials": False,
    }


def box_markers(output: StackOutput, hdr: dict[str, Any]) -> list[dict[str, Any]]:
    """One translucent CUBE per box (class colour) and a TEXT label with class, track id, score."""
    markers = []
    boxes = output.boxes
    for index in range(len(boxes)):
        x, y, z, length, width, height, yaw = boxes.data[index, :7]
        name = output.class_names[boxes.labels[index]] if 0 <= boxes.labels[index] < len(output.class_names) \
            else str(boxes.labels[index])
        cube = _marker(hdr, "boxes", index, MARKER_CUBE)
        cube["pose"] = {"position": _point(x, y, z), "orientation": yaw_quaternion(yaw)}
        cube["scale"] = _point(max(length, 1e-3), max(width, 1e-3), max(height, 1e-3))
        cube["color"] = rgba(class_color(name), 0.5)
        markers.append(cube)
        label = _marker(hdr, "labels", index, MARKER_TEXT)
        label["pose"] = {"position": _point(x, y, z + height / 2 + 0.5), "orientation": yaw_quaternion(0.0)}
        label["scale"] = _point(0, 0, 0.8)
        score = "" if boxes.scores is None else f" {boxes.scores[index]:.2f}"
        track = boxes.track_ids[index]
        label["text"] = f"{name}{' #' + track if track else ''}{score}"
        label["color"] = rgba(class_color(name))
        markers.append(label)
    return markers


def map_markers(output: StackOutput, hdr: dict[str, Any]) -> list[dict[str, Any]]:
    """One LINE_STRIP per map polyline (polygons closed by repeating the first vertex)."""
    markers = []
    for index, line in enumerate(output.map_polylines):
        points = np.asarray(line.points, dtype=np.float64)
        if line.closed and len(points) > 2:
            points = np.concatenate([points, points[:1]])
        marker = _marker(hdr, f"map/{line.category}", index, MARKER_LINE_STRIP)
        marker["scale"] = _point(0.15, 0, 0)
        marker["color"] = rgba(MAP_COLORS.get(line.category, "#a0a0a0"))
        marker["points"] = [_point(*p[:3]) for p in points]
        markers.append(marker)
    return markers


def marker_array(output: StackOutput, seconds: float, frame_id: str) -> dict[str, Any]:
    """visualization_msgs/msg/MarkerArray: DELETEALL first, then boxes, labels and map lines."""
    hdr = header(seconds, frame_id)
    clear = _marker(hdr, "", 0, MARKER_CUBE)
    clear["action"] = MARKER_DELETEALL
    return {"markers": [clear, *box_markers(output, hdr), *map_markers(output, hdr)]}


def path_message(path: np.ndarray, seconds: float, frame_id: str) -> dict[str, Any]:
    """nav_msgs/msg/Path of ``(T, 3)`` x, y, yaw poses."""
    hdr = header(seconds, frame_id)
    poses = [{"header": hdr, "pose": {"position": _point(x, y, 0.0), "orientation": yaw_quaternion(yaw)}}
             for x, y, yaw in np.asarray(path, dtype=np.float64).reshape(-1, 3)]
    return {"header": hdr, "poses": poses}


def diagnostics_message(name: str, seconds: float, latencies_ms: Mapping[str, float],
                        counters: Mapping[str, int], budget_ms: float | None = None) -> dict[str, Any]:
    """diagnostic_msgs/msg/DiagnosticArray: per-stage latency (ms) and the drop/error counters."""
    total = float(sum(latencies_ms.values()))
    level = DIAG_WARN if budget_ms is not None and total > budget_ms else DIAG_OK
    values = [{"key": f"latency_ms/{stage}", "value": f"{value:.2f}"} for stage, value in latencies_ms.items()]
    values.append({"key": "latency_ms/total", "value": f"{total:.2f}"})
    values += [{"key": key, "value": str(int(value))} for key, value in counters.items()]
    status = {"level": level, "name": name, "message": f"{total:.1f} ms per frame",
              "hardware_id": "perception", "values": values}
    return {"header": header(seconds, ""), "status": [status]}


def transforms_of(msg: Mapping[str, Any]) -> Iterable[tuple[str, str, np.ndarray]]:
    """``(parent, child, 4x4 child->parent)`` of every transform in a tf2_msgs/msg/TFMessage."""
    if not isinstance(msg, Mapping) or not isinstance(msg.get("transforms"), list):
        raise BridgeMessageError("TFMessage: missing 'transforms' list")
    for item in msg["transforms"]:
        try:
            parent, child = str(item["header"]["frame_id"]), str(item["child_frame_id"])
            t, q = item["transform"]["translation"], item["transform"]["rotation"]
            matrix = np.eye(4)
            matrix[:3, :3] = quaternion_to_matrix([float(q["w"]), float(q["x"]), float(q["y"]), float(q["z"])])
            matrix[:3, 3] = [float(t["x"]), float(t["y"]), float(t["z"])]
        except (KeyError, TypeError, ValueError) as error:
            raise BridgeMessageError(f"TFMessage: malformed transform {item!r} ({error})") from error
        if not np.isfinite(matrix).all():
            raise BridgeMessageError(f"TFMessage: non-finite transform {parent} -> {child}")
        yield parent.lstrip("/"), child.lstrip("/"), matrix


def decode_compressed_image(msg: Mapping[str, Any]) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of a sensor_msgs/msg/CompressedImage (JPEG or PNG)."""
    from PIL import Image, UnidentifiedImageError

    if not isinstance(msg, Mapping) or "data" not in msg:
        raise BridgeMessageError("CompressedImage: missing 'data'")
    raw = message_bytes(msg["data"], "CompressedImage")
    try:
        with Image.open(io.BytesIO(raw)) as handle:
            return np.asarray(handle.convert("RGB"))
    except (UnidentifiedImageError, OSError) as error:
        raise BridgeMessageError(f"CompressedImage ({msg.get('format', '?')}): cannot decode ({error})") from error
