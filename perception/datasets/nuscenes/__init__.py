"""nuScenes: info creation with the devkit, the info reader dataset and map elements."""
from .dataset import NuScenesDataset

__all__ = ["NuScenesDataset"]
