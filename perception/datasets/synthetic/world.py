"""The road network of a synthetic location: a four-way junction and two looping roads.

Layout (world frame, metres): two straight roads cross at the origin (arms ``E``, ``N``,
``W``, ``S`` run from the junction edge ``H`` out to ``L``); a 270-degree loop of radius
``L`` joins the ends of ``N`` and ``E`` (``NE``), another joins ``S`` and ``W`` (``SW``), so
every lane has successors and traffic circulates forever.  The four arms and the south-west
loop have a parking strip beyond a painted edge line on both sides; the north-east loop ends
at the kerb (the kerb steps in where the arms ``N`` and ``E`` meet it).  The map depends
only on the location, never on the scene seed (scenes of one location share one map).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import Point, Polygon, box
from shapely.ops import unary_union

from . import polyline as pl
from .types import Lane, ObjectState, RoadMap

ARM_ANGLES: dict[str, float] = {"E": 0.0, "N": np.pi / 2, "W": np.pi, "S": -np.pi / 2}
"""Direction of each junction arm, counter-clockwise order."""


@dataclass(frozen=True)
class LocationSpec:
    """Dimensions of one location's network."""

    arm_length: float = 55.0
    lane_width: float = 3.5
    lanes_per_direction: int = 2
    parking_width: float = 3.0
    sidewalk_width: float = 4.0
    kerb_radius: float = 4.0
    spacing: float = 0.5


LOCATIONS: dict[str, LocationSpec] = {
    "synth-town": LocationSpec(),
    "synth-village": LocationSpec(arm_length=45.0, lanes_per_direction=1, lane_width=3.75),
}
"""Known locations: name -> network dimensions."""


@dataclass
class Road:
    """A two-way road: reference line (the road divider) in its forward direction."""

    name: str
    reference: np.ndarray
    parking: bool
    half_width: float
    forward: str  # lane-id infix of forward lanes ("out" on arms, "fwd" on loops)
    backward: str


@dataclass
class Crossing:
    """A zebra crossing: polygon, the pedestrians' path across it, the arm it spans."""

    polygon: np.ndarray
    path: np.ndarray
    arm: str


@dataclass
class Town:
    """A location's road map plus what the traffic simulation needs to drive on it."""

    spec: LocationSpec
    road_map: RoadMap
    lanes: dict[str, Lane]
    roads: dict[str, Road]
    junction_half: float
    crossings: list[Crossing]
    stop_offsets: dict[str, tuple[str, float]]  # inbound lane id -> (arm, stop line station)
    sidewalk_lines: dict[str, np.ndarray]  # "<road>:<left|right>" -> walking line
    parking_lines: list[np.ndarray]  # centre lines of the parking strips
    drivable: Polygon | None = None
    statics: list[ObjectState] = field(default_factory=list)


def location_spec(location: str) -> LocationSpec:
    """The spec of ``location`` (ValueError naming the known ones if unknown)."""
    if location not in LOCATIONS:
        raise ValueError(f"unknown synthetic location {location!r}; known: {sorted(LOCATIONS)}")
    return LOCATIONS[location]


def _unit(angle: float) -> np.ndarray:
    return np.array([np.cos(angle), np.sin(angle)])


def _roads(spec: LocationSpec, junction_half: float) -> dict[str, Road]:
    """Arms (outward) and the two loops (``NE``: N end -> E end, ``SW``: S end -> W end)."""
    length, n, w = spec.arm_length, spec.lanes_per_direction, spec.lane_width
    parking = {"E": True, "N": True, "W": True, "S": True, "NE": False, "SW": True}
    references = {
        arm: pl.straight(junction_half * _unit(a), length * _unit(a), spec.spacing) for arm, a in ARM_ANGLES.items()
    }
    references["NE"] = pl.arc(np.array([length, length]), length, np.pi, -np.pi / 2, spec.spacing)
    references["SW"] = pl.arc(np.array([-length, -length]), length, 0.0, -1.5 * np.pi, spec.spacing)
    roads = {}
    for name, ref in references.items():
        half = n * w + (spec.parking_width if parking[name] else 0.0)
        fwd, bwd = ("out", "in") if name in ARM_ANGLES else ("fwd", "bwd")
        roads[name] = Road(name, ref, parking[name], half, fwd, bwd)
    return roads


def _road_lanes(road: Road, spec: LocationSpec) -> list[Lane]:
    """Lanes of both directions of one road; lane 0 is next to the divider."""
    n, w = spec.lanes_per_direction, spec.lane_width
    limit = 13.9 if road.name in ARM_ANGLES else min(13.9, float(np.sqrt(3.0 * (spec.arm_length - n * w))))
    lanes = []
    for infix, ref in ((road.forward, road.reference), (road.backward, road.reference[::-1].copy())):
        for i in range(n):
            outer = "solid" if road.parking else "road_edge"
            lanes.append(Lane(
                lane_id=f"{road.name}_{infix}_{i}",
                centerline=pl.offset(ref, -(i + 0.5) * w),
                left_boundary=pl.offset(ref, -i * w),
                right_boundary=pl.offset(ref, -(i + 1) * w),
                left_type="solid" if i == 0 else "dashed",
                right_type=outer if i == n - 1 else "dashed",
                width=w,
                speed_limit=limit,
            ))
    return lanes


def _junction_lanes(lanes: dict[str, Lane], spec: LocationSpec) -> list[Lane]:
    """Straight, left and right turn lanes through the junction, wired as successors."""
    n, arms = spec.lanes_per_direction, list(ARM_ANGLES)
    turns = []
    for k, arm in enumerate(arms):
        moves = {"straight": arms[(k + 2) % 4], "left": arms[(k + 3) % 4], "right": arms[(k + 1) % 4]}
        for i in range(n):
            source = lanes[f"{arm}_in_{i}"]
            for move, target_arm in moves.items():
                if (move == "left" and i != 0) or (move == "right" and i != n - 1):
                    continue
                target = lanes[f"{target_arm}_out_{i}"]
                start, end = source.centerline[-1], target.centerline[0]
                line = pl.bezier_turn(start, -_unit(ARM_ANGLES[arm]), end, _unit(ARM_ANGLES[target_arm]), spec.spacing)
                lane_id = f"J_{arm}{target_arm}_{i}"
                turns.append(Lane(
                    lane_id=lane_id, centerline=line,
                    left_boundary=pl.offset(line, spec.lane_width / 2),
                    right_boundary=pl.offset(line, -spec.lane_width / 2),
                    left_type="dashed", right_type="dashed", width=spec.lane_width,
                    successors=[target.lane_id], is_intersection=True,
                    speed_limit=min(11.0, float(np.sqrt(2.5 * pl.min_radius(line)))),
                ))
                source.successors.append(lane_id)
    return turns


def _wire_roads(lanes: dict[str, Lane], spec: LocationSpec) -> None:
    """Successors between arms and loops (arm out -> loop -> other arm in)."""
    ends = {"N": ("NE", "fwd"), "E": ("NE", "bwd"), "S": ("SW", "fwd"), "W": ("SW", "bwd")}
    back = {("NE", "fwd"): "E", ("NE", "bwd"): "N", ("SW", "fwd"): "W", ("SW", "bwd"): "S"}
    for i in range(spec.lanes_per_direction):
        for arm, (loop, infix) in ends.items():
            lanes[f"{arm}_out_{i}"].successors.append(f"{loop}_{infix}_{i}")
        for (loop, infix), arm in back.items():
            lanes[f"{loop}_{infix}_{i}"].successors.append(f"{arm}_in_{i}")


def _strip(ref: np.ndarray, near: float, far: float) -> Polygon:
    """Polygon between the offsets ``near`` and ``far`` (left positive) of a line."""
    return Polygon(np.concatenate([pl.offset(ref, near), pl.offset(ref, far)[::-1]]))


def _junction_polygon(roads: dict[str, Road], half: float) -> Polygon:
    """Arm stubs from the centre to the junction edge plus kerb fillets between arms."""
    parts, arms = [], list(ARM_ANGLES)
    for k, arm in enumerate(arms):
        u, v = _unit(ARM_ANGLES[arm]), _unit(ARM_ANGLES[arm] + np.pi / 2)
        hw = roads[arm].half_width
        parts.append(Polygon([-hw * v, half * u - hw * v, half * u + hw * v, hw * v]))
        other = arms[(k + 1) % 4]
        hw_other = roads[other].half_width
        corner = Polygon([hw_other * u + hw * v, half * u + hw * v, half * (u + v), hw_other * u + half * v])
        radius = min(half - hw, half - hw_other)
        parts.append(corner.difference(Point(*(half * (u + v))).buffer(radius, quad_segs=16)))
    return unary_union(parts)


def _painted(road: Road, spec: LocationSpec, junction_half: float) -> list[tuple[np.ndarray, str]]:
    """Road divider, dashed lane lines and (with parking) solid edge lines of one road."""
    ref = road.reference
    if road.name in ARM_ANGLES:  # paint starts behind the stop line
        ref = ref[pl.cumulative_length(ref) >= 5.5]
    lines = [(ref, "road_divider")]
    n, w = spec.lanes_per_direction, spec.lane_width
    for side in (-1.0, 1.0):
        lines += [(pl.offset(ref, side * (i + 1) * w), "lane_dashed") for i in range(n - 1)]
        if road.parking:
            lines.append((pl.offset(ref, side * n * w), "lane_solid"))
    return lines


def _rings(geometry: shapely.Geometry) -> list[np.ndarray]:
    """Exterior and interior rings of a (multi)polygon as open ``(K, 2)`` arrays."""
    rings = []
    for poly in getattr(geometry, "geoms", [geometry]):
        for ring in [poly.exterior, *poly.interiors]:
            rings.append(np.asarray(ring.coords)[:-1])
    return rings


def _split_without_holes(geometry: shapely.Geometry, cell: float) -> list[np.ndarray]:
    """Cut a region into hole-free polygons on a ``cell``-metre grid (walkways are rings)."""
    x0, y0, x1, y1 = geometry.bounds
    pieces = []
    for gx in np.arange(np.floor(x0 / cell) * cell, x1, cell):
        for gy in np.arange(np.floor(y0 / cell) * cell, y1, cell):
            part = geometry.intersection(box(gx, gy, gx + cell, gy + cell))
            for poly in getattr(part, "geoms", [part]):
                if isinstance(poly, Polygon) and poly.area > 1.0:
                    if poly.interiors:
                        pieces += _split_without_holes(poly, cell / 2)
                    else:
                        pieces.append(np.asarray(poly.exterior.coords)[:-1])
    return pieces


def build_town(location: str = "synth-town") -> Town:
    """The road network, map and static scenery of ``location`` (deterministic)."""
    from .scenery import place_statics  # local import: scenery needs Town

    spec = location_spec(location)
    n, w = spec.lanes_per_direction, spec.lane_width
    junction_half = n * w + spec.parking_width + spec.kerb_radius
    roads = _roads(spec, junction_half)
    lanes = {lane.lane_id: lane for road in roads.values() for lane in _road_lanes(road, spec)}
    _wire_roads(lanes, spec)
    for lane in _junction_lanes(lanes, spec):
        lanes[lane.lane_id] = lane

    junction = _junction_polygon(roads, junction_half)
    segments = [(np.asarray(junction.exterior.coords)[:-1], True)]
    road_polys = [_strip(road.reference, road.half_width, -road.half_width) for road in roads.values()]
    segments += [(np.asarray(p.exterior.coords)[:-1], False) for p in road_polys]
    drivable = unary_union([junction, *road_polys]).buffer(0.01).buffer(-0.01)

    crossings, stop_lines, stop_offsets = [], [], {}
    for arm, angle in ARM_ANGLES.items():
        u, v = _unit(angle), _unit(angle + np.pi / 2)
        hw, d0, d1 = roads[arm].half_width, junction_half + 0.5, junction_half + 4.5
        polygon = np.array([d0 * u - hw * v, d1 * u - hw * v, d1 * u + hw * v, d0 * u + hw * v])
        walk = hw + spec.sidewalk_width / 2
        path = pl.straight((d0 + 2.0) * u - walk * v, (d0 + 2.0) * u + walk * v, spec.spacing)
        crossings.append(Crossing(polygon, path, arm))
        stop = junction_half + 5.5
        stop_lines.append(np.array([stop * u, stop * u + n * w * v]))
        for i in range(n):
            lane = lanes[f"{arm}_in_{i}"]
            stop_offsets[lane.lane_id] = (arm, float(pl.cumulative_length(lane.centerline)[-1] - 5.5))

    sidewalk = drivable.buffer(spec.sidewalk_width).difference(drivable)
    sidewalk_lines, parking_lines = {}, []
    for road in roads.values():
        ref = road.reference
        if road.name in ARM_ANGLES:
            ref = ref[pl.cumulative_length(ref) >= 2.5]
        for side, sign in (("left", 1.0), ("right", -1.0)):
            sidewalk_lines[f"{road.name}:{side}"] = pl.offset(ref, sign * (road.half_width + spec.sidewalk_width / 2))
            if road.parking:
                parking_lines.append(pl.offset(ref, sign * (n * w + spec.parking_width / 2))[:: 1 if sign < 0 else -1])

    dividers = [item for road in roads.values() for item in _painted(road, spec, junction_half)]
    road_map = RoadMap(
        location=location,
        lanes=list(lanes.values()),
        road_segments=segments,
        dividers=dividers,
        boundaries=_rings(drivable),
        ped_crossings=[c.polygon for c in crossings],
        walkways=_split_without_holes(sidewalk, 40.0),
        stop_lines=stop_lines,
    )
    town = Town(spec, road_map, lanes, roads, junction_half, crossings, stop_offsets, sidewalk_lines,
                parking_lines, drivable)
    town.statics = place_statics(town, location)
    corners = [obj.center[:2] + np.hypot(*obj.size[:2]) / 2 * np.array(sign) for obj in town.statics
               for sign in ((-1.0, -1.0), (1.0, 1.0))]
    extent = np.array(corners + [np.array(sidewalk.bounds[:2]), np.array(sidewalk.bounds[2:])])
    road_map.bounds = (float(extent[:, 0].min()) - 5.0, float(extent[:, 1].min()) - 5.0,
                       float(extent[:, 0].max()) + 5.0, float(extent[:, 1].max()) + 5.0)
    return town

