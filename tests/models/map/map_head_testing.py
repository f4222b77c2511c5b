"""Small map heads and a hand-made map sample shared by the map-head tests (imported by them;
the fixtures are re-exported by each test module)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import perception.models.map  # noqa: F401  (registers the heads)
from perception.registry import MODELS
from perception.structures.det_sample import DetSample
from perception.structures.map_instances import MapInstances

MAP_RANGE = (-15.0, -30.0, 15.0, 30.0)
CLASSES = ("divider", "ped_crossing", "boundary")


@pytest.fixture(autouse=True)
def one_thread():
    """One thread: the shared 2-core box runs these tiny models faster that way."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def small_head(kind: str, **overrides) -> torch.nn.Module:
    cfg = dict(type=kind, in_channels=8, map_range=MAP_RANGE, embed_dims=32, num_queries=10, num_points=8,
               num_layers=2, num_heads=4, num_samples=2, ffn_dims=64, dropout=0.0)
    cfg.update(overrides)
    return MODELS.build(cfg)


def map_sample(token: str = "s0", num_points: int = 8) -> DetSample:
    """Two straight polylines and a square crossing (metric, LiDAR frame)."""
    t = np.linspace(0.0, 1.0, num_points)
    lines = [np.stack([np.full_like(t, -5.0), -25 + 50 * t], 1), np.stack([np.full_like(t, 6.0), -20 + 48 * t], 1)]
    square = np.array([[0, 0], [4, 0], [4, 4], [0, 4]], dtype=float)
    k = np.linspace(0, 4, num_points, endpoint=False)
    crossing = np.stack([np.interp(k, np.arange(5), np.r_[square[:, 0], 0]),
                         np.interp(k, np.arange(5), np.r_[square[:, 1], 0])], 1)
    gt = MapInstances(np.stack(lines + [crossing]), [0, 2, 1], CLASSES, [False, False, True])
    return DetSample(token, ("car",), np.eye(4), np.zeros((0, 9)), np.zeros(0), gt_map=gt)
