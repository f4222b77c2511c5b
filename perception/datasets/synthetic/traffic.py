"""Traffic simulation: vehicles follow their routes with IDM car-following, obey the traffic
lights and yield to pedestrians on crossings; pedestrians walk their paths and wait at the
kerb until a crossing is clear.

Vehicles are kinematic path followers (unicycle constrained to the lane centreline: yaw is
the path tangent); all vehicles are stepped together with NumPy each tick.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import polyline as pl
from .routes import Route

LOOKAHEAD_STEP = 1.5
LOOKAHEAD_COUNT = 40
PATH_TOLERANCE = 1.4
WALK_ACCEL = 1.5
MIN_GAP, HEADWAY, COMFORT_DECEL, MAX_DECEL = 2.0, 1.2, 2.5, 9.0


@dataclass
class Mover:
    """One moving agent: its route (station 0 = start), size and dynamics."""

    track_id: str
    category: str
    size: np.ndarray
    route: Route
    speed: float  # desired speed, m/s
    accel: float
    initial_speed: float


@dataclass
class LightSchedule:
    """Green intervals ``(arm, start, end)`` in simulation seconds; one arm green at a time."""

    phases: list[tuple[str, float, float]]

    def green_until(self, arm: str, time: float) -> float | None:
        """End of the green interval of ``arm`` containing ``time`` (None if red)."""
        for phase_arm, start, end in self.phases:
            if phase_arm == arm and start <= time < end:
                return end
        return None


class PathBank:
    """The routes of many agents concatenated so poses at stations are one ``np.interp``."""

    def __init__(self, routes: list[Route]) -> None:
        self.offsets = np.zeros(len(routes))
        xs, ys, ss, lims = [], [], [], []
        base = 0.0
        for i, route in enumerate(routes):
            self.offsets[i] = base - route.cum[0]
            xs.append(route.line[:, 0])
            ys.append(route.line[:, 1])
            ss.append(route.cum - route.cum[0] + base)
            lims.append(route.limits)
            base += route.cum[-1] - route.cum[0] + 1000.0
        self.x, self.y, self.s, self.limit = (np.concatenate(a) for a in (xs, ys, ss, lims))
        self.ends = np.array([r.cum[-1] for r in routes])
        # vertex tangents, unwrapped per route, so headings interpolate continuously
        self.heading = np.concatenate([np.unwrap(np.arctan2(*pl.tangents(r.line).T[::-1])) for r in routes])

    def pose(self, stations: np.ndarray, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Positions ``(..., 2)`` and headings of agents at ``stations`` (shape ``(N, ...)``)."""
        rows = np.arange(len(stations)) if rows is None else rows
        shape = stations.shape
        flat = (stations.reshape(len(rows), -1) + self.offsets[rows, None]).ravel()
        xy = np.stack([np.interp(flat, self.s, self.x), np.interp(flat, self.s, self.y)], axis=1)
        heading = _wrap(np.interp(flat, self.s, self.heading))
        return xy.reshape(*shape, 2), heading.reshape(shape)

    def limits(self, stations: np.ndarray) -> np.ndarray:
        """Speed limits at ``stations`` ``(N, K)``."""
        return np.interp(stations + self.offsets[:, None], self.s, self.limit)


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2 * np.pi) - np.pi


def _idm(v: np.ndarray, v0: np.ndarray, gap: np.ndarray, dv: np.ndarray, accel: np.ndarray) -> np.ndarray:
    """Intelligent-driver-model acceleration (``dv`` = own speed minus leader speed)."""
    desired = MIN_GAP + np.maximum(0.0, v * HEADWAY + v * dv / (2 * np.sqrt(accel * COMFORT_DECEL)))
    ratio = np.where(np.isfinite(gap), desired / np.maximum(gap, 0.1), 0.0)
    return accel * (1 - (v / np.maximum(v0, 0.1)) ** 4 - ratio**2)


class TrafficSim:
    """Steps vehicles and pedestrians together on a fixed time step."""

    def __init__(self, vehicles: list[Mover], walkers: list[Mover], lights: LightSchedule,
                 crossing_count: int, dt: float) -> None:
        self.vehicles, self.walkers, self.lights, self.dt = vehicles, walkers, lights, dt
        self.vbank = PathBank([m.route for m in vehicles])
        self.wbank = PathBank([m.route for m in walkers]) if walkers else None
        self.length = np.array([m.size[0] for m in vehicles])
        self.width = np.array([m.size[1] for m in vehicles])
        self.accel = np.array([m.accel for m in vehicles])
        self.desired = np.array([m.speed for m in vehicles])
        self.claims: list[set[int]] = [set() for _ in range(crossing_count)]

    def run(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Vehicle and walker positions ``(T, N, 2)`` and yaws ``(T, N)`` at ``times``."""
        s = np.zeros(len(self.vehicles))
        v = np.array([m.initial_speed for m in self.vehicles])
        ws = np.zeros(len(self.walkers))
        wv = np.array([m.initial_speed for m in self.walkers])
        vpos, vyaw, wpos, wyaw = [], [], [], []
        for time in times:
            pos, yaw = self.vbank.pose(s)
            vpos.append(pos)
            vyaw.append(yaw)
            if self.walkers:
                wp, wy = self.wbank.pose(ws)
                wpos.append(wp)
                wyaw.append(wy)
                ws, wv = self._walk(ws, wv, s, v)
            s, v = self._drive(time, s, v, pos, yaw)
        empty = np.zeros((len(times), 0, 2)), np.zeros((len(times), 0))
        walkers = (np.array(wpos), np.array(wyaw)) if self.walkers else empty
        return np.array(vpos), np.array(vyaw), *walkers

    def _crossing_blocked(self, index: int, s: np.ndarray, v: np.ndarray) -> bool:
        """Is any vehicle on crossing ``index`` or about to reach it?"""
        for i, mover in enumerate(self.vehicles):
            front = s[i] + self.length[i] / 2
            for start, end, c in mover.route.crossings:
                if c == index and -(end - start + self.length[i] + 1.0) < start - front < 3.0 * v[i] + 2.5:
                    return True
        return False

    def _walk(self, ws: np.ndarray, wv: np.ndarray, s: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Advance pedestrians (speed changes at most ``WALK_ACCEL``); one reaching a crossing
        waits at the kerb until it can claim it."""
        out, speeds = ws.copy(), wv.copy()
        for k, walker in enumerate(self.walkers):
            stop = walker.route.cum[-1]
            for start, end, c in walker.route.crossings:
                if ws[k] > end + 0.5:
                    self.claims[c].discard(k)
                elif ws[k] + 1.0 >= start - 0.3 and k not in self.claims[c]:
                    if self.claims[c] or not self._crossing_blocked(c, s, v):
                        self.claims[c].add(k)
                    else:
                        stop = start - 0.3
                    break
            target = min(walker.speed, np.sqrt(2 * WALK_ACCEL * max(stop - ws[k], 0.0)))
            speeds[k] = np.clip(target, wv[k] - WALK_ACCEL * self.dt, wv[k] + WALK_ACCEL * self.dt)
            out[k] = min(ws[k] + speeds[k] * self.dt, max(stop, ws[k]))
        return out, speeds

    def _obstacles(self, time: float, s: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Distance from each vehicle's front to its nearest stop (red light, busy crossing)."""
        gaps = np.full(len(s), np.inf)
        for i, mover in enumerate(self.vehicles):
            front = s[i] + self.length[i] / 2
            for station, arm, exit_station in mover.route.stops:
                if station < front - 0.5 or station - front > 80.0:
                    continue
                end = self.lights.green_until(arm, time)
                clear = _time_to_travel(exit_station + self.length[i] - s[i], v[i], self.accel[i], 6.0)
                cannot_stop = v[i] ** 2 / (2 * 4.0) > station - front
                if end is None or (end + 1.0 - time < clear and not cannot_stop):
                    gaps[i] = min(gaps[i], station - front)
                break
            for start, _, c in mover.route.crossings:
                if start >= front - 0.5 and start - front < 60.0 and self.claims[c]:
                    gaps[i] = min(gaps[i], start - 1.0 - front)
        return gaps

    def _drive(self, time: float, s: np.ndarray, v: np.ndarray, pos: np.ndarray, yaw: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
        """One IDM step of all vehicles."""
        n = len(s)
        ahead = s[:, None] + LOOKAHEAD_STEP * np.arange(1, LOOKAHEAD_COUNT + 1)
        samples, headings = self.vbank.pose(ahead)
        rel = pos[None, :, :] - pos[:, None, :]  # rel[i, j] = pos_j - pos_i
        reach = LOOKAHEAD_STEP * LOOKAHEAD_COUNT + 8.0
        ii, jj = np.nonzero((np.abs(rel[..., 0]) < reach) & (np.abs(rel[..., 1]) < reach) & ~np.eye(n, dtype=bool))
        offset = samples[ii] - pos[jj][:, None, :]  # (P, K, 2)
        close = offset[..., 0] ** 2 + offset[..., 1] ** 2 < PATH_TOLERANCE**2
        hit = close & (np.cos(yaw[jj][:, None] - headings[ii]) > np.cos(0.9))
        along = (hit.argmax(axis=1) + 1) * LOOKAHEAD_STEP
        gap = np.full((n, n), np.inf)
        found = hit.any(axis=1)
        gap[ii[found], jj[found]] = along[found] - (self.length[ii[found]] + self.length[jj[found]]) / 2
        # safety net for crossing traffic: anything in front, across our heading
        cos, sin = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
        fwd, lat = rel[..., 0] * cos + rel[..., 1] * sin, -rel[..., 0] * sin + rel[..., 1] * cos
        cross = np.abs(_wrap(yaw[None, :] - yaw[:, None]))
        near = (fwd > 0) & (fwd < 20) & (np.abs(lat) < (self.width[:, None] + self.width[None, :]) / 2 + 0.6)
        near &= (cross > 0.5) & (cross < 2.6)
        side = np.maximum(self.length, self.width)
        gap = np.minimum(gap, np.where(near, fwd - self.length[:, None] / 2 - side[None, :] / 2, np.inf))
        leader = gap.argmin(axis=1)
        lead_gap = gap[np.arange(n), leader]
        lead_v = np.where(np.isfinite(lead_gap), v[leader], 0.0)
        stop_gap = self._obstacles(time, s, v)
        use_stop = stop_gap < lead_gap
        lead_gap = np.where(use_stop, stop_gap, lead_gap)
        lead_v = np.where(use_stop, 0.0, lead_v)
        # curve speed: can we slow to each upcoming limit in time?
        room = np.maximum(LOOKAHEAD_STEP * np.arange(1, LOOKAHEAD_COUNT + 1)[None] - self.length[:, None] / 2, 0)
        limits = np.sqrt(self.vbank.limits(ahead) ** 2 + 2 * COMFORT_DECEL * room).min(axis=1)
        here = self.vbank.limits(s[:, None])[:, 0]
        v0 = np.minimum(self.desired, np.minimum(limits, here))
        acc = np.clip(_idm(v, v0, lead_gap, v - lead_v, self.accel), -MAX_DECEL, self.accel)
        v_new = np.maximum(v + acc * self.dt, 0.0)
        v_new = np.where(lead_gap < 0.3, 0.0, v_new)
        return np.minimum(s + v_new * self.dt, self.vbank.ends), v_new


def _time_to_travel(distance: float, speed: float, accel: float, top: float) -> float:
    """Seconds to cover ``distance`` from ``speed`` accelerating at ``accel`` up to ``top``."""
    top = max(top, speed)
    t_acc = (top - speed) / accel
    d_acc = speed * t_acc + 0.5 * accel * t_acc**2
    if distance <= d_acc:
        return (-speed + np.sqrt(speed**2 + 2 * accel * distance)) / accel
    return t_acc + (distance - d_acc) / top
