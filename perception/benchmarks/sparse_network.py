"""The whole sparse encoder (``perception.models.SparseEncoder``): native configs vs spconv.

One interleaved measurement per phase (eval forward under no_grad; training forward +
backward of the BEV map against a fixed random gradient) over: the native default execution,
spconv 2.x (``sparseconv_backend='spconv'``, ConvAlgo.Native on the CPU, the same weights
loaded with ``load_state_dict``), every fixed config applied to all conv layers
(:mod:`.sparse_configs`) and the autotuned per-layer configs when given.  Every forward
builds its kernel maps (spconv: indice pairs) from scratch, as in a real pass.

Matmul efficiency: useful FLOP = sum over conv layers of ``pairs * C_in * C_out * 2`` (pairs
recorded by forward hooks from the layers' kernel maps); the "dense" reference is the sum
over layers of ``torch.mm((pairs, C_in), (C_in, C_out))`` timed in the same run; the "mm
part" is the wall time inside the matmul calls of a forward (median of 3,
:class:`.timing.MatmulTimer`; with ``cross_check`` also from a torch.profiler trace).
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

from perception_ops.sparse.dataflows.native import PROFILER_EVENT
from perception_ops.sparse.execution import ExecutionConfig

from .sparse_configs import apply_config, conv_layers, label
from .sparse_inputs import SparseInput
from .sparse_layers import gflops, matmul_seconds
from .sparse_tuning import Tuned
from .timing import measure, measure_interleaved, profiled_matmul_seconds

WGRAD_TOLERANCE = 1e-2
"""Relative max difference allowed between the backends' input-conv weight gradients: it
goes back through 21 layers and training-mode batch norms in float32 (on the nuScenes
keyframe both are 2e-4 (native) and 1e-3 (spconv) from a float64 run, in which the two
backends agree to 5e-15); the BEV maps must agree 10x tighter."""
TUNED = "tuned"
DEFAULT = "default"
SPCONV = "spconv"


def build_encoder(model_cfg: Mapping[str, Any], backend: str = "native") -> nn.Module:
    """The config's encoder (``SparseEncoder``) with ``sparseconv_backend=backend``."""
    from perception.registry import MODELS

    return MODELS.build({**dict(model_cfg), "sparseconv_backend": backend})


def layer_work(model: nn.Module, inp: SparseInput) -> list[tuple[int, int, int]]:
    """(pairs, C_in, C_out) of every native conv layer in one eval forward of ``model``."""
    work: list[tuple[int, int, int]] = []

    def hook(m: Any, args: tuple[Any, ...], _: Any) -> None:
        x = args[0]
        if m.inverse:
            kmap = x.cache.inverse_map(x.coords, x.spatial_shape, m.kernel_size, m.indice_key)
        else:  # a cache hit: the map the layer just used
            kmap = x.cache.conv_map(x.coords, x.spatial_shape, m.kernel_size, m.stride,
                                    m.padding, m.dilation, m.subm, m.indice_key,
                                    x.batch_size, x.tensor_stride)
        work.append((sum(kmap.pair_counts()), m.in_channels, m.out_channels))

    handles = [layer.register_forward_hook(hook) for layer in conv_layers(model)]
    try:
        model.eval()
        with torch.no_grad():
            model(inp.features, inp.coords, 1)
    finally:
        for h in handles:
            h.remove()
    return work


def dense_mm_seconds(work: list[tuple[int, int, int]], repeats: int) -> float:
    """Sum over layers of the median time of a dense (pairs, C_in) @ (C_in, C_out)."""
    total = 0.0
    g = torch.Generator().manual_seed(0)
    for (pairs, c_in, c_out), count in Counter(work).items():
        a, b = torch.randn(pairs, c_in, generator=g), torch.randn(c_in, c_out, generator=g)
        total += count * measure(lambda: torch.mm(a, b), repeats).median
    return total


def _runners(models: Mapping[str, nn.Module], configs: Mapping[str, Any], inp: SparseInput,
             grad: Tensor) -> tuple[dict[str, Callable[[], Any]], dict[str, Callable[[], Any]]]:
    """Forward and training-step closures per entry; native entries set their config first."""
    xg = inp.features.clone().requires_grad_(True)

    def prepare(name: str) -> nn.Module:
        model = models[name]
        if name in configs:
            configs[name](model)
        return model

    def fwd(name: str) -> Callable[[], Tensor]:
        def run() -> Tensor:
            model = prepare(name).eval()
            with torch.no_grad():
                return model(inp.features, inp.coords, 1)
        return run

    def step(name: str) -> Callable[[], None]:
        def run() -> None:
            model = prepare(name).train()
            model.zero_grad(set_to_none=True)
            model(xg, inp.coords, 1).backward(grad)
        return run

    names = list(configs) + [n for n in models if n not in configs]
    return {n: fwd(n) for n in names}, {n: step(n) for n in names}


def _compare(native: nn.Module, other: nn.Module, fwd: Mapping[str, Callable[[], Tensor]],
             step: Mapping[str, Callable[[], None]]) -> dict[str, Any]:
    """Relative max differences of the eval BEV maps and of the input conv's weight gradient
    (run before any timing: training steps move the BatchNorm running statistics)."""
    a, b = fwd[DEFAULT](), fwd[SPCONV]()
    step[DEFAULT]()
    step[SPCONV]()
    ga = next(native.parameters()).grad
    gb = next(other.parameters()).grad
    out = {"bev_max_abs": float((a - b).abs().max()),
           "bev_rel": float((a - b).abs().max() / a.abs().max().clamp_min(1e-12)),
           "wgrad_rel": float((ga - gb).abs().max() / ga.abs().max().clamp_min(1e-12))}
    out["ok"] = out["bev_rel"] < WGRAD_TOLERANCE / 10 and out["wgrad_rel"] < WGRAD_TOLERANCE
    return out


def bench_encoder(inp: SparseInput, model_cfg: Mapping[str, Any], fixed: list[ExecutionConfig],
                  tuner: Callable[..., Tuned | None], spconv: bool, repeats: int,
                  cross_check: bool = False, light_tuning: bool = False) -> dict[str, Any]:
    """All encoder figures on one input (module doc); ``tuner(model, inp, light)`` tunes the
    model (or loads a cache; ``light``: a smaller search space) and returns how to apply the
    tuned configs, or None."""
    torch.manual_seed(0)
    native = build_encoder(model_cfg)
    tuned = tuner(native, inp, light_tuning)
    models: dict[str, nn.Module] = {}
    configs: dict[str, Callable[[nn.Module], Any]] = {DEFAULT: lambda m: apply_config(m, None)}
    if tuned is not None:
        configs[TUNED] = tuned.apply
    fixed = list(fixed) + [c for c in (tuned.best_fixed if tuned else []) if c not in fixed]
    for c in fixed:
        configs[label(c)] = lambda m, c=c: apply_config(m, c)
    models.update({name: native for name in configs})
    if spconv:
        models[SPCONV] = build_encoder(model_cfg, "spconv")
        models[SPCONV].load_state_dict(native.state_dict())
    work = layer_work(native, inp)
    flop = sum(2.0 * p * ci * co for p, ci, co in work)
    with torch.no_grad():
        shape = models[DEFAULT](inp.features, inp.coords, 1).shape
    grad = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    fwd, step = _runners(models, configs, inp, grad)
    equal = _compare(native, models[SPCONV], fwd, step) if spconv else None  # same BN state
    fwd_t = measure_interleaved(fwd, repeats)
    step_t = measure_interleaved(step, repeats)
    dense_s = dense_mm_seconds(work, repeats)
    rows = {}
    for name in fwd:
        rows[name] = {"fwd": fwd_t[name], "fwdbwd": step_t[name],
                      "gflops": gflops(flop, fwd_t[name].median)}
    fixed_names = [label(c) for c in fixed]
    best_fwd = min(fixed_names, key=lambda n: fwd_t[n].median) if fixed_names else None
    best_step = min(fixed_names, key=lambda n: step_t[n].median) if fixed_names else None
    for name in {DEFAULT, TUNED, best_fwd} & set(rows):
        mm = matmul_seconds(fwd[name])
        rows[name].update(mm_s=mm, mm_gflops=gflops(flop, mm),
                          mm_pct_dense=100 * dense_s / mm if mm > 0 else float("nan"))
    if cross_check:  # the same figure from a torch.profiler trace, for the report's method note
        name = TUNED if TUNED in rows else DEFAULT
        rows[name]["mm_s_profiler"] = profiled_matmul_seconds(
            fwd[name], ("aten::mm", "aten::bmm", "aten::addmm", PROFILER_EVENT))
    result: dict[str, Any] = {
        "model": type(native).__name__, "conv_layers": len(work), "pairs": sum(p for p, _, _ in work),
        "gflop": flop / 1e9, "bev_shape": list(shape), "dense_mm_s": dense_s,
        "dense_gflops": gflops(flop, dense_s), "rows": rows, "best_fixed_fwd": best_fwd,
        "best_fixed_fwdbwd": best_step}
    if equal is not None:
        result["equal"] = equal
    if tuned is not None:
        result["tuning"] = tuned.info
    return result
