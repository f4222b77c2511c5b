"""Check rosbridge JSON messages against the real ROS 2 message definitions (rosbags' typestore).

rosbridge fills absent fields with defaults, so a missing field is allowed; an unknown field,
a wrong JSON type, an out-of-range integer, a wrong fixed-array length or a bad base64
``uint8[]`` is an error naming the field path.
"""
from __future__ import annotations

import base64
import binascii
from typing import Any

INT_RANGES = {
    "int8": (-2**7, 2**7 - 1), "uint8": (0, 2**8 - 1), "int16": (-2**15, 2**15 - 1), "uint16": (0, 2**16 - 1),
    "int32": (-2**31, 2**31 - 1), "uint32": (0, 2**32 - 1), "int64": (-2**63, 2**63 - 1),
    "uint64": (0, 2**64 - 1), "byte": (0, 255), "octet": (0, 255), "char": (0, 255),
}
FLOATS = {"float32", "float64"}
NODE_BASE, NODE_NAME, NODE_ARRAY, NODE_SEQUENCE = 1, 2, 3, 4


def ros2_type_name(name: str) -> str:
    """``pkg/Type`` (ROS 1 style, accepted by rosbridge on ROS 2) -> ``pkg/msg/Type``."""
    parts = name.strip("/").split("/")
    return f"{parts[0]}/msg/{parts[1]}" if len(parts) == 2 else "/".join(parts)


class RosMessageValidator:
    """Validates message dicts against one rosbags typestore (ROS 2 Humble by default)."""

    def __init__(self, typestore: Any = None) -> None:
        if typestore is None:
            from rosbags.typesys import Stores, get_typestore

            typestore = get_typestore(Stores.ROS2_HUMBLE)
        self.typestore = typestore

    def knows(self, type_name: str) -> bool:
        return ros2_type_name(type_name) in self.typestore.fielddefs

    def validate(self, type_name: str, msg: Any) -> list[str]:
        """Every problem of ``msg`` as type ``type_name`` (empty list when valid)."""
        name = ros2_type_name(type_name)
        if name not in self.typestore.fielddefs:
            return [f"unknown message type {type_name!r}"]
        errors: list[str] = []
        self._message(name, msg, name, errors)
        return errors

    def _message(self, name: str, value: Any, path: str, errors: list[str]) -> None:
        if not isinstance(value, dict):
            errors.append(f"{path}: expected an object for {name}, got {type(value).__name__}")
            return
        _, fields = self.typestore.fielddefs[name]
        known = dict(fields)
        for key in value:
            if key not in known:
                errors.append(f"{path}: unknown field {key!r} for {name}")
        for key, (node, detail) in fields:
            if key in value:
                self._field(node, detail, value[key], f"{path}.{key}", errors)

    def _field(self, node: int, detail: Any, value: Any, path: str, errors: list[str]) -> None:
        node = int(node)
        if node == NODE_BASE:
            self._base(detail[0], value, path, errors)
        elif node == NODE_NAME:
            self._message(detail, value, path, errors)
        elif node in (NODE_ARRAY, NODE_SEQUENCE):
            (sub_node, sub_detail), length = detail
            if int(sub_node) == NODE_BASE and sub_detail[0] in ("uint8", "byte", "octet") and isinstance(value, str):
                try:
                    value = list(base64.b64decode(value, validate=True))
                except (binascii.Error, ValueError):
                    errors.append(f"{path}: invalid base64 for {sub_detail[0]}[]")
                    return
                if node == NODE_ARRAY and len(value) != length:
                    errors.append(f"{path}: {len(value)} bytes, fixed array needs {length}")
                return
            if not isinstance(value, list):
                errors.append(f"{path}: expected a list, got {type(value).__name__}")
                return
            if node == NODE_ARRAY and len(value) != length:
                errors.append(f"{path}: {len(value)} items, fixed array needs {length}")
            elif node == NODE_SEQUENCE and length and len(value) > length:
                errors.append(f"{path}: {len(value)} items exceed the bound {length}")
            for index, item in enumerate(value):
                self._field(sub_node, sub_detail, item, f"{path}[{index}]", errors)
                if len(errors) > 20:
                    return
        else:
            errors.append(f"{path}: unsupported node type {node}")

    @staticmethod
    def _base(kind: str, value: Any, path: str, errors: list[str]) -> None:
        if kind == "bool":
            if not isinstance(value, bool):
                errors.append(f"{path}: expected bool, got {value!r}")
        elif kind == "string":
            if not isinstance(value, str):
                errors.append(f"{path}: expected string, got {type(value).__name__}")
        elif kind in FLOATS:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                errors.append(f"{path}: expected {kind}, got {value!r}")
        elif kind in INT_RANGES:
            low, high = INT_RANGES[kind]
            if isinstance(value, bool) or not isinstance(value, int):
                errors.append(f"{path}: expected {kind}, got {value!r}")
            elif not low <= value <= high:
                errors.append(f"{path}: {value} out of range for {kind}")
        else:
            errors.append(f"{path}: unsupported base type {kind}")
