"""Kerbside objects of a scene: road works, cycle parking, a bus stop, parked trucks, trailers
and cars in the parking strips.

The rarer detection classes are laid out as *groups* (road works: a construction vehicle
between barriers, with cones at both ends so one end is never hidden behind the vehicle;
cycle parking: a motorcycle and two bicycles; a bus at its stop; a parked truck; a parked
trailer) on the straight parking strips of the junction arms, near
the ego's keyframe positions, so that every scene's annotated keyframes hold objects of all
ten nuScenes detection classes within the devkit's class ranges.  Groups whose members must
be seen from nearer (cones and barriers: 30 m, cycles: 40 m) are placed first and closest.
Parked cars then fill the remaining slots of every strip.  Nothing is placed in a lane or on
a sidewalk, so no moving agent ever meets a kerbside object.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from shapely.geometry import Polygon

from . import polyline as pl
from .catalog import jittered_size
from .scenery import footprint, random_intervals, static_object
from .types import ObjectState

if TYPE_CHECKING:
    from .world import Town

KERB_START = 8.0
"""Groups start this far beyond the junction edge (just past the zebra crossing)."""
CAR_START = 14.0
"""Parked cars start this far beyond the junction edge (corners kept clear)."""
CHOICE_SLACK = 4.0
"""A group goes to a random free place at most this many metres worse than the best one."""
GRID = 0.5


@dataclass(frozen=True)
class Member:
    """One object of a group: its kind, the free space before it, yaw relative to the strip."""

    kind: str
    gap: float
    attribute: str = ""
    turn: float = 0.0


@dataclass(frozen=True)
class Group:
    """Objects laid along a parking strip one after the other."""

    name: str
    members: tuple[Member, ...]


PARKED, NO_RIDER, STOPPED = "vehicle.parked", "cycle.without_rider", "vehicle.stopped"
GROUPS: tuple[Group, ...] = (
    Group("works", (Member("cone", 0.0), Member("cone", 1.1), Member("barrier", 1.0, turn=np.pi / 2),
                    Member("barrier", 0.1, turn=np.pi / 2), Member("construction", 1.0, PARKED),
                    Member("barrier", 1.0, turn=np.pi / 2), Member("cone", 1.0), Member("cone", 1.1))),
    Group("cycles", (Member("motorcycle", 0.0, NO_RIDER), Member("bicycle", 0.8, NO_RIDER),
                     Member("bicycle", 0.6, NO_RIDER))),
    Group("bus_stop", (Member("bus", 0.0, STOPPED),)),
    Group("truck", (Member("truck", 0.0, PARKED),)),
    Group("trailer", (Member("trailer", 0.0, PARKED),)),
)
"""Kerbside groups in placement order (smallest evaluation range first)."""
GROUP_MARGIN = 1.5
"""Free space kept before and after every group."""


@dataclass
class Strip:
    """One straight parking strip: its line, arc length, usable station range, reservations."""

    line: np.ndarray
    cum: np.ndarray
    low: float
    high: float
    taken: list[tuple[float, float]]

    def free(self, start: float, end: float) -> bool:
        """Whether ``[start, end]`` lies in the usable range and clear of reservations."""
        return start >= self.low and end <= self.high and all(end <= a or start >= b for a, b in self.taken)


def _strips(town: "Town") -> list[Strip]:
    """The straight (junction arm) parking strips, usable from ``KERB_START`` past the junction."""
    out = []
    for line in town.parking_lines:
        if pl.min_radius(line) < 1e3:
            continue
        cum = pl.cumulative_length(line)
        usable = np.flatnonzero(np.linalg.norm(line, axis=1) >= town.junction_half + KERB_START)
        out.append(Strip(line, cum, float(cum[usable.min()]), float(cum[usable.max()]) - 0.5, []))
    return out


def _layout(group: Group, rng: np.random.Generator) -> tuple[list[np.ndarray], list[float], float]:
    """Sizes and centre offsets of a group's members along the strip; the group's length."""
    sizes, centres, s = [], [], 0.0
    for member in group.members:
        size = jittered_size(member.kind, rng)
        along = size[1] if member.turn else size[0]
        s += member.gap
        sizes.append(size)
        centres.append(s + along / 2)
        s += along
    return sizes, centres, s


def _best_place(strips: list[Strip], length: float, focus: np.ndarray, rng: np.random.Generator
                ) -> tuple[int, float] | None:
    """A free ``(strip, start)`` for ``length`` metres whose centre is near ``focus`` (the
    ego's keyframe positions): random among the places within ``CHOICE_SLACK`` of the best."""
    candidates, costs = [], []
    for k, strip in enumerate(strips):
        starts = np.arange(strip.low + GROUP_MARGIN, strip.high - length - GROUP_MARGIN, GRID)
        if len(starts) == 0:
            continue
        centres, _ = pl.sample_at(strip.line, strip.cum, starts + length / 2)
        cost = np.linalg.norm(centres[:, None, :] - focus[None], axis=-1).min(axis=1)
        for start, value in zip(starts, cost):
            if strip.free(start - GROUP_MARGIN, start + length + GROUP_MARGIN):
                candidates.append((k, float(start)))
                costs.append(float(value))
    if not candidates:
        return None
    costs = np.asarray(costs)
    near = np.flatnonzero(costs <= costs.min() + CHOICE_SLACK)
    return candidates[int(near[int(rng.integers(len(near)))])]


def _place_groups(town: "Town", focus: np.ndarray, rng: np.random.Generator, key: tuple
                  ) -> tuple[list[ObjectState], list[Polygon]]:
    """The kerbside groups near ``focus``; their objects and reserved footprints."""
    strips = _strips(town)
    objects: list[ObjectState] = []
    reserved: list[Polygon] = []
    for group in GROUPS:
        sizes, centres, length = _layout(group, rng)
        place = _best_place(strips, length, focus, rng)
        if place is None:
            continue
        k, start = place
        strip = strips[k]
        strip.taken.append((start - GROUP_MARGIN, start + length + GROUP_MARGIN))
        points, headings = pl.sample_at(strip.line, strip.cum, start + np.asarray(centres))
        for j, (member, size, xy, heading) in enumerate(zip(group.members, sizes, points, headings)):
            objects.append(static_object(member.kind, (*key, "kerb", group.name, j), xy, size,
                                         heading + member.turn, member.attribute))
        bounds = np.array([start - GROUP_MARGIN, start + length + GROUP_MARGIN])
        ends, heading = pl.sample_at(strip.line, strip.cum, bounds)
        middle = ends.mean(axis=0)
        reserved.append(footprint(middle, np.array([length + 2 * GROUP_MARGIN, 2.6, 1.0]), heading[0]))
    return objects, reserved


def place_kerbside(town: "Town", rng: np.random.Generator, key: tuple, focus: np.ndarray) -> list[ObjectState]:
    """All kerbside objects of a scene: the groups near ``focus`` (``(K, 2)`` world points,
    the ego at its keyframes), then parked cars in about half of the remaining slots."""
    focus = np.asarray(focus, dtype=float).reshape(-1, 2)
    if len(focus) == 0:
        raise ValueError("place_kerbside: focus must hold at least one ego position")
    objects, occupied = _place_groups(town, focus, rng, key)
    for index, line in enumerate(town.parking_lines):
        cum = pl.cumulative_length(line)
        for start, length in random_intervals(rng, cum[-1], (1.0, 12.0), (5.5, 5.5)):
            station = start + length / 2
            xy, heading = (a[0] for a in pl.sample_at(line, cum, np.array([station])))
            if np.linalg.norm(xy) <= town.junction_half + CAR_START or rng.uniform() >= 0.55:
                continue
            size = jittered_size("car", rng)
            shape = footprint(xy, size, heading)
            if any(shape.distance(p) < 0.8 for p in occupied):
                continue
            occupied.append(shape)
            objects.append(static_object("car", (*key, "parked", index, round(station, 2)), xy, size, heading,
                                         PARKED))
    return objects
