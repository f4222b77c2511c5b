"""Argoverse 2 sensor-dataset categories and their mapping to the nuScenes classes.

AV2 frames keep AV2's own category names as ``class_names`` (the AV2 detection evaluation
scores its 26 competition categories, :class:`av2.evaluation.SensorCompetitionCategories`);
:data:`AV2_TO_NUSCENES` maps them onto the ten nuScenes classes for cross-dataset training.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Mapping, Sequence

import numpy as np

from av2.datasets.sensor.constants import AnnotationCategories
from av2.evaluation import SensorCompetitionCategories

from perception.structures import NUSCENES_CLASSES

AV2_ALL_CATEGORIES: tuple[str, ...] = tuple(c.value for c in AnnotationCategories)
"""Every category that appears in AV2 sensor annotations (30)."""

AV2_CLASSES: tuple[str, ...] = tuple(c.value for c in SensorCompetitionCategories)
"""The 26 categories AV2's detection evaluation scores, in av2's order: the label order."""

AV2_TO_NUSCENES: Mapping[str, str | None] = MappingProxyType({
    "REGULAR_VEHICLE": "car",
    "LARGE_VEHICLE": "truck",
    "BOX_TRUCK": "truck",
    "TRUCK": "truck",
    "TRUCK_CAB": "truck",
    "VEHICULAR_TRAILER": "trailer",
    "MESSAGE_BOARD_TRAILER": "trailer",
    "TRAFFIC_LIGHT_TRAILER": "trailer",
    "BUS": "bus",
    "ARTICULATED_BUS": "bus",
    "SCHOOL_BUS": "bus",
    "BICYCLE": "bicycle",
    "MOTORCYCLE": "motorcycle",
    "PEDESTRIAN": "pedestrian",
    "OFFICIAL_SIGNALER": "pedestrian",  # nuScenes police officers are pedestrians
    "CONSTRUCTION_CONE": "traffic_cone",
    "CONSTRUCTION_BARREL": "traffic_cone",
    # nuScenes boxes a rider together with the bicycle/motorcycle; AV2 boxes the rider
    # separately, so riders are ignored rather than turned into extra pedestrians.
    "BICYCLIST": None,
    "MOTORCYCLIST": None,
    "WHEELED_RIDER": None,
    "WHEELED_DEVICE": None,
    "WHEELCHAIR": None,  # nuScenes wheelchairs/strollers are not among the 10 classes
    "STROLLER": None,
    "BOLLARD": None,  # fixed posts, not nuScenes' temporary barriers
    "SIGN": None,
    "STOP_SIGN": None,
    "MOBILE_PEDESTRIAN_CROSSING_SIGN": None,
    "DOG": None,
    "ANIMAL": None,
    "RAILED_VEHICLE": None,
})
"""AV2 category -> nuScenes class, ``None`` where the box is dropped (no nuScenes class)."""

CLASS_MAPPINGS: Mapping[str, tuple[tuple[str, ...], Mapping[str, str | None]]] = MappingProxyType({
    "av2": (AV2_CLASSES, MappingProxyType({name: name for name in AV2_CLASSES})),
    "nuscenes": (NUSCENES_CLASSES, AV2_TO_NUSCENES),
})
"""Vocabulary name -> (class names, AV2 category -> class name or None)."""


def class_mapping(name: str) -> tuple[tuple[str, ...], Mapping[str, str | None]]:
    """The class names and category mapping of vocabulary ``name`` (``av2`` or ``nuscenes``)."""
    if name not in CLASS_MAPPINGS:
        raise ValueError(f"unknown AV2 class mapping {name!r}; choose from {sorted(CLASS_MAPPINGS)}")
    return CLASS_MAPPINGS[name]


def labels_for(categories: Sequence[str], name: str = "av2") -> tuple[np.ndarray, np.ndarray]:
    """``(keep, labels)``: indices of the boxes whose category has a class under vocabulary
    ``name``, and those boxes' class indices; an unknown category raises ``ValueError``."""
    classes, mapping = class_mapping(name)
    index = {c: i for i, c in enumerate(classes)}
    keep, labels = [], []
    for i, category in enumerate(categories):
        if category not in AV2_ALL_CATEGORIES:
            raise ValueError(f"unknown AV2 category {category!r}")
        target = mapping.get(category)
        if target is not None:
            keep.append(i)
            labels.append(index[target])
    return np.asarray(keep, dtype=np.int64), np.asarray(labels, dtype=np.int64)
