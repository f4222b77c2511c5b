"""Write a scene's 10 Hz trajectory as an Argoverse 2 motion-forecasting scenario.

``<root>/av2/motion-forecasting/<split>/<scenario_id>/scenario_<scenario_id>.parquet`` (written
by av2's own ``serialize_argoverse_scenario_parquet``) and ``log_map_archive_<scenario_id>.json``
(the vector map with lane centrelines).  The window is the first 110 steps of
``trajectory_ticks`` (11 s), or all of them when fewer (at least 80 = 2 s history + 6 s future);
the last 60 steps are the future (``observed=False``), as in AV2.

Tracks: the ego as ``"AV"``; every object of a movable class (``static.*`` objects are map
furniture and left out).  Categories: the focal track is the moving vehicle present at every
step that is nearest to the ego at the last observed step; other tracks present at every step
that move are ``SCORED_TRACK``, present at every step but static ``UNSCORED_TRACK``, the rest
``TRACK_FRAGMENT``; the AV is ``UNSCORED_TRACK`` as in the real data.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ....structures import yaw_of_rotation
from ..types import ObjectState, SyntheticScene
from . import seconds_to_ns, stable_int, stable_uuid
from .av2_sensor import build_av2_map

MAX_STEPS = 110
FUTURE_STEPS = 60
MIN_STEPS = 80
MOVING_SPEED = 0.5
"""m/s: a track whose mean speed is below this counts as static."""
AV_TRACK_ID = "AV"
SCENARIO_SCHEMA = pa.schema([
    ("observed", pa.bool_()), ("track_id", pa.string()), ("object_type", pa.string()),
    ("object_category", pa.int64()), ("timestep", pa.int64()), ("position_x", pa.float64()),
    ("position_y", pa.float64()), ("heading", pa.float64()), ("velocity_x", pa.float64()),
    ("velocity_y", pa.float64()), ("scenario_id", pa.string()), ("start_timestamp", pa.float64()),
    ("end_timestamp", pa.float64()), ("num_timestamps", pa.int64()), ("focal_track_id", pa.string()),
    ("city", pa.string()), ("map_id", pa.uint64()), ("slice_id", pa.string()),
])
"""Column types of the real scenario files (pandas 3 would write ``large_string``)."""


class NoScenario(ValueError):
    """The scene cannot make a motion scenario (too short, or no focal vehicle)."""


def object_type_of(obj: ObjectState) -> str | None:
    """AV2 ``ObjectType`` value of a nuScenes category, ``None`` for map furniture."""
    category, attribute = obj.category, obj.attribute
    if category.startswith("static."):
        return None
    if category.startswith("human.pedestrian"):
        return "pedestrian"
    if category.startswith("vehicle.bus"):
        return "bus"
    if category == "vehicle.bicycle":
        return "riderless_bicycle" if attribute == "cycle.without_rider" else "cyclist"
    if category == "vehicle.motorcycle":
        return "motorcyclist"
    if category.startswith("vehicle."):
        return "vehicle"
    if category.startswith("movable_object."):
        return "construction"
    return "unknown"


def scenario_id_of(scene: SyntheticScene) -> str:
    """The scenario id (a UUID) of a scene, stable across runs."""
    return stable_uuid("av2-scenario", scene.name)


def _build_scenario(scene: SyntheticScene):  # -> ArgoverseScenario (av2 import kept lazy)
    from av2.datasets.motion_forecasting.data_schema import (
        ArgoverseScenario, ObjectState as AV2State, ObjectType, Track, TrackCategory)

    ticks = scene.trajectory_ticks[:MAX_STEPS]
    if len(ticks) < MIN_STEPS:
        raise NoScenario(f"scene {scene.name}: {len(ticks)} trajectory ticks, a motion scenario needs "
                         f">= {MIN_STEPS} (2 s history + 6 s future at 10 Hz)")
    steps, observed_steps = len(ticks), len(ticks) - FUTURE_STEPS
    dt = np.diff([t.timestamp for t in ticks])
    if np.any(np.abs(dt - 0.1) > 1e-3):
        raise ValueError(f"scene {scene.name}: trajectory_ticks must be 10 Hz, got steps {sorted(set(dt.round(4)))}")
    states: dict[str, dict[int, ObjectState]] = {}
    for step, tick in enumerate(ticks):
        for obj in tick.objects:
            if object_type_of(obj) is not None:
                states.setdefault(obj.track_id, {})[step] = obj
    ego_xy = np.array([np.asarray(t.ego2global)[:2, 3] for t in ticks])
    ego_yaw = [yaw_of_rotation(np.asarray(t.ego2global)[:3, :3]) for t in ticks]
    ego_velocity = np.gradient(ego_xy, 0.1, axis=0)

    def moving(track: dict[int, ObjectState]) -> bool:
        return float(np.mean([np.linalg.norm(o.velocity[:2]) for o in track.values()])) >= MOVING_SPEED

    full = {tid for tid, track in states.items() if len(track) == steps}
    candidates = sorted(
        (float(np.linalg.norm(track[observed_steps - 1].center[:2] - ego_xy[observed_steps - 1])), tid)
        for tid, track in states.items()
        if tid in full and object_type_of(track[0]) == "vehicle" and moving(track))
    if not candidates:
        raise NoScenario(f"scene {scene.name}: no moving vehicle is present at all {steps} steps; "
                         "no focal track for a motion scenario")
    focal = candidates[0][1]
    tracks = [Track(AV_TRACK_ID, [AV2State(step < observed_steps, step, tuple(ego_xy[step]), ego_yaw[step],
                                           tuple(ego_velocity[step])) for step in range(steps)],
                    ObjectType.VEHICLE, TrackCategory.UNSCORED_TRACK)]
    for tid in sorted(states):
        track = states[tid]
        if tid == focal:
            category = TrackCategory.FOCAL_TRACK
        elif tid in full:
            category = TrackCategory.SCORED_TRACK if moving(track) else TrackCategory.UNSCORED_TRACK
        else:
            category = TrackCategory.TRACK_FRAGMENT
        object_states = [AV2State(step < observed_steps, step, (float(o.center[0]), float(o.center[1])),
                                  float(o.yaw), (float(o.velocity[0]), float(o.velocity[1])))
                         for step, o in sorted(track.items())]
        tracks.append(Track(tid, object_states, ObjectType(object_type_of(track[min(track)])), category))
    return ArgoverseScenario(
        scenario_id=scenario_id_of(scene),
        timestamps_ns=np.array([seconds_to_ns(t.timestamp) for t in ticks], dtype=np.int64),
        tracks=tracks, focal_track_id=focal, city_name=scene.location,
        map_id=stable_int("av2-map", scene.location, bits=20), slice_id=stable_uuid("av2-slice", scene.name))


def write_scenario(scene: SyntheticScene, root: Path, split: str) -> Path:
    """Write the scenario parquet and its map JSON; returns the scenario folder."""
    from av2.datasets.motion_forecasting.scenario_serialization import serialize_argoverse_scenario_parquet

    scenario = _build_scenario(scene)
    folder = Path(root) / "av2" / "motion-forecasting" / split / scenario.scenario_id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"scenario_{scenario.scenario_id}.parquet"
    serialize_argoverse_scenario_parquet(path, scenario)
    table = pq.read_table(path).select(SCENARIO_SCHEMA.names)
    pq.write_table(table.cast(SCENARIO_SCHEMA, safe=False), path)  # ns timestamps as float64, as AV2
    ground_z = float(np.median([np.asarray(t.ego2global)[2, 3] for t in scene.trajectory_ticks]))
    road_map = build_av2_map(scene.road_map, ground_z, with_centerlines=True)
    (folder / f"log_map_archive_{scenario.scenario_id}.json").write_text(json.dumps(road_map))
    return folder
