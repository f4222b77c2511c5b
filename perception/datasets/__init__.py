"""Datasets: one sub-package per source, all producing :class:`perception.structures.Frame`.

Importing this package registers every dataset class in ``perception.registry.DATASETS``.
"""
from .av2 import AV2SensorDataset
from .nuscenes import NuScenesDataset

__all__ = ["AV2SensorDataset", "NuScenesDataset"]
