"""Offscreen BEV picture of what a Foxglove client receives (points, boxes, map, ego path).

Input is the decoded traffic of :func:`perception.bridge.testing.collect_foxglove`, so the PNG
shows exactly the served scene, not the stack's internal objects.
"""
from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

import numpy as np

from .foxglove_sink import TOPICS

FIELD_TYPES = {"UINT8": "u1", "INT8": "i1", "UINT16": "u2", "INT16": "i2", "UINT32": "u4", "INT32": "i4",
               "FLOAT32": "f4", "FLOAT64": "f8"}


def cloud_points(message: dict[str, Any]) -> dict[str, np.ndarray]:
    """Columns of a decoded ``foxglove.PointCloud`` dict by field name."""
    raw = base64.b64decode(message.get("data", ""))
    stride = int(message["point_stride"])
    count = len(raw) // stride if stride else 0
    dtype = np.dtype({"names": [f["name"] for f in message["fields"]],
                      "formats": ["<" + FIELD_TYPES[str(f["type"]).upper()] for f in message["fields"]],
                      "offsets": [int(f.get("offset", 0)) for f in message["fields"]], "itemsize": stride})
    array = np.frombuffer(raw[: count * stride], dtype=dtype)
    return {name: array[name].astype(np.float64) for name in dtype.names}


def _yaw(orientation: dict[str, float]) -> float:
    x, y, z, w = (float(orientation.get(k, 0.0)) for k in ("x", "y", "z", "w"))
    return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def _rgb(color: dict[str, float]) -> tuple[float, float, float]:
    return float(color.get("r", 0)), float(color.get("g", 0)), float(color.get("b", 0))


def render_foxglove_scene(messages: dict[str, list[Any]], out: str | Path, extent: float = 50.0,
                          title: str = "") -> Path:
    """Draw the newest message of each scene topic in BEV (sensor frame, x right, y up)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Polygon

    fig, ax = plt.subplots(figsize=(9, 9), dpi=110)
    ax.set_facecolor("#101418")
    if messages.get(TOPICS["points"]):
        cols = cloud_points(messages[TOPICS["points"]][-1])
        keep = (np.abs(cols["x"]) < extent) & (np.abs(cols["y"]) < extent)
        x, y, z = cols["x"][keep], cols["y"][keep], cols["z"][keep]
        ground = z < np.percentile(z, 30) + 0.3 if len(z) else z.astype(bool)
        ax.scatter(x[ground], y[ground], s=0.15, c="#3a4048", linewidths=0, rasterized=True)
        ax.scatter(x[~ground], y[~ground], s=0.6, c=z[~ground], cmap="turbo", vmin=float(np.min(z, initial=0)),
                   vmax=float(np.min(z, initial=0)) + 4.0, linewidths=0, rasterized=True)
    for topic, width in ((TOPICS["map"], 1.2), (TOPICS["path"], 3.0)):
        for entity in (messages.get(topic) or [{}])[-1].get("entities", []):
            for line in entity.get("lines", []):
                pts = np.array([[p.get("x", 0.0), p.get("y", 0.0)] for p in line.get("points", [])])
                if len(pts):
                    ax.plot(pts[:, 0], pts[:, 1], color=_rgb(line.get("color", {})), lw=width,
                            label="planned ego path" if topic == TOPICS["path"] else None)
    legend: dict[str, tuple[float, float, float]] = {}
    for entity in (messages.get(TOPICS["boxes"]) or [{}])[-1].get("entities", []):
        for cube, text in zip(entity.get("cubes", []), entity.get("texts", []) or [None] * 99):
            pos, size = cube["pose"]["position"], cube["size"]
            yaw = _yaw(cube["pose"]["orientation"])
            c, s = math.cos(yaw), math.sin(yaw)
            half = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]]) * [size["x"] / 2, size["y"] / 2]
            corners = half @ np.array([[c, s], [-s, c]]) + [pos["x"], pos["y"]]
            color = _rgb(cube.get("color", {}))
            ax.add_patch(Polygon(corners, closed=True, fill=False, ec=color, lw=1.6))
            ax.plot([pos["x"], pos["x"] + c * size["x"] / 2], [pos["y"], pos["y"] + s * size["x"] / 2],
                    color=color, lw=1.0)
            if text is not None:  # "class #track score" -> "#track" on the box, class in the legend
                words = text.get("text", "").split()
                track = next((w for w in words if w.startswith("#")), "")
                ax.text(pos["x"] + 0.6, pos["y"] + 0.6, track, color=color, fontsize=6)
                if words and words[0] not in legend:
                    legend[words[0]] = color
    ax.plot([0], [0], marker="^", color="white", ms=8)
    for name, color in sorted(legend.items()):
        ax.plot([], [], color=color, lw=2, label=name)
    if legend or messages.get(TOPICS["path"]):
        ax.legend(loc="lower left", fontsize=7, facecolor="#202428", labelcolor="white", framealpha=0.8)
    ax.set_xlim(-extent, extent)
    ax.set_ylim(-extent, extent)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m, sensor frame)")
    ax.set_ylabel("y (m)")
    ax.set_title(title or "Foxglove scene as served (points, boxes, map, path)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
