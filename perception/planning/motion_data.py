"""Argoverse 2 motion-forecasting scenarios as :class:`PlanningScene` (ego = the AV track).

A scenario folder ``<split>/<scenario_id>/`` holds ``scenario_<id>.parquet`` (read with av2's
``load_argoverse_scenario_parquet``) and ``log_map_archive_<id>.json`` (read with
``ArgoverseStaticMap``).  The conversion keeps every track on the scenario's time grid
(``valid`` False where a track has no state), takes the AV track (``"AV"``) as the ego, the
focal track first and then the scored tracks as ``focal_track_ids``, and "now" as the last
observed step (step 49 of 110 in AV2).  Map elements come from
:mod:`perception.datasets.av2.map_elements` (dividers, crossings, drivable areas, boundaries,
lane centerlines), in the world (city) frame like the tracks.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..structures.map_elements import AgentHistory, MapElement
from .scene import PlanningScene, PlanningSceneError

AV_TRACK_ID = "AV"
DEFAULT_SIZES: dict[str, tuple[float, float, float]] = {
    "vehicle": (4.5, 2.0, 1.6), "bus": (12.0, 2.6, 3.2), "pedestrian": (0.6, 0.6, 1.7),
    "cyclist": (1.8, 0.7, 1.7), "motorcyclist": (2.1, 0.8, 1.6), "riderless_bicycle": (1.8, 0.6, 1.1),
}
"""Length, width, height per AV2 object type (AV2 scenarios carry no sizes); others 1 x 1 x 1 m."""
SCORED_CATEGORIES = ("FOCAL_TRACK", "SCORED_TRACK")


class MotionDataError(PlanningSceneError):
    """A scenario folder is missing its files or cannot be read."""


def scenario_files(scenario_dir: str | Path) -> tuple[Path, Path | None]:
    """The scenario parquet and the map JSON (``None`` when absent) of a scenario folder."""
    scenario_dir = Path(scenario_dir)
    parquets = sorted(scenario_dir.glob("scenario_*.parquet"))
    if not parquets:
        raise MotionDataError(f"{scenario_dir}: no scenario_*.parquet in the folder")
    maps = sorted(scenario_dir.glob("log_map_archive_*.json"))
    return parquets[0], (maps[0] if maps else None)


def list_scenarios(root: str | Path) -> list[Path]:
    """Scenario folders under ``root`` (a split folder), sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise MotionDataError(f"motion-forecasting split folder not found: {root}")
    return sorted(p.parent for p in root.glob("*/scenario_*.parquet"))


WHOLE_MAP_RADIUS = 1e5
"""A radius covering any AV2 scenario map (they are cropped around the scenario already)."""


def load_av2_map_elements(map_json: str | Path, center_xy: np.ndarray, radius: float | None = None) -> list[MapElement]:
    """Vector map elements within ``radius`` m (L-infinity; ``None``: all) of ``center_xy``, world frame."""
    from av2.map.map_api import ArgoverseStaticMap

    from ..datasets.av2.map_elements import map_elements_near

    try:
        avm = ArgoverseStaticMap.from_json(Path(map_json))
    except (OSError, KeyError, ValueError) as error:
        raise MotionDataError(f"cannot read AV2 map {map_json}: {error}") from error
    return map_elements_near(avm, np.asarray(center_xy, dtype=np.float64), radius or WHOLE_MAP_RADIUS)


def load_av2_scenario(scenario_dir: str | Path, with_map: bool = True, map_radius: float | None = None
                      ) -> PlanningScene:
    """One AV2 motion-forecasting scenario folder (or parquet file) as a :class:`PlanningScene`
    (map elements within ``map_radius`` m of the AV at "now", the whole map when ``None``)."""
    from av2.datasets.motion_forecasting.scenario_serialization import load_argoverse_scenario_parquet

    path = Path(scenario_dir)
    parquet, map_json = (path, None) if path.suffix == ".parquet" else scenario_files(path)
    if path.suffix == ".parquet":
        found = sorted(path.parent.glob("log_map_archive_*.json"))
        map_json = found[0] if found else None
    try:
        scenario = load_argoverse_scenario_parquet(parquet)
    except (OSError, KeyError, ValueError) as error:
        raise MotionDataError(f"cannot read AV2 scenario {parquet}: {error}") from error
    timestamps = np.asarray(scenario.timestamps_ns, dtype=np.float64) * 1e-9
    steps = len(timestamps)
    tracks: dict[str, AgentHistory] = {}
    categories: dict[str, str] = {}
    last_observed = -1
    for track in scenario.tracks:
        states, valid = np.zeros((steps, 5)), np.zeros(steps, dtype=bool)
        for state in track.object_states:
            step = int(state.timestep)
            if not 0 <= step < steps:
                raise MotionDataError(f"{parquet}: track {track.track_id} has timestep {step} outside [0, {steps})")
            states[step] = (state.position[0], state.position[1], state.heading, state.velocity[0], state.velocity[1])
            valid[step] = True
            if state.observed:
                last_observed = max(last_observed, step)
        kind = track.object_type.value
        tracks[track.track_id] = AgentHistory(track.track_id, kind, timestamps, states, valid,
                                              DEFAULT_SIZES.get(kind, (1.0, 1.0, 1.0)))
        categories[track.track_id] = track.category.name
    if AV_TRACK_ID not in tracks:
        raise MotionDataError(f"{parquet}: no {AV_TRACK_ID!r} track to use as the ego")
    if last_observed < 0:
        raise MotionDataError(f"{parquet}: no observed state in any track")
    ego = tracks.pop(AV_TRACK_ID)
    focal = [scenario.focal_track_id] if scenario.focal_track_id in tracks else []
    scored = sorted(tid for tid, cat in categories.items()
                    if cat == "SCORED_TRACK" and tid in tracks and tid not in focal)
    map_elements: list[MapElement] = []
    if with_map and map_json is not None:
        map_elements = load_av2_map_elements(map_json, ego.states[last_observed, :2], map_radius)
    return PlanningScene(str(scenario.scenario_id), timestamps, last_observed, ego, list(tracks.values()),
                         map_elements, focal + scored, str(scenario.city_name))
