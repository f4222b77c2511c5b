"""Routes: the paths agents follow, with the events (stop lines, crossings) along them."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely

from . import polyline as pl
from .world import Town


@dataclass
class Route:
    """A path ``(K, 2)`` with arc length ``cum``, per-vertex speed limit and events.

    ``stops`` are ``(station, arm, junction_exit_station)`` of stop lines; ``crossings``
    ``(start, end, crossing_index)`` stations where the path runs over a zebra crossing.
    """

    line: np.ndarray
    cum: np.ndarray
    limits: np.ndarray
    lane_ids: list[str] = field(default_factory=list)
    stops: list[tuple[float, str, float]] = field(default_factory=list)
    crossings: list[tuple[float, float, int]] = field(default_factory=list)


def predecessors(town: Town) -> dict[str, list[str]]:
    """Lane id -> ids of the lanes leading into it."""
    out: dict[str, list[str]] = {lane_id: [] for lane_id in town.lanes}
    for lane in town.lanes.values():
        for succ in lane.successors:
            out[succ].append(lane.lane_id)
    return out


def lane_route(town: Town, lane_ids: list[str], start: float, min_length: float,
               rng: np.random.Generator) -> Route:
    """Route starting ``start`` metres into ``lane_ids[0]`` through the given lanes, extended
    with random successors until it is at least ``min_length`` metres long."""
    lane_ids = list(lane_ids)
    total = sum(pl.cumulative_length(town.lanes[i].centerline)[-1] for i in lane_ids) - start
    while total < min_length:
        successors = town.lanes[lane_ids[-1]].successors
        if not successors:
            raise ValueError(f"lane {lane_ids[-1]} of {town.road_map.location} has no successor")
        nxt = successors[int(rng.integers(len(successors)))]
        lane_ids.append(nxt)
        total += pl.cumulative_length(town.lanes[nxt].centerline)[-1]
    pieces, limits, offsets = [], [], []
    length = 0.0
    for k, lane_id in enumerate(lane_ids):
        lane = town.lanes[lane_id]
        line = lane.centerline if k == 0 else lane.centerline[1:]
        pieces.append(line)
        limits.append(np.full(len(line), lane.speed_limit))
        offsets.append(length)
        length += pl.cumulative_length(lane.centerline)[-1]
    line = np.concatenate(pieces)
    cum = pl.cumulative_length(line) - start
    route = Route(line, cum, np.concatenate(limits), lane_ids)
    for k, lane_id in enumerate(lane_ids):
        if lane_id in town.stop_offsets and k + 2 < len(lane_ids):
            arm, station = town.stop_offsets[lane_id]
            route.stops.append((offsets[k] + station - start, arm, offsets[k + 2] - start))
    route.crossings = crossing_intervals(town, line, cum)
    return route


def crossing_intervals(town: Town, line: np.ndarray, cum: np.ndarray) -> list[tuple[float, float, int]]:
    """``(start, end, index)`` stations of each run of the path over a crossing, in order."""
    dense = pl.resample(line, 0.25)
    dense_cum = pl.cumulative_length(dense) + cum[0]
    out = []
    for index, crossing in enumerate(town.crossings):
        inside = shapely.contains_xy(shapely.Polygon(crossing.polygon), dense[:, 0], dense[:, 1])
        edges = np.flatnonzero(np.diff(np.concatenate([[0], inside.astype(int), [0]])))
        for a, b in zip(edges[::2], edges[1::2]):
            out.append((float(dense_cum[a]), float(dense_cum[b - 1]), index))
    return sorted(out)


def walk_route(line: np.ndarray, lateral: float) -> Route:
    """A pedestrian path: ``line`` shifted ``lateral`` metres to its left, corners rounded
    (moving average over ~4 m) so walking speed and heading change smoothly."""
    dense = pl.offset(pl.resample(line, 0.5), lateral)
    if len(dense) > 9:
        padded = np.concatenate([np.repeat(dense[:1], 4, 0), dense, np.repeat(dense[-1:], 4, 0)])
        dense = np.stack([np.convolve(padded[:, k], np.ones(9) / 9, mode="valid") for k in range(2)], axis=1)
    shifted = pl.resample(dense, 0.25)
    return Route(shifted, pl.cumulative_length(shifted), np.full(len(shifted), 2.0))
