"""Frame sources for the bridge: dataset replay (synthetic, nuScenes, AV2) and ROS bag replay.

A source yields :class:`~perception.bridge.results.BridgeFrame` objects; :func:`paced` replays
them at sensor rate (their own timestamps, scaled by ``speed``).  The live rosbridge source is
:class:`perception.bridge.rosbridge_client.RosbridgeSource`.
"""
from .bag import BagSource
from .base import Source, paced
from .dataset import DatasetSource, av2_source, nuscenes_source, synthetic_source

__all__ = ["BagSource", "Source", "paced", "DatasetSource", "av2_source", "nuscenes_source", "synthetic_source"]
