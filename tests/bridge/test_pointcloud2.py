"""PointCloud2 decoding reads the layout from the message: offsets, padding, byte order, counts."""
from __future__ import annotations

import base64

import numpy as np
import pytest

from perception.bridge.conversions import frame_from_pointcloud2
from perception.bridge.errors import BridgeMessageError
from perception.bridge.pointcloud2 import decode_pointcloud2, encode_pointcloud2
from perception.bridge.ros_messages import header


def _cloud(structured: np.ndarray, fields: list[dict], big_endian: bool = False, height: int = 1,
           row_pad: int = 0) -> dict:
    step = structured.dtype.itemsize
    width = len(structured) // height
    rows = structured.tobytes()
    if row_pad:
        rows = b"".join(rows[r * width * step:(r + 1) * width * step] + b"\0" * row_pad for r in range(height))
    return {"header": header(1.5, "velodyne"), "height": height, "width": width, "fields": fields,
            "is_bigendian": big_endian, "point_step": step, "row_step": width * step + row_pad,
            "data": base64.b64encode(rows).decode(), "is_dense": False}


def test_round_trip_float32() -> None:
    points = np.random.default_rng(0).normal(size=(100, 4)).astype(np.float32)
    msg = encode_pointcloud2(points, ("x", "y", "z", "intensity"), header(3.0, "lidar"))
    decoded, names = decode_pointcloud2(msg)
    assert names == ("x", "y", "z", "intensity")
    np.testing.assert_array_equal(decoded, points)
    as_list = encode_pointcloud2(points, ("x", "y", "z", "intensity"), header(3.0, "lidar"), as_base64=False)
    np.testing.assert_array_equal(decode_pointcloud2(as_list)[0], points)


def test_layout_with_padding_big_endian_rows_and_counts() -> None:
    """Ouster-like layout: intensity before xyz, padding, uint16 ring, a count-2 field, 2 rows."""
    data = np.zeros(6, dtype=np.dtype({"names": ["intensity", "x", "y", "z", "ring", "n"],
                                       "formats": [">f4"] * 4 + [">u2", "(2,)>i2"],
                                       "offsets": [0, 8, 12, 16, 20, 22], "itemsize": 32}))
    data["x"], data["y"], data["z"] = np.arange(6), np.arange(6) * 2, -np.arange(6)
    data["intensity"], data["ring"] = 7.0, np.arange(6) + 100
    data["n"][:, 1] = -5
    data["x"][2] = np.nan  # a missing return: dropped
    fields = [{"name": "intensity", "offset": 0, "datatype": 7, "count": 1},
              {"name": "x", "offset": 8, "datatype": 7, "count": 1},
              {"name": "y", "offset": 12, "datatype": 7, "count": 1},
              {"name": "z", "offset": 16, "datatype": 7, "count": 1},
              {"name": "ring", "offset": 20, "datatype": 4, "count": 1},
              {"name": "n", "offset": 22, "datatype": 3, "count": 2}]
    points, names = decode_pointcloud2(_cloud(data, fields, big_endian=True, height=2, row_pad=8))
    assert names == ("x", "y", "z", "intensity", "ring", "n_0", "n_1")
    assert points.shape == (5, 7)
    np.testing.assert_array_equal(points[:, 0], [0, 1, 3, 4, 5])
    np.testing.assert_array_equal(points[:, 4], [100, 101, 103, 104, 105])
    np.testing.assert_array_equal(points[:, 6], -5)


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(data="###"), "base64"),
    (lambda m: m.update(row_step=m["row_step"] + 4), "height\\*row_step|inconsistent"),
    (lambda m: m.update(fields=[f for f in m["fields"] if f["name"] != "z"]), "z"),
    (lambda m: m["fields"][0].update(datatype=42), "datatype"),
    (lambda m: m["fields"][3].update(offset=14), "outside point_step"),
    (lambda m: m.pop("width"), "width"),
    (lambda m: m.update(data=[1, 2, 300]), "uint8"),
])
def test_malformed_clouds_raise_clear_errors(change, message) -> None:
    msg = encode_pointcloud2(np.ones((4, 4), np.float32), ("x", "y", "z", "intensity"), header(0, "l"))
    change(msg)
    with pytest.raises(BridgeMessageError, match=message):
        decode_pointcloud2(msg)


@pytest.mark.real_data
def test_real_nuscenes_keyframe_survives_base64(nuscenes_keyframe_dir) -> None:
    """The nuScenes keyframe (x, y, z, intensity, ring) through PointCloud2 + base64 and back."""
    path = next(nuscenes_keyframe_dir.glob("*LIDAR_TOP*.pcd.bin"))
    points = np.fromfile(path, dtype=np.float32).reshape(-1, 5)
    msg = encode_pointcloud2(points, ("x", "y", "z", "intensity", "ring"), header(1532402927.647951, "LIDAR_TOP"))
    assert isinstance(msg["data"], str) and len(base64.b64decode(msg["data"])) == points.nbytes
    frame, frame_id = frame_from_pointcloud2(msg)
    assert frame_id == "LIDAR_TOP" and len(points) > 30000
    np.testing.assert_array_equal(frame.points, points)
    assert frame.point_features == ("x", "y", "z", "intensity", "ring")
    assert frame.timestamp == pytest.approx(1532402927.647951, abs=1e-6)


def test_frame_aliases_intensity_field() -> None:
    msg = encode_pointcloud2(np.ones((3, 4), np.float32), ("x", "y", "z", "reflectivity"), header(2.0, "/os"))
    frame, frame_id = frame_from_pointcloud2(msg, lidar2global=np.diag([1.0, 1.0, 1.0, 1.0]))
    assert frame.point_features == ("x", "y", "z", "intensity") and frame_id == "os"
