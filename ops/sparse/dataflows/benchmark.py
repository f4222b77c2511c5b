"""Benchmark every dataflow and parameter setting on one real LiDAR sweep (CPU).

    python -m perception_ops.sparse.dataflows.benchmark SWEEP.pcd.bin [--threads 2] [--passes 2]

Voxelizes a nuScenes sweep (x, y, z, intensity, ring float32) at 0.075 x 0.075 x 0.2 m in
[-54, -54, -5, 54, 54, 3] (mean pooling), builds the SubM 3x3x3 and strided 3x3x3/s2 maps and
prints, per layer and setting, forward and forward+backward times and the matmul throughput
``pairs * C_in * C_out * 2 / time`` next to a dense ``torch.mm`` of ``(pairs, C_in) x
(C_in, C_out)`` timed in the same run, and the same throughput over the matmul calls alone
(from the profiler).  Times are minima over repetitions and passes (the machine may be shared).
"""
from __future__ import annotations

import argparse
import itertools
import time
from typing import Callable

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from ...voxelize.api import dynamic_voxelize, voxel_pooling
from ..kernel_map import KernelMap, build_conv_map, build_subm_map
from . import DATAFLOWS, sparse_matmul
from .views import MapView

VOXEL_SIZE = (0.075, 0.075, 0.2)
RANGE = (-54.0, -54.0, -5.0, 54.0, 54.0, 3.0)
SPATIAL_SHAPE = (40, 1440, 1440)


def load_voxels(path: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (M, 5) mean of points, coords (M, 4) int32 (0, z, y, x)) of one sweep."""
    points = torch.from_numpy(np.fromfile(path, dtype=np.float32).reshape(-1, 5))
    cells = dynamic_voxelize(points, VOXEL_SIZE, RANGE)
    feats, coords, _ = voxel_pooling(points, cells, "mean")
    coords = torch.cat([torch.zeros_like(coords[:, :1]), coords], dim=1)
    return feats, coords


def best_time(fn: Callable[[], object], repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_seconds(fn: Callable[[], object]) -> float:
    """Self CPU time of the matmul ops (mm, bmm, addmm) in one profiled call of ``fn``."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return sum(e.self_cpu_time_total for e in prof.key_averages()
               if e.key in ("aten::mm", "aten::bmm", "aten::addmm")) / 1e6


def settings(name: str) -> list[dict]:
    space = DATAFLOWS[name].space()
    return [dict(zip(space, values)) for values in itertools.product(*space.values())]


def bench_layer(label: str, kmap: KernelMap, c_in: int, c_out: int, repeat: int,
                passes: int = 1) -> list[dict]:
    """Rows of {layer, dataflow, params, fwd_ms, fwdbwd_ms, gflops, mm_gflops, dense_gflops}:
    ``gflops`` over the whole forward, ``mm_gflops`` over its matmul calls only (useful flops,
    so padding / implicit-GEMM zero rows count as waste).  Each time is the minimum over
    ``passes`` sweeps of all settings (interleaved, against transient load) x ``repeat``."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(kmap.num_in, c_in, generator=g)
    w = torch.randn(c_out, *kmap.kernel_size, c_in, generator=g) / (27 * c_in) ** 0.5
    xg, wg = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
    view = MapView(kmap)
    view.neighbours, view.order, view.sorted_neighbours  # noqa: B018 (warm the view cache)
    view.transposed().neighbours, view.transposed().sorted_neighbours  # noqa: B018
    pairs = sum(kmap.pair_counts())
    flops = 2.0 * pairs * c_in * c_out
    a, b = torch.randn(pairs, c_in, generator=g), torch.randn(c_in, c_out, generator=g)
    jobs = [(name, params) for name in DATAFLOWS for params in settings(name)]
    best: dict[int, list[float]] = {}
    for _ in tqdm(range(passes), desc=label, leave=False):
        for i, (name, params) in enumerate(jobs):
            def fwd() -> Tensor:
                return sparse_matmul(x, w, view, name, **params)

            def step() -> None:
                sparse_matmul(xg, wg, view, name, **params).sum().backward()
            times = [best_time(fwd, repeat), best_time(step, repeat),
                     best_time(lambda: a @ b, repeat),
                     min(matmul_seconds(fwd) for _ in range(repeat))]
            best[i] = [min(t, o) for t, o in zip(times, best.get(i, times))]
    rows = []
    for i, (name, params) in enumerate(jobs):
        fwd_s, both_s, dense_s, mm_s = best[i]
        rows.append(dict(layer=label, dataflow=name, params=params, fwd_ms=fwd_s * 1e3,
                         fwdbwd_ms=both_s * 1e3, gflops=flops / fwd_s / 1e9,
                         mm_gflops=flops / mm_s / 1e9, dense_gflops=flops / dense_s / 1e9,
                         pairs=pairs))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--passes", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    _, coords = load_voxels(args.sweep)
    subm = build_subm_map(coords, SPATIAL_SHAPE, 3)
    down = build_conv_map(coords, SPATIAL_SHAPE, 3, 2, 1)
    print(f"{coords.shape[0]} voxels; subm pairs {sum(subm.pair_counts())}; strided outputs "
          f"{down.num_out}, pairs {sum(down.pair_counts())}; threads {args.threads}")
    layers = [("subm16", subm, 16, 16), ("subm32", subm, 32, 32), ("subm64", subm, 64, 64),
              ("down16-32", down, 16, 32)]
    print("| layer | dataflow | params | fwd ms | fwd+bwd ms | GFLOP/s fwd | GFLOP/s mm part | "
          "dense mm GFLOP/s | mm part % of dense |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, kmap, c_in, c_out in layers:
        for r in bench_layer(label, kmap, c_in, c_out, args.repeat, args.passes):
            params = ", ".join(f"{k}={v}" for k, v in r["params"].items())
            print(f"| {r['layer']} | {r['dataflow']} | {params} | {r['fwd_ms']:.2f} | "
                  f"{r['fwdbwd_ms']:.2f} | {r['gflops']:.1f} | {r['mm_gflops']:.1f} | "
                  f"{r['dense_gflops']:.1f} | {100 * r['mm_gflops'] / r['dense_gflops']:.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
