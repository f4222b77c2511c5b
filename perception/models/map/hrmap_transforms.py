"""``HRMapLocation``: put the frame's map location into the pipeline dict for ``PackDetInputs``.

HRMapNet keys its global raster map by location (a nuScenes location, an AV2 city, a synthetic
location id); the :class:`~perception.structures.frame.Frame` knows it, the packed sample only
gets what ``PackDetInputs(meta_keys=(..., "location"))`` copies from the pipeline dict.
"""
from __future__ import annotations

from typing import Any

from ...registry import TRANSFORMS


@TRANSFORMS.register_module()
class HRMapLocation:
    """``results["location"] = results["frame"].location`` (``fallback`` when the frame has none)."""

    def __init__(self, fallback: str | None = None) -> None:
        self.fallback = fallback

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        frame = results.get("frame")
        location = getattr(frame, "location", "") or self.fallback
        if not location:
            raise KeyError(f"HRMapLocation: the frame {getattr(frame, 'token', '?')} has no location and no "
                           "fallback was configured")
        results["location"] = location
        return results
