"""Argoverse 2 sensor dataset: info conversion (:mod:`.create_infos`) and :class:`AV2SensorDataset`.

Inside this package ``av2`` still names the installed av2 library: every module uses
absolute imports (``from av2.structures.cuboid import CuboidList``), which resolve to the
top-level ``av2`` package, never to ``perception.datasets.av2``.
"""
from .categories import AV2_CLASSES, AV2_TO_NUSCENES
from .dataset import AV2SensorDataset

__all__ = ["AV2_CLASSES", "AV2_TO_NUSCENES", "AV2SensorDataset"]
