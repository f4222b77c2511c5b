"""Errors of the bridge: a malformed message names the topic, field and offending value."""
from __future__ import annotations


class BridgeMessageError(ValueError):
    """An incoming message cannot be decoded (wrong layout, missing field, bad base64)."""


class BridgeConfigError(ValueError):
    """A bridge option is invalid (unknown source, bad port, missing checkpoint)."""
