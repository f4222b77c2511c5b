"""Replay sources: sensor-rate pacing, ROS 1 / ROS 2 bags through rosbags, the synthetic world."""
from __future__ import annotations

import time

import numpy as np
import pytest
from bridge_fakes import make_frame

from perception.bridge.errors import BridgeConfigError
from perception.bridge.results import BridgeFrame
from perception.bridge.sources import BagSource, paced, synthetic_source


def test_paced_follows_timestamps() -> None:
    frames = [BridgeFrame(make_frame(f"f{i}", timestamp=10.0 + 0.1 * i)) for i in range(4)]
    start = time.monotonic()
    released = [(item.frame.token, item.received - start) for item in paced(frames, speed=2.0)]
    assert [token for token, _ in released] == ["f0", "f1", "f2", "f3"]
    gaps = np.diff([t for _, t in released])
    assert np.all(gaps > 0.04) and np.all(gaps < 0.12)  # 0.1 s of sensor time at 2x speed


def _bag_messages(typestore, frame_id: str = "velodyne"):
    """Two clouds (one with padding between fields) and a TF, as rosbags message objects."""
    types = typestore.types
    Time, Header = types["builtin_interfaces/msg/Time"], types["std_msgs/msg/Header"]
    PointField, Cloud = types["sensor_msgs/msg/PointField"], types["sensor_msgs/msg/PointCloud2"]
    rng = np.random.default_rng(1)
    ros1 = "seq" in dict(typestore.fielddefs["std_msgs/msg/Header"][1])

    def make_header(sec: int, frame: str):
        extra = {"seq": sec} if ros1 else {}
        return Header(stamp=Time(sec=sec, nanosec=0), frame_id=frame, **extra)
    clouds = []
    for index in range(2):
        dtype = np.dtype({"names": ["x", "y", "z", "intensity"], "formats": ["<f4"] * 4,
                          "offsets": [0, 4, 8, 16], "itemsize": 20})
        data = np.zeros(50, dtype)
        for name in dtype.names:
            data[name] = rng.normal(size=50)
        fields = [PointField(name=n, offset=o, datatype=7, count=1) for n, o in zip(dtype.names, [0, 4, 8, 16])]
        clouds.append((data, Cloud(header=make_header(100 + index, frame_id),
                                   height=1, width=50, fields=fields, is_bigendian=False, point_step=20,
                                   row_step=1000, data=np.frombuffer(data.tobytes(), np.uint8), is_dense=True)))
    tf_types = ("geometry_msgs/msg/TransformStamped", "geometry_msgs/msg/Transform",
                "geometry_msgs/msg/Vector3", "geometry_msgs/msg/Quaternion", "tf2_msgs/msg/TFMessage")
    if any(name not in types for name in tf_types):
        return clouds, None  # rosbags' ROS 1 store has no tf2_msgs
    Stamped, Transform, Vector3, Quaternion, TFMessage = (types[name] for name in tf_types)
    tf = TFMessage(transforms=[Stamped(header=make_header(99, "map"),
                                       child_frame_id=frame_id,
                                       transform=Transform(translation=Vector3(x=3.0, y=4.0, z=0.0),
                                                           rotation=Quaternion(x=0.0, y=0.0, z=0.0, w=1.0)))])
    return clouds, tf


def test_ros2_bag_replay(tmp_path) -> None:
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    clouds, tf = _bag_messages(store)
    bag = tmp_path / "run"
    with Writer(bag, version=9) as writer:
        tf_conn = writer.add_connection("/tf", "tf2_msgs/msg/TFMessage", typestore=store)
        cloud_conn = writer.add_connection("/points", "sensor_msgs/msg/PointCloud2", typestore=store)
        writer.write(tf_conn, 99 * 10**9, store.serialize_cdr(tf, "tf2_msgs/msg/TFMessage"))
        for index, (_, msg) in enumerate(clouds):
            writer.write(cloud_conn, (100 + index) * 10**9, store.serialize_cdr(msg, "sensor_msgs/msg/PointCloud2"))
    frames = list(BagSource(bag, "/points"))
    assert len(frames) == 2 and frames[0].frame_id == "velodyne"
    expected = clouds[1][0]
    np.testing.assert_array_equal(frames[1].frame.points[:, 3], expected["intensity"])
    np.testing.assert_allclose(frames[0].frame.lidar2global[:3, 3], [3.0, 4.0, 0.0])
    assert frames[1].frame.timestamp == pytest.approx(101.0)
    with pytest.raises(BridgeConfigError, match="no PointCloud2 on /lidar"):
        list(BagSource(bag, "/lidar"))


def test_ros1_bag_replay(tmp_path) -> None:
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS1_NOETIC)
    clouds, _ = _bag_messages(store)
    path = tmp_path / "run.bag"
    with Writer(path) as writer:
        conn = writer.add_connection("/velodyne_points", "sensor_msgs/msg/PointCloud2", typestore=store)
        for index, (_, msg) in enumerate(clouds):
            writer.write(conn, (100 + index) * 10**9, store.serialize_ros1(msg, "sensor_msgs/msg/PointCloud2"))
    frames = list(BagSource(path))
    assert len(frames) == 2
    np.testing.assert_array_equal(frames[0].frame.points[:, 0], clouds[0][0]["x"])


def test_missing_inputs_fail_clearly(tmp_path) -> None:
    with pytest.raises(BridgeConfigError, match="does not exist"):
        BagSource(tmp_path / "nope.bag")
    with pytest.raises(BridgeConfigError, match="make demo"):
        synthetic_source(tmp_path)


@pytest.mark.slow
def test_synthetic_source_reads_the_world(synthetic_root) -> None:
    source = synthetic_source(synthetic_root, split="val", sweeps=1, max_frames=2)
    frames = list(source)
    assert len(frames) == 2 and frames[0].frame.dataset
    assert "time_lag" in frames[0].frame.point_features and len(frames[0].frame.points) > 1000
    assert frames[1].frame.timestamp > frames[0].frame.timestamp


def test_av2_source_replays_a_log(synthetic_root) -> None:
    from perception.bridge.sources import av2_source

    infos = sorted((synthetic_root / "av2" / "sensor").glob("av2_infos_*.pkl"))
    if not infos:
        pytest.skip(f"no AV2 infos under {synthetic_root}/av2/sensor")
    frames = list(av2_source(infos[0], infos[0].parent, max_frames=2))
    assert len(frames) == 2 and frames[0].source == "av2"
    assert frames[0].frame.point_features[:3] == ("x", "y", "z") and len(frames[0].frame.points) > 1000


@pytest.mark.real_data
def test_nuscenes_source_reads_the_real_keyframe(nuscenes_keyframe_dir) -> None:
    from perception.bridge.sources import nuscenes_source
    from perception.structures import CAMERA_NAMES_NUSCENES

    flat = {key: "" for key in ("pts", "sweeps", *CAMERA_NAMES_NUSCENES)}  # files side by side
    info = next(nuscenes_keyframe_dir.glob("*.pkl"))
    frames = list(nuscenes_source(info, nuscenes_keyframe_dir, sweeps=0, data_prefix=flat))
    assert len(frames) == 1 and frames[0].frame.points.shape[1] == 5
