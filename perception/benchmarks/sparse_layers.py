"""Single sparse conv layers: native vs spconv modules, every fixed dataflow config, GFLOP/s.

Layers (CenterPoint/SECOND encoder shapes): SubM 3x3x3 at 16, 32, 64, 128 channels on the
input level and the levels after one, two, three 3x3x3/s2/p1 downsamplings, and those
downsamplings 16->32, 32->64, 64->128.  Per layer:

* ``native`` / ``spconv``: the module called on a fresh tensor (kernel-map construction
  included, as a network's first layer on a level pays it), eval forward under no_grad and
  training forward+backward, interleaved; outputs compared voxel by voxel.  The native
  module runs the layer's best fixed config (below), as a tuned model would;
* ``map_ms``: the native kernel-map construction alone;
* one row per fixed config (:mod:`.sparse_configs`): the feature matmul alone on the built
  map (``feature_matmul``, what a module runs after its map lookup), forward and
  forward+backward, and its "mm part" (wall time inside its matmul calls, median of 3
  forwards, :class:`KernelTimer`: torch's matmuls, and for ``native_implicit_gemm`` its
  compiled kernel, which fuses the rows' gather into the matmul);
* ``dense``: ``torch.mm`` of ``(pairs, C_in) @ (C_in, C_out)`` measured in the same run.

Useful work is ``pairs * C_in * C_out * 2`` FLOP (implicit GEMM's zero rows count as waste).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor
from tqdm import tqdm

from perception_ops.sparse import SparseConv3d, SparseTensor, SubMConv3d, backends
from perception_ops.sparse.execution import ExecutionConfig, feature_matmul
from perception_ops.sparse.kernel_map import KernelMap, build_conv_map, build_subm_map

from .sparse_configs import label
from .sparse_inputs import SparseInput
from perception_ops.sparse.dataflows.native import KERNELS

from .timing import MatmulTimer, Timing, measure, measure_interleaved

Level = tuple[Tensor, tuple[int, int, int]]


@dataclass(frozen=True)
class LayerSpec:
    """One benchmarked layer: SubM on ``level`` or a stride-2 conv from ``level`` to the next."""

    name: str
    level: int
    c_in: int
    c_out: int
    subm: bool


LAYERS: tuple[LayerSpec, ...] = (
    LayerSpec("subm16", 0, 16, 16, True), LayerSpec("subm32", 1, 32, 32, True),
    LayerSpec("subm64", 2, 64, 64, True), LayerSpec("subm128", 3, 128, 128, True),
    LayerSpec("down16-32", 0, 16, 32, False), LayerSpec("down32-64", 1, 32, 64, False),
    LayerSpec("down64-128", 2, 64, 128, False))


def pyramid(inp: SparseInput, levels: int = 4) -> list[Level]:
    """Coordinates and spatial shape of the input and of ``levels - 1`` 3x3x3/s2/p1 convs."""
    out: list[Level] = [(inp.coords, inp.spatial_shape)]
    for _ in range(levels - 1):
        kmap = build_conv_map(out[-1][0], out[-1][1], 3, 2, 1)
        out.append((kmap.out_coords.contiguous(), kmap.out_spatial_shape))
    return out


def build_map(spec: LayerSpec, level: Level) -> KernelMap:
    coords, shape = level
    return build_subm_map(coords, shape, 3) if spec.subm else build_conv_map(coords, shape, 3, 2, 1)


def gflops(flop: float, seconds: float) -> float:
    return flop / seconds / 1e9 if seconds > 0 else float("nan")


def aligned_difference(a_coords: Tensor, a: Tensor, b_coords: Tensor, b: Tensor) -> dict[str, Any]:
    """Max |a - b| over the voxels (rows matched by coordinates), relative to max |a|;
    ``same_voxels`` is False (and the difference inf) when the coordinate sets differ."""
    def order(c: Tensor) -> tuple[Tensor, Tensor]:
        key = c.to(torch.int64)
        key = ((key[:, 0] * 4096 + key[:, 1]) * 4096 + key[:, 2]) * 4096 + key[:, 3]
        sorted_key, idx = torch.sort(key)
        return sorted_key, idx
    ka, ia = order(a_coords)
    kb, ib = order(b_coords)
    if ka.shape != kb.shape or not torch.equal(ka, kb):
        return {"same_voxels": False, "max_abs": float("inf"), "rel": float("inf"), "ok": False}
    diff = float((a[ia] - b[ib]).abs().max()) if a.numel() else 0.0
    scale = float(a.abs().max()) if a.numel() else 1.0
    rel = diff / max(scale, 1e-12)
    return {"same_voxels": True, "max_abs": diff, "rel": rel, "ok": rel < 1e-4}


def _module_pair(spec: LayerSpec, spconv: bool, config: ExecutionConfig | None
                 ) -> tuple[torch.nn.Module, torch.nn.Module | None]:
    ctor = SubMConv3d if spec.subm else SparseConv3d
    kwargs: dict[str, Any] = {} if spec.subm else {"stride": 2, "padding": 1}
    native = ctor(spec.c_in, spec.c_out, 3, bias=False, **kwargs)
    native.set_execution(config)
    if not spconv:
        return native, None
    name = "SubMConv3d" if spec.subm else "SparseConv3d"
    other = backends.make_sparse_module(name, spec.c_in, spec.c_out, 3, bias=False,
                                        backend="spconv", **kwargs)
    other.load_state_dict(native.state_dict())
    return native, other


def _modules(spec: LayerSpec, level: Level, feats: Tensor, grad: Tensor, spconv: bool,
             repeats: int, config: ExecutionConfig | None = None) -> dict[str, Any]:
    """Native (``config``) vs spconv module times (map construction included) and their
    difference."""
    coords, shape = level
    native, other = _module_pair(spec, spconv, config)
    xg = feats.clone().requires_grad_(True)
    make: dict[str, Callable[[Tensor], Any]] = {
        "native": lambda f: SparseTensor(f, coords, shape, 1)}
    mods: dict[str, torch.nn.Module] = {"native": native}
    if other is not None:
        make["spconv"] = lambda f: backends.make_sparse_tensor(f, coords, shape, 1, "spconv")
        mods["spconv"] = other

    def fwd(name: str) -> Callable[[], Any]:
        def run() -> Any:
            mods[name].eval()
            with torch.no_grad():
                return mods[name](make[name](feats))
        return run

    def train(name: str) -> Callable[[], None]:
        def run() -> None:
            mods[name].train()
            mods[name](make[name](xg)).features.backward(grad)
        return run

    out: dict[str, Any] = {n: {} for n in mods}
    for phase, factory in (("fwd", fwd), ("fwdbwd", train)):
        for n, t in measure_interleaved({n: factory(n) for n in mods}, repeats).items():
            out[n][phase] = t
    if other is not None:
        a, b = fwd("native")(), fwd("spconv")()
        out["equal"] = aligned_difference(a.coords, a.features, b.indices, b.features)
    return out


class KernelTimer(MatmulTimer):
    """:class:`.timing.MatmulTimer` that also times the native dataflow's compiled kernels
    (they replace the gathers and matmuls of the torch dataflows in one call)."""

    def __torch_function__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        if func not in KERNELS:
            return super().__torch_function__(func, types, args, kwargs)
        start = self.clock()
        try:
            return func(*args, **(kwargs or {}))
        finally:
            self.seconds += self.clock() - start
            self.calls += 1


def matmul_seconds(fn: Callable[[], Any], repeats: int = 3) -> float:
    """Median over ``repeats`` calls of ``fn`` of the time inside its matmul / native kernel
    calls (:class:`KernelTimer`)."""
    times = []
    for _ in range(repeats):
        with KernelTimer() as timer:
            fn()
        times.append(timer.seconds)
    return sorted(times)[len(times) // 2]


def _config_rows(kmap: KernelMap, level: Level, feats: Tensor, weight: Tensor, grad: Tensor,
                 configs: list[ExecutionConfig], repeats: int) -> list[dict[str, Any]]:
    """Feature-matmul times of every config on the built map (see module doc)."""
    coords, shape = level
    x = SparseTensor(feats, coords, shape, 1)
    xg = SparseTensor(feats.clone().requires_grad_(True), coords, shape, 1)
    wg = weight.clone().requires_grad_(True)

    def fwd(c: ExecutionConfig) -> Callable[[], Tensor]:
        def run() -> Tensor:
            with torch.no_grad():
                return feature_matmul(x, weight, kmap, c)
        return run

    def train(c: ExecutionConfig) -> Callable[[], None]:
        return lambda: feature_matmul(xg, wg, kmap, c).backward(grad)

    fwd_t = measure_interleaved({label(c): fwd(c) for c in configs}, repeats)
    train_t = measure_interleaved({label(c): train(c) for c in configs}, repeats)
    rows = []
    for c in configs:
        mm = matmul_seconds(fwd(c))
        rows.append({"config": c.to_dict(), "label": label(c), "fwd": fwd_t[label(c)],
                     "fwdbwd": train_t[label(c)], "mm_s": mm})
    return rows


def bench_layer(spec: LayerSpec, levels: list[Level], configs: list[ExecutionConfig],
                spconv: bool, repeats: int) -> dict[str, Any]:
    """Every figure of one layer (module doc); times as :class:`Timing` dicts."""
    level = levels[spec.level]
    kmap = build_map(spec, level)
    pairs = sum(kmap.pair_counts())
    flop = 2.0 * pairs * spec.c_in * spec.c_out
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(kmap.num_in, spec.c_in, generator=g)
    grad = torch.randn(kmap.num_out, spec.c_out, generator=g)
    weight = torch.randn(spec.c_out, 3, 3, 3, spec.c_in, generator=g) / (27 * spec.c_in) ** 0.5
    map_t = measure(lambda: build_map(spec, level), repeats)
    a, b = torch.randn(pairs, spec.c_in, generator=g), torch.randn(spec.c_in, spec.c_out, generator=g)
    dense_t = measure(lambda: torch.mm(a, b), repeats)
    rows = _config_rows(kmap, level, feats, weight, grad, configs, repeats)
    for r in rows:
        r["gflops"] = gflops(flop, r["fwd"].median)
        r["mm_gflops"] = gflops(flop, r["mm_s"])
        r["mm_pct_dense"] = 100.0 * dense_t.median / r["mm_s"] if r["mm_s"] > 0 else float("nan")
    best = min(rows, key=lambda r: r["fwd"].median)
    mods = _modules(spec, level, feats, grad, spconv, repeats,
                    ExecutionConfig.from_dict(best["config"]))
    result: dict[str, Any] = {
        "layer": spec.name, "c_in": spec.c_in, "c_out": spec.c_out, "subm": spec.subm,
        "voxels_in": kmap.num_in, "voxels_out": kmap.num_out, "pairs": pairs,
        "gflop": flop / 1e9, "map": map_t, "dense_mm": dense_t,
        "dense_gflops": gflops(flop, dense_t.median), "configs": rows,
        "best_config": best["label"], "native_module_config": best["label"]}
    for name in ("native", "spconv"):
        if name in mods:
            result[name] = {**mods[name], "gflops": gflops(flop, mods[name]["fwd"].median)}
    if "equal" in mods:
        result["equal"] = mods["equal"]
    if "spconv" in mods:
        result["fwd_speedup_vs_spconv"] = mods["spconv"]["fwd"].median / mods["native"]["fwd"].median
        result["fwdbwd_speedup_vs_spconv"] = (mods["spconv"]["fwdbwd"].median
                                              / mods["native"]["fwdbwd"].median)
    return result


def bench_layers(inp: SparseInput, configs: list[ExecutionConfig], spconv: bool,
                 repeats: int) -> list[dict[str, Any]]:
    """:func:`bench_layer` for every layer of :data:`LAYERS` on one input."""
    levels = pyramid(inp)
    return [bench_layer(spec, levels, configs, spconv, repeats)
            for spec in tqdm(LAYERS, desc=f"layers {inp.name}", leave=False)]


def timing_dicts(obj: Any) -> Any:
    """``obj`` with every :class:`Timing` replaced by its dict (for JSON)."""
    if isinstance(obj, Timing):
        return obj.as_dict()
    if isinstance(obj, dict):
        return {k: timing_dicts(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [timing_dicts(v) for v in obj]
    return obj
