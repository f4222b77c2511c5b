"""HeapTrimHook / trim_heap: freed heap pages go back to the system (glibc fragmentation fix)."""
from __future__ import annotations

import gc
import platform
from pathlib import Path
from types import SimpleNamespace

import pytest

from perception.config import load_config
from perception.engine.hooks import HeapTrimHook
from perception.engine.malloc import trim_heap

REPO_ROOT = Path(__file__).resolve().parents[2]
GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def resident_bytes() -> int:
    return int(open("/proc/self/statm").read().split()[1]) * 4096


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_trim_returns_pages_a_fragmented_heap_keeps() -> None:
    blocks = [bytearray(100_000) for _ in range(500)]  # below the mmap threshold: heap chunks
    for block in blocks:
        block[::4096] = b"\x01" * len(block[::4096])  # touch every page
    pin = blocks[-1]  # a live chunk above the freed ones: plain top-of-heap trimming cannot help
    del blocks
    gc.collect()
    before = resident_bytes()
    assert trim_heap()
    assert before - resident_bytes() > 30_000_000
    assert len(pin) == 100_000


def test_hook_trims_at_epoch_ends_and_every_interval_iterations() -> None:
    hook = HeapTrimHook(interval=3)
    runner = SimpleNamespace(iter=0)
    for iteration in range(7):
        runner.iter = iteration
        hook.after_train_iter(runner, iteration)
    hook.after_train_epoch(runner)
    hook.after_val_epoch(runner)
    hook.after_test_epoch(runner)
    assert hook.trims == (2 + 3 if GLIBC else 0)  # iterations 3 and 6, three epoch ends


@pytest.mark.parametrize("interval", [0, -1, 2.5, True])
def test_hook_rejects_bad_interval(interval: object) -> None:
    with pytest.raises(ValueError, match="interval"):
        HeapTrimHook(interval=interval)


def test_every_config_inherits_the_hook() -> None:
    cfg = load_config(REPO_ROOT / "configs/maptr/maptr_tiny_synthetic.py")
    assert cfg.default_hooks.heap_trim.type == "HeapTrimHook"
    assert cfg.default_hooks.checkpoint.interval == cfg.max_epochs  # the config's own keys still merge
