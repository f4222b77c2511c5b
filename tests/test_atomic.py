"""Atomic writes keep the old file when writing fails and leave no temporary files."""
from __future__ import annotations

import pickle
import stat
from pathlib import Path

import pytest

from perception.utils.atomic import atomic_open, write_pickle_atomic


def test_write_and_replace(tmp_path: Path) -> None:
    path = write_pickle_atomic({"a": 1}, tmp_path / "sub" / "x.pkl")
    write_pickle_atomic({"a": 2}, path)
    assert pickle.loads(path.read_bytes()) == {"a": 2}
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["x.pkl"]


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = write_pickle_atomic([1, 2, 3], tmp_path / "x.pkl")
    with pytest.raises(RuntimeError):
        with atomic_open(path, "wb") as stream:
            stream.write(b"partial")
            raise RuntimeError("interrupted")
    assert pickle.loads(path.read_bytes()) == [1, 2, 3]
    assert [p.name for p in tmp_path.iterdir()] == ["x.pkl"]
