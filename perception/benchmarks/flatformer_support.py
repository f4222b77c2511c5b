"""Inputs and memory figures of the FlatFormer benchmark (:mod:`.flatformer`).

* :func:`simulated_frame`: a synthetic LiDAR frame from the synthetic world's own 32-beam
  LiDAR model (:mod:`perception.datasets.synthetic.lidar`) cast at a ground plane and parked
  / moving cars around a driving ego, ``sweeps`` sweeps accumulated like nuScenes' 10-sweep
  input; used when the generated synthetic data set (``data/synthetic``) is absent.
* :func:`peak_memory`: two peak-memory figures of one call: the growth of the process'
  resident-set high-water mark (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``
  after ``malloc_trim``; everything, native kernel buffers included) and the peak of live tensor storage created
  by torch ops during the call (a ``TorchDispatchMode``; portable, tensors only).
"""
from __future__ import annotations

import gc
import weakref
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ..engine.malloc import trim_heap
from .sparse_inputs import SparseInput, VoxelSetup, voxelize_points

SWEEP_PERIOD = 0.05  # s, a 20 Hz LiDAR
EGO_SPEED = 8.0  # m/s along +x of the keyframe's LiDAR frame


def simulated_frame(setup: VoxelSetup, sweeps: int = 10, seed: int = 0, cars: int = 40,
                    azimuth_steps: int = 1084) -> SparseInput:
    """A simulated ``sweeps``-sweep frame voxelized as ``setup`` says (module doc); points in
    the keyframe's LiDAR frame with ``time_lag`` = sweep index x 50 ms."""
    from perception.datasets.synthetic.ground import ASPHALT, GroundRaster
    from perception.datasets.synthetic.lidar import LidarSpec, sweep
    from perception.datasets.synthetic.raycast import BoxSet

    if sweeps < 1:
        raise ValueError(f"sweeps must be >= 1, got {sweeps}")
    rng = np.random.default_rng(seed)
    spec = LidarSpec(azimuth_steps=azimuth_steps)
    angle = rng.uniform(0, 2 * np.pi, cars)
    radius = rng.uniform(4.0, 50.0, cars)
    centers = np.stack([radius * np.cos(angle), radius * np.sin(angle),
                        np.full(cars, 0.8)], axis=1)
    sizes = np.column_stack([rng.uniform(3.8, 5.2, cars), rng.uniform(1.7, 2.1, cars),
                             rng.uniform(1.4, 1.9, cars)])
    boxes = BoxSet(centers, sizes, rng.uniform(-np.pi, np.pi, cars), ["vehicle.car"] * cars)
    ground = GroundRaster(np.full((8, 8), ASPHALT, dtype=np.uint8), -200.0, -200.0, 50.0)
    clouds = []
    for i in range(sweeps):
        pose = np.eye(4)
        pose[:3, 3] = [-EGO_SPEED * SWEEP_PERIOD * i, 0.0, 1.84]  # older sweeps: ego behind
        points = sweep(spec, pose, boxes, ground, rng)
        points[:, 0] += pose[0, 3]  # into the keyframe's LiDAR frame (no rotation)
        lag = np.full((len(points), 1), SWEEP_PERIOD * i, dtype=np.float32)
        clouds.append(np.concatenate([points[:, :4], lag], axis=1))
    points = np.concatenate(clouds)
    points[:, 2] -= 1.84  # z relative to the LiDAR, as in nuScenes
    note = (f"simulated synthetic frame: {sweeps} sweeps of the synthetic world's 32-beam "
            f"LiDAR, {cars} cars, ego at {EGO_SPEED:g} m/s (data/synthetic absent)")
    return voxelize_points("synthetic", points, ("x", "y", "z", "intensity", "time_lag"), note,
                           setup)


class TensorPeak(TorchDispatchMode):
    """Peak bytes of live CPU/GPU tensor storage created by torch ops while active."""

    def __init__(self) -> None:
        super().__init__()
        self.live, self.peak = 0, 0
        self._seen: set[int] = set()

    def _free(self, key: int, size: int) -> None:
        self.live -= size
        self._seen.discard(key)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key, size = storage.data_ptr(), storage.nbytes()
            if size == 0 or key in self._seen:
                continue
            self._seen.add(key)
            self.live += size
            self.peak = max(self.peak, self.live)
            weakref.finalize(storage, self._free, key, size)
        return out


STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kb(field: str) -> int | None:
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        CLEAR_REFS.write_text("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def peak_memory(fn: Callable[[], Any]) -> dict[str, float | None]:
    """``rss_mb``: VmHWM growth over VmRSS before the call (None where /proc is not
    writable); ``tensor_mb``: peak live tensor storage created by the call (module doc)."""
    gc.collect()
    trim_heap()  # the RSS before the call is its live memory, so its allocations show as growth
    rss_before = _status_kb("VmRSS")
    rss_ok = rss_before is not None and _reset_hwm()
    with TensorPeak() as tracker:
        result = fn()
    hwm = _status_kb("VmHWM") if rss_ok else None
    del result
    return {"rss_mb": (hwm - rss_before) / 1024 if hwm is not None and rss_before is not None
            else None, "tensor_mb": tracker.peak / 2**20}
