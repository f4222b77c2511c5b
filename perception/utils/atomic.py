"""Atomic file writes: write a temporary file beside the target, then rename it into place.

A reader never sees a half-written file and an interrupted write leaves the old file intact.
Every writer of the stack (info pickles, submissions, PNGs, checkpoints) goes through here.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

FILE_MODE = 0o644
"""Permissions of written files (``mkstemp`` would leave 0600)."""


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success rename it to ``path``.

    Use it for writers that take a file name (``savefig``, ``torch.save``); the temporary
    file is removed if the block raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file for writing; flushed, fsynced and renamed to ``path`` on success."""
    with atomic_path(path) as temporary, open(temporary, mode) as stream:
        yield stream
        stream.flush()
        os.fsync(stream.fileno())


def write_pickle_atomic(content: Any, path: str | Path) -> Path:
    """Pickle ``content`` to ``path`` atomically."""
    with atomic_open(path, "wb") as stream:
        pickle.dump(content, stream, protocol=pickle.HIGHEST_PROTOCOL)
    return Path(path)


def replace_folder(new: str | Path, target: str | Path) -> Path:
    """Move the fully written folder ``new`` to ``target``; an older ``target`` is set aside
    first and deleted only once ``new`` is in place (restored if the move fails)."""
    new, target = Path(new), Path(target)
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    moved = target.exists()
    if moved:
        os.replace(target, old)
    try:
        os.replace(new, target)
    except OSError:
        if moved:
            os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return target
