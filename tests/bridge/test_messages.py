"""Outgoing ROS messages match the real ROS 2 definitions; the validator catches bad ones."""
from __future__ import annotations

import numpy as np
import pytest
from bridge_fakes import FakeStack, make_frame

from perception.bridge.ros_messages import (diagnostics_message, marker_array, path_message, stamp_of,
                                            transforms_of)
from perception.bridge.testing.ros_validation import RosMessageValidator
from perception.bridge.tf_buffer import TfBuffer


@pytest.fixture(scope="module")
def validator() -> RosMessageValidator:
    return RosMessageValidator()


def test_outgoing_messages_validate(validator) -> None:
    output = FakeStack()(make_frame())
    markers = marker_array(output, 12.25, "lidar")
    assert validator.validate("visualization_msgs/msg/MarkerArray", markers) == []
    assert markers["markers"][0]["action"] == 3  # DELETEALL first
    cubes = [m for m in markers["markers"] if m["ns"] == "boxes"]
    labels = [m["text"] for m in markers["markers"] if m["ns"] == "labels"]
    assert len(cubes) == 2 and labels[0].startswith("car #11")
    assert cubes[0]["scale"] == {"x": 4.5, "y": 1.9, "z": 1.6}
    closed = [m for m in markers["markers"] if m["ns"] == "map/ped_crossing"][0]
    assert closed["points"][0] == closed["points"][-1] and len(closed["points"]) == 4
    path = path_message(output.path, 12.25, "lidar")
    assert validator.validate("nav_msgs/Path", path) == [] and len(path["poses"]) == 3
    diag = diagnostics_message("bridge", 12.25, {"detector": 5.0, "tracker": 1.0}, {"frames_dropped": 3})
    assert validator.validate("diagnostic_msgs/msg/DiagnosticArray", diag) == []
    values = {v["key"]: v["value"] for v in diag["status"][0]["values"]}
    assert values["latency_ms/total"] == "6.00" and values["frames_dropped"] == "3"
    assert stamp_of(12.25) == {"sec": 12, "nanosec": 250_000_000}


def test_validator_rejects_bad_messages(validator) -> None:
    assert validator.validate("nav_msgs/msg/Nope", {}) == ["unknown message type 'nav_msgs/msg/Nope'"]
    problems = validator.validate("visualization_msgs/msg/Marker",
                                  {"id": 2**40, "ns": 3, "colour": {}, "pose": {"position": {"x": "1"}},
                                   "points": {"x": 1}})
    text = " ".join(problems)
    for expected in ("out of range for int32", "expected string", "unknown field 'colour'",
                     "expected float64", "expected a list"):
        assert expected in text
    assert validator.validate("sensor_msgs/msg/CompressedImage", {"data": "!!"}) == \
        ["sensor_msgs/msg/CompressedImage.data: invalid base64 for uint8[]"]


def test_tf_buffer_chains_transforms() -> None:
    def tf(parent, child, x, yaw):
        return {"header": {"stamp": {"sec": 0, "nanosec": 0}, "frame_id": parent}, "child_frame_id": child,
                "transform": {"translation": {"x": x, "y": 0.0, "z": 0.0},
                              "rotation": {"x": 0.0, "y": 0.0, "z": np.sin(yaw / 2), "w": np.cos(yaw / 2)}}}
    buffer = TfBuffer()
    assert buffer.add_message({"transforms": [tf("map", "base_link", 10.0, np.pi / 2),
                                              tf("base_link", "lidar", 1.0, 0.0)]}) == 2
    matrix = buffer.lookup("lidar", "map")
    np.testing.assert_allclose(matrix[:3, 3], [10.0, 1.0, 0.0], atol=1e-9)
    assert buffer.lookup("lidar", "odom") is None
    with pytest.raises(ValueError, match="TFMessage"):
        list(transforms_of({"transforms": [{"header": {}}]}))
