"""Live bridge between the perception stack and ROS / Foxglove (no PyTorch in the ROS install).

Sources (live rosbridge, ROS bag replay, dataset replay at sensor rate) push frames into a
drop-oldest queue; :class:`BridgeNode` runs a :class:`Stack` (detector -> tracker -> map ->
planner) on a worker thread and hands each result to sinks: :class:`RosbridgePublisher`
(MarkerArray, Path, DiagnosticArray over rosbridge v2) and :class:`FoxgloveSink` (Foxglove
WebSocket server + MCAP recording).  Entry point: ``demo/ros_bridge.py`` (:mod:`perception.bridge.app`).
"""
from .errors import BridgeConfigError, BridgeMessageError
from .node import BridgeNode, NodeStats
from .planner_stage import build_planner, path_in_lidar_frame
from .pointcloud2 import decode_pointcloud2, encode_pointcloud2
from .queues import DropOldestQueue
from .results import BridgeFrame, MapPolyline, StackOutput
from .stack import DetectorStack, Stack, StageTimer
from .tracking_stage import BridgeTracker

__all__ = ["BridgeConfigError", "BridgeMessageError", "BridgeNode", "NodeStats", "decode_pointcloud2",
           "encode_pointcloud2", "DropOldestQueue", "BridgeFrame", "MapPolyline", "StackOutput",
           "DetectorStack", "Stack", "StageTimer", "BridgeTracker", "build_planner", "path_in_lidar_frame"]
