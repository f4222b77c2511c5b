"""Every config in configs/ loads, resolves its _base_ and passes key/type validation."""
from __future__ import annotations

from pathlib import Path

import pytest

from perception.config import load_config

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
CONFIGS = sorted(CONFIG_DIR.rglob("*.py"))


def test_there_are_configs() -> None:
    assert len(CONFIGS) >= 3


@pytest.mark.parametrize("path", CONFIGS, ids=[str(p.relative_to(CONFIG_DIR)) for p in CONFIGS])
def test_config_loads(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.filename == str(path)
