"""Planar polyline helpers of the synthetic world: arcs, Bezier turns, offsets, resampling.

All polylines are ``(K, 2)`` float64 arrays in the world frame; "left" is the left of the
direction of travel (counter-clockwise normal), as in the lane boundaries of :mod:`.types`.
"""
from __future__ import annotations

import numpy as np


def cumulative_length(line: np.ndarray) -> np.ndarray:
    """``(K,)`` arc length at each vertex, starting at 0."""
    steps = np.linalg.norm(np.diff(line, axis=0), axis=1)
    return np.concatenate([[0.0], np.cumsum(steps)])


def resample(line: np.ndarray, spacing: float) -> np.ndarray:
    """The polyline with vertices every ~``spacing`` metres (end points kept)."""
    cum = cumulative_length(line)
    count = max(int(np.ceil(cum[-1] / spacing)), 1) + 1
    stations = np.linspace(0.0, cum[-1], count)
    return np.stack([np.interp(stations, cum, line[:, 0]), np.interp(stations, cum, line[:, 1])], 1)


def tangents(line: np.ndarray) -> np.ndarray:
    """``(K, 2)`` unit tangents (central differences, one-sided at the ends)."""
    grad = np.gradient(line, axis=0)
    return grad / np.maximum(np.linalg.norm(grad, axis=1, keepdims=True), 1e-12)


def offset(line: np.ndarray, distance: float) -> np.ndarray:
    """The polyline shifted ``distance`` metres to its left (negative: right)."""
    tangent = tangents(line)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    return line + distance * normal


def straight(start: np.ndarray, end: np.ndarray, spacing: float) -> np.ndarray:
    """A sampled segment from ``start`` to ``end``."""
    return resample(np.stack([np.asarray(start, float), np.asarray(end, float)]), spacing)


def arc(center: np.ndarray, radius: float, angle_from: float, angle_to: float, spacing: float) -> np.ndarray:
    """A circular arc from polar angle ``angle_from`` to ``angle_to`` (sign gives the sense)."""
    count = max(int(np.ceil(abs(angle_to - angle_from) * radius / spacing)), 1) + 1
    angles = np.linspace(angle_from, angle_to, count)
    return np.asarray(center, float) + radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def bezier_turn(start: np.ndarray, start_dir: np.ndarray, end: np.ndarray, end_dir: np.ndarray,
                spacing: float) -> np.ndarray:
    """A cubic Bezier leaving ``start`` along ``start_dir`` and reaching ``end`` along ``end_dir``.

    Control arms of 0.39 x chord approximate a circular arc for right-angle turns.
    """
    start, end = np.asarray(start, float), np.asarray(end, float)
    arm = 0.39 * np.linalg.norm(end - start)
    controls = np.stack([start, start + arm * np.asarray(start_dir), end - arm * np.asarray(end_dir), end])
    u = np.linspace(0.0, 1.0, 200)[:, None]
    weights = np.concatenate([(1 - u) ** 3, 3 * u * (1 - u) ** 2, 3 * u**2 * (1 - u), u**3], axis=1)
    return resample(weights @ controls, spacing)


def min_radius(line: np.ndarray) -> float:
    """Smallest radius of curvature along the polyline (inf for a straight line)."""
    if len(line) < 3:
        return float("inf")
    heading = np.unwrap(np.arctan2(*np.diff(line, axis=0).T[::-1]))
    step = np.linalg.norm(np.diff(line, axis=0), axis=1)
    turn = np.abs(np.diff(heading))
    curvature = turn / np.maximum(0.5 * (step[1:] + step[:-1]), 1e-9)
    return float(1.0 / max(curvature.max(), 1e-9))


def sample_at(line: np.ndarray, cum: np.ndarray, stations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points ``(N, 2)`` and headings ``(N,)`` at arc lengths ``stations`` (clamped to the line)."""
    x = np.interp(stations, cum, line[:, 0])
    y = np.interp(stations, cum, line[:, 1])
    index = np.clip(np.searchsorted(cum, stations, side="right") - 1, 0, len(line) - 2)
    delta = line[index + 1] - line[index]
    return np.stack([x, y], axis=1), np.arctan2(delta[:, 1], delta[:, 0])
