"""sensor_msgs/msg/PointCloud2 <-> numpy, with the field layout read from the message.

rosbridge sends ``uint8[]`` fields as base64 strings (ROS 2) or lists of ints; both are
accepted.  Fields may sit at any offset with padding between them, in either byte order;
``count > 1`` fields expand to ``name_0 .. name_{count-1}`` columns.
"""
from __future__ import annotations

import base64
import binascii
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import BridgeMessageError

# sensor_msgs/msg/PointField datatype constants -> numpy scalar type
POINTFIELD_DTYPES: dict[int, str] = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}
DTYPE_TO_POINTFIELD: dict[str, int] = {code: number for number, code in POINTFIELD_DTYPES.items()}


def message_bytes(data: Any, what: str) -> bytes:
    """The bytes of a ``uint8[]`` field as rosbridge sends it (base64 str, list of ints, bytes)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as error:
            raise BridgeMessageError(f"{what}: data is not valid base64 ({error})") from error
    if isinstance(data, (list, tuple, np.ndarray)):
        array = np.asarray(data)
        if array.size and (array.dtype.kind not in "iu" or array.min() < 0 or array.max() > 255):
            raise BridgeMessageError(f"{what}: data list holds values outside uint8")
        return array.astype(np.uint8).tobytes()
    raise BridgeMessageError(f"{what}: data has type {type(data).__name__}, expected base64 str or list")


def _field(msg: Mapping[str, Any], key: str, what: str) -> Any:
    if key not in msg:
        raise BridgeMessageError(f"{what}: missing field {key!r}")
    return msg[key]


def pointcloud_dtype(fields: Sequence[Mapping[str, Any]], point_step: int, big_endian: bool,
                     what: str = "PointCloud2") -> np.dtype:
    """A numpy structured dtype of one point as the message's ``fields`` lay it out."""
    order = ">" if big_endian else "<"
    names, formats, offsets = [], [], []
    for field in fields:
        try:
            name, offset, datatype = str(field["name"]), int(field["offset"]), int(field["datatype"])
            count = int(field.get("count", 1) or 1)
        except (KeyError, TypeError, ValueError) as error:
            raise BridgeMessageError(f"{what}: bad PointField {field!r} ({error})") from error
        if datatype not in POINTFIELD_DTYPES:
            raise BridgeMessageError(f"{what}: field {name!r} has unknown datatype {datatype}")
        size = np.dtype(POINTFIELD_DTYPES[datatype]).itemsize
        for index in range(count):
            names.append(name if count == 1 else f"{name}_{index}")
            formats.append(order + POINTFIELD_DTYPES[datatype])
            offsets.append(offset + index * size)
            if offsets[-1] < 0 or offsets[-1] + size > point_step:
                raise BridgeMessageError(f"{what}: field {name!r} at offset {offsets[-1]} (size {size}) "
                                         f"lies outside point_step {point_step}")
    if len(set(names)) != len(names):
        raise BridgeMessageError(f"{what}: duplicate field names {names}")
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": point_step})


def decode_pointcloud2(msg: Mapping[str, Any], what: str = "PointCloud2") -> tuple[np.ndarray, tuple[str, ...]]:
    """``(N, C)`` float32 points and their column names (``x, y, z`` first, then the rest).

    Raises :class:`BridgeMessageError` for a layout that contradicts the data size, a
    missing ``x``/``y``/``z`` field or undecodable data.  Rows with non-finite ``x, y, z``
    are dropped (``is_dense=False`` clouds mark missing returns with NaN).
    """
    if not isinstance(msg, Mapping):
        raise BridgeMessageError(f"{what}: expected a JSON object, got {type(msg).__name__}")
    try:
        height, width = int(_field(msg, "height", what)), int(_field(msg, "width", what))
        point_step, row_step = int(_field(msg, "point_step", what)), int(_field(msg, "row_step", what))
    except (TypeError, ValueError) as error:
        raise BridgeMessageError(f"{what}: non-integer size field ({error})") from error
    fields = _field(msg, "fields", what)
    if not isinstance(fields, list) or not fields:
        raise BridgeMessageError(f"{what}: 'fields' must be a non-empty list")
    if height < 0 or width < 0 or point_step <= 0 or row_step < width * point_step:
        raise BridgeMessageError(f"{what}: inconsistent sizes height={height} width={width} "
                                 f"point_step={point_step} row_step={row_step}")
    dtype = pointcloud_dtype(fields, point_step, bool(msg.get("is_bigendian", False)), what)
    missing = [axis for axis in ("x", "y", "z") if axis not in dtype.names]
    if missing:
        raise BridgeMessageError(f"{what}: no {missing} field(s); fields are {list(dtype.names)}")
    raw = message_bytes(_field(msg, "data", what), what)
    if len(raw) != height * row_step:
        raise BridgeMessageError(f"{what}: {len(raw)} data bytes, expected height*row_step = "
                                 f"{height}*{row_step} = {height * row_step}")
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, row_step)[:, : width * point_step]
    points = np.ascontiguousarray(rows).view(dtype).reshape(-1)
    names = ("x", "y", "z") + tuple(name for name in dtype.names if name not in ("x", "y", "z"))
    columns = np.stack([points[name].astype(np.float32) for name in names], axis=1) if len(points) else \
        np.zeros((0, len(names)), dtype=np.float32)
    finite = np.isfinite(columns[:, :3]).all(axis=1)
    return columns[finite], names


def encode_pointcloud2(points: np.ndarray, names: Sequence[str], header: Mapping[str, Any],
                       as_base64: bool = True) -> dict[str, Any]:
    """A PointCloud2 message dict (float32 fields, little endian, one row) of ``(N, C)`` points."""
    points = np.ascontiguousarray(points, dtype=np.float32)
    if points.ndim != 2 or points.shape[1] != len(names):
        raise ValueError(f"encode_pointcloud2: points shape {points.shape} does not match names {list(names)}")
    step = 4 * len(names)
    data = points.tobytes()
    return {
        "header": dict(header),
        "height": 1,
        "width": int(len(points)),
        "fields": [{"name": name, "offset": 4 * index, "datatype": DTYPE_TO_POINTFIELD["f4"], "count": 1}
                   for index, name in enumerate(names)],
        "is_bigendian": False,
        "point_step": step,
        "row_step": step * len(points),
        "data": base64.b64encode(data).decode("ascii") if as_base64 else list(data),
        "is_dense": True,
    }
