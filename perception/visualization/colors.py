"""Colours of classes and map elements, shared by every PNG the stack writes."""
from __future__ import annotations

CLASS_COLORS: dict[str, str] = {
    "car": "#1f77b4",
    "truck": "#ff7f0e",
    "trailer": "#8c564b",
    "bus": "#d62728",
    "construction_vehicle": "#bcbd22",
    "bicycle": "#e377c2",
    "motorcycle": "#9467bd",
    "pedestrian": "#2ca02c",
    "traffic_cone": "#ffbb00",
    "barrier": "#7f7f7f",
}
MAP_COLORS: dict[str, str] = {
    "divider": "#f0a000",
    "lane_divider": "#f0a000",
    "road_divider": "#d08000",
    "ped_crossing": "#3070ff",
    "boundary": "#d02020",
    "lane_centerline": "#a0a0a0",
    "drivable_area": "#c0c0c0",
    "walkway": "#60b060",
    "stop_line": "#ff3030",
}
DEFAULT_COLOR = "#17becf"


def class_color(name: str) -> str:
    """Colour of a class (or map category) name, a fixed default for unknown names."""
    return CLASS_COLORS.get(name) or MAP_COLORS.get(name) or DEFAULT_COLOR
