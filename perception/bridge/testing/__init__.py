"""Local test helpers usable without ROS: a validating rosbridge-protocol server
(``python -m perception.bridge.testing.rosbridge_server``) and a Foxglove WebSocket client that
decodes what a Foxglove server serves.  Imported lazily so ``python -m`` runs stay clean."""
from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {"FoxgloveScene": "foxglove_client", "collect_foxglove": "foxglove_client",
            "RosMessageValidator": "ros_validation", "RosbridgeTestServer": "rosbridge_server"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
