"""Fixtures of the bridge tests (helpers live in bridge_fakes.py)."""
from __future__ import annotations

import pytest
from bridge_fakes import FakeStack, make_frame

from perception.bridge.results import BridgeFrame


@pytest.fixture
def fake_stack() -> FakeStack:
    return FakeStack()


@pytest.fixture
def bridge_frame() -> BridgeFrame:
    return BridgeFrame(make_frame(), "lidar")


@pytest.fixture(scope="session")
def synthetic_root(request: pytest.FixtureRequest):
    """The synthetic world: ``data/synthetic`` when `make demo` generated it (no cost), else the
    small generated world of the shared ``tiny_synthetic_root`` fixture."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2] / "data" / "synthetic"
    if (repo / "nuscenes_infos_val.pkl").is_file():
        return repo
    return request.getfixturevalue("tiny_synthetic_root")
