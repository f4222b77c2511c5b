"""Live perception next to ROS or Foxglove, without PyTorch in the ROS install.

    python demo/ros_bridge.py --source synthetic --foxglove          # Foxglove Studio: ws://127.0.0.1:8765
    python demo/ros_bridge.py --source rosbridge --rosbridge localhost:9090 --pointcloud-topic /lidar/points
    python demo/ros_bridge.py --source bag --bag run.mcap --foxglove --mcap out.mcap
    python demo/ros_bridge.py --source synthetic --rosbridge localhost:9090 --publish-points
    python demo/ros_bridge.py --source synthetic --foxglove --planner str --str-checkpoint STR.pth

Runs the tiny CenterPoint trained by `make demo` (configs/centerpoint/centerpoint_tiny_synthetic_demo.py)
on every frame, tracks its boxes with the planning layer's tracker (Hungarian association,
constant-velocity model; ids stay with the objects across frames) and plans the ego path from the
track histories and the ego poses seen so far (--planner cv: constant velocity, the default;
--planner str: the STR model, needs --str-checkpoint; --planner none: no path).  Publishes boxes
with track ids, map polylines, the planned path and per-stage latency (adapt, detector, tracker,
map, planner, publish) as visualization_msgs/MarkerArray, nav_msgs/Path and
diagnostic_msgs/DiagnosticArray over rosbridge; the same scene over the Foxglove WebSocket protocol
(/perception/path channel for the path); optionally recorded to MCAP.  Boxes, map and path are in
the LiDAR frame of the cloud (its frame_id), which the world -> sensor transform places in the world.
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
