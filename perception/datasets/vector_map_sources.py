"""Map elements straight from the synthetic world's :class:`RoadMap`, for vector-map ground truth.

The synthetic datasets on disk already load their maps through the nuScenes and AV2 loaders;
this adapter serves code that holds the generated world in memory (tests, the simulator):
painted lines of every kind become ``divider``, crossings ``ped_crossing`` polygons, road
segments ``drivable_area`` polygons (whose union outlines the ``boundary``), and the world's
own road edges ``boundary`` polylines (used with ``boundary_source="lines"``).
"""
from __future__ import annotations

import numpy as np

from ..structures import MapElement
from .synthetic.types import RoadMap


def _open_ring(polygon: np.ndarray) -> np.ndarray:
    """``(K, 2)`` ring without a repeated closing vertex."""
    ring = np.asarray(polygon, dtype=np.float64)[:, :2]
    return ring[:-1] if len(ring) > 3 and np.allclose(ring[0], ring[-1]) else ring


def road_map_elements(road_map: RoadMap) -> list[MapElement]:
    """World-frame :class:`MapElement` list of a synthetic road map."""
    location = road_map.location
    elements = [MapElement("divider", np.asarray(line)[:, :2], False, f"{location}/divider/{i}", {"kind": kind})
                for i, (line, kind) in enumerate(road_map.dividers)]
    elements += [MapElement("ped_crossing", _open_ring(p), True, f"{location}/ped_crossing/{i}")
                 for i, p in enumerate(road_map.ped_crossings)]
    elements += [MapElement("drivable_area", _open_ring(p), True, f"{location}/road_segment/{i}")
                 for i, (p, _) in enumerate(road_map.road_segments)]
    elements += [MapElement("boundary", np.asarray(line)[:, :2], False, f"{location}/boundary/{i}")
                 for i, line in enumerate(road_map.boundaries)]
    return elements
