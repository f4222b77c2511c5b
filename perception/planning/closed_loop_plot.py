"""BEV picture of closed-loop runs: drivable area, route, agents at the end, each planner's driven path."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..evaluation.planning_metrics import box_corners, ego_boxes, footprint_of  # noqa: E402
from ..utils.atomic import atomic_path  # noqa: E402
from .closed_loop import ClosedLoopConfig, ClosedLoopResult  # noqa: E402
from .closed_loop_world import ClosedLoopWorld  # noqa: E402

COLORS = ("#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#a65628")


def draw_closed_loop(path: str | Path, world: ClosedLoopWorld, results: Mapping[str, ClosedLoopResult],
                     config: ClosedLoopConfig = ClosedLoopConfig(), margin: float = 35.0) -> Path:
    """One PNG: every run's driven path and final ego box, the expert's path dashed, agents at
    the last step of the longest run, a legend with progress / collisions / off-road rate."""
    if not results:
        raise ValueError("draw_closed_loop: no results to draw")
    figure, axes = plt.subplots(figsize=(9, 9), dpi=100)
    drivable = world.drivable
    for polygon in getattr(drivable, "geoms", [drivable]):
        axes.fill(*polygon.exterior.xy, color="#e8e8e8", zorder=0)
        for ring in polygon.interiors:
            axes.fill(*ring.xy, color="white", zorder=0)
    for element in world.map_elements:
        if element.category == "divider":
            axes.plot(element.points[:, 0], element.points[:, 1], color="#c8a040", linewidth=0.6, zorder=1)
    axes.plot(world.route[:, 0], world.route[:, 1], color="#888888", linewidth=0.8, linestyle=":", zorder=1)
    last = world.start_index + max(len(r.states) for r in results.values()) - 1
    for agent in world.agents:
        length, width = footprint_of(agent.category, agent.size)
        corners = box_corners(np.array([*agent.positions[last], length, width, agent.yaws[last]]))
        axes.fill(corners[:, 0], corners[:, 1], color="#555555", alpha=0.6, zorder=2)
    expert = world.ego_log.positions[world.start_index:last + 1]
    axes.plot(expert[:, 0], expert[:, 1], color="black", linestyle="--", linewidth=1.5, label="expert log", zorder=3)
    points = [expert]
    for k, (name, result) in enumerate(results.items()):
        color = COLORS[k % len(COLORS)]
        m = result.metrics()
        label = (f"{name}: {m['progress_m']:.1f} m, {int(m['collided_agents'])} collided agent(s), "
                 f"off-road {100 * m['offroad_rate']:.0f}%")
        axes.plot(result.states[:, 0], result.states[:, 1], color=color, linewidth=2.0, label=label, zorder=4)
        corners = box_corners(ego_boxes(result.states[-1:, :3], config.ego))[0]
        axes.fill(corners[:, 0], corners[:, 1], color=color, alpha=0.8, zorder=5)
        points.append(result.states[:, :2])
    everything = np.concatenate(points)
    low, high = everything.min(0) - margin, everything.max(0) + margin
    centre, half = (low + high) / 2, float((high - low).max()) / 2
    axes.set_xlim(centre[0] - half, centre[0] + half)
    axes.set_ylim(centre[1] - half, centre[1] + half)
    axes.set_aspect("equal")
    axes.legend(loc="upper left", fontsize=8)
    duration = max(float(r.times[-1]) for r in results.values())
    axes.set_title(f"closed loop in {world.name} ({duration:.1f} s, log-replayed agents)")
    figure.tight_layout()
    path = Path(path)
    with atomic_path(path) as temp:
        figure.savefig(temp, format="png")
    plt.close(figure)
    return path
