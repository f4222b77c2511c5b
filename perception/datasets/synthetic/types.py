"""The in-memory form of a generated scene: what the simulator produces and the writers write.

The simulator (``world``, ``agents``, ``lidar``, ``camera``) fills these structures; the
writers (``writers/nuscenes``, ``writers/av2``, ``writers/motion``) turn them into real
dataset layouts.  Everything is in the world frame unless a field says otherwise, with the
conventions of :mod:`perception.structures.conventions`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

LIDAR_RATE_HZ = 20.0
"""A LiDAR sweep every simulator tick (nuScenes: 20 Hz)."""
KEYFRAME_EVERY = 10
"""Annotated keyframes at 2 Hz (every 10th tick), as in nuScenes."""


@dataclass
class Lane:
    """One driving lane: centerline ``(K, 2)`` in travel direction, boundaries left/right.

    ``left_type`` / ``right_type`` are ``"dashed"``, ``"solid"`` or ``"road_edge"``;
    ``successors`` are lane ids reachable at the lane's end (turns at intersections).
    """

    lane_id: str
    centerline: np.ndarray
    left_boundary: np.ndarray
    right_boundary: np.ndarray
    left_type: str
    right_type: str
    width: float
    successors: list[str] = field(default_factory=list)
    is_intersection: bool = False
    speed_limit: float = 13.9


@dataclass
class RoadMap:
    """The static road network of one location.

    ``road_segments`` are drivable polygons (``is_intersection`` marks the junction ones);
    ``dividers`` are painted lines ``(K, 2)`` with a kind (``"lane_dashed"``,
    ``"lane_solid"``, ``"road_divider"``); ``boundaries`` are road edges; crossings and
    walkways are polygons.  ``stop_lines`` are short polylines before crossings.
    """

    location: str
    lanes: list[Lane]
    road_segments: list[tuple[np.ndarray, bool]]
    dividers: list[tuple[np.ndarray, str]]
    boundaries: list[np.ndarray]
    ped_crossings: list[np.ndarray]
    walkways: list[np.ndarray]
    stop_lines: list[np.ndarray] = field(default_factory=list)
    bounds: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # x_min, y_min, x_max, y_max


@dataclass
class ObjectState:
    """One object at one tick: world-frame gravity centre, ``(l, w, h)``, yaw, velocity.

    ``category`` is the full nuScenes category name (``"vehicle.car"``,
    ``"human.pedestrian.adult"``, ``"movable_object.trafficcone"`` ...); ``attribute`` a
    nuScenes attribute name (``"vehicle.moving"``, ``"pedestrian.standing"``, ...) or ``""``.
    """

    track_id: str
    category: str
    center: np.ndarray
    size: np.ndarray
    yaw: float
    velocity: np.ndarray
    attribute: str = ""


@dataclass
class CameraRig:
    """Calibration of one camera: intrinsics ``cam2img`` (3x3), extrinsic ``cam2ego`` (4x4)."""

    name: str
    cam2img: np.ndarray
    cam2ego: np.ndarray
    width: int
    height: int


@dataclass
class Tick:
    """One simulator step at ``timestamp`` seconds.

    ``points`` is the LiDAR sweep ``(N, 5)`` float32 (x, y, z, intensity, ring) in the
    LiDAR frame; ``images`` maps camera name to ``(H, W, 3)`` uint8 RGB and is filled on
    keyframes only; ``objects`` are all objects (static ones included) in the world frame.
    """

    timestamp: float
    ego2global: np.ndarray
    objects: list[ObjectState]
    points: np.ndarray
    is_keyframe: bool
    images: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class EgoRoute:
    """The ego's path through the town: its approach arm, the lanes it drives and where it
    starts in the first one (metres).  A revisit of a drive passes the same ``EgoRoute`` to the
    simulator, so the ego drives the same streets among other traffic."""

    arm: str
    lanes: tuple[str, ...]
    start: float


@dataclass
class SyntheticScene:
    """A generated log: a location's road map, the sensor rig and a sequence of ticks.

    ``ticks`` are the sensor ticks (20 Hz, LiDAR every tick, images on keyframes).
    ``trajectory_ticks`` is the whole simulation at 10 Hz without sensor data (``points``
    empty ``(0, 5)``): it starts before and may end after the sensor window, so motion
    prediction gets at least 2 s of history and 6 s of future around the sensor frames.
    """

    name: str
    location: str
    road_map: RoadMap
    lidar2ego: np.ndarray
    cameras: list[CameraRig]
    ticks: list[Tick]
    trajectory_ticks: list[Tick] = field(default_factory=list)
    ego_size: tuple[float, float, float] = (4.08, 1.73, 1.56)
    ego_route: EgoRoute | None = None
