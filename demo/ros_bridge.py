"""Live perception next to ROS or Foxglove, without PyTorch in the ROS install.

    python demo/ros_bridge.py --source synthetic --foxglove          # Foxglove Studio: ws://127.0.0.1:8765
    python demo/ros_bridge.py --source rosbridge --rosbridge localhost:9090 --pointcloud-topic /lidar/points
    python demo/ros_bridge.py --source bag --bag run.mcap --foxglove --mcap out.mcap
    python demo/ros_bridge.py --source synthetic --rosbridge localhost:9090 --publish-points

Runs the tiny CenterPoint trained by `make demo` (configs/centerpoint/centerpoint_tiny_synthetic_demo.py)
on every frame and publishes boxes with track ids, map polylines and per-stage latency
(visualization_msgs/MarkerArray, nav_msgs/Path, diagnostic_msgs/DiagnosticArray over rosbridge;
the same scene over the Foxglove WebSocket protocol; optionally recorded to MCAP).
Servers bind to 127.0.0.1 unless --bind says otherwise.  Ctrl-C stops cleanly.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
REPO_ROOT = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    from perception.bridge.app import main

    sys.exit(main(repo_root=REPO_ROOT, description=__doc__))
