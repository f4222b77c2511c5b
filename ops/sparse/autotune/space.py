"""The autotuner's search space: candidate execution configs per stage, pruned.

Stage ``forward``: every dataflow x its parameter candidates (``DataflowSpec.space``), plus
spconv; stage ``dgrad`` (training): the input-gradient dataflow; stage ``wgrad`` (training):
the weight-gradient grouping.  Pruned combinations, which cannot be faster or are identical:

* gather_gemm_scatter / wgrad with ``mm_thresh=0`` never batch, so ``epsilon > 0`` only pads;
* the native weight gradient (wgrad ``native=True``) ignores the grouping parameters: only
  its default grouping is kept;
* a threshold / chunk / tile at least as large as the largest layer acts like any larger one:
  only the smallest such value is kept.

On CUDA with triton the forward / dgrad dataflows are the Triton ones (no parameters; their
kernels autotune themselves) plus the default torch path.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ..dataflows import DATAFLOWS as CPU_DATAFLOWS
from ..dataflows import WGRAD_PARAMS
from ..execution import DEFAULT_EXECUTION, ExecutionConfig
from ..triton import DATAFLOWS as TRITON_DATAFLOWS
from ..triton import TRITON_AVAILABLE

SIZE_PARAMS = {"mm_thresh", "chunk_size", "tile_rows", "block_rows"}


@dataclass(frozen=True)
class SearchSpace:
    """What to search.  ``dataflows`` None = all of the device's; ``params`` overrides the
    candidate values of a dataflow's parameters (``{"implicit_gemm": {"tile_rows": (256,)}}``);
    ``backends`` lists 'native' and/or 'spconv' (used when importable); ``greedy_top_k``
    alternatives per group are re-checked end to end."""

    dataflows: tuple[str, ...] | None = None
    params: Mapping[str, Mapping[str, Sequence[Any]]] = field(default_factory=dict)
    backends: tuple[str, ...] = ("native", "spconv")
    dgrad: bool = True
    wgrad: bool = True
    greedy_top_k: int = 2

    def to_dict(self) -> dict[str, Any]:
        return {"dataflows": None if self.dataflows is None else list(self.dataflows),
                "params": {k: {p: list(v) for p, v in d.items()} for k, d in self.params.items()},
                "backends": list(self.backends), "dgrad": self.dgrad, "wgrad": self.wgrad,
                "greedy_top_k": self.greedy_top_k}


def _prune(values: Sequence[Any], name: str, limit: int) -> list[Any]:
    """Drop size values beyond the first one >= limit (they all act the same)."""
    if name not in SIZE_PARAMS:
        return list(values)
    kept, saturated = [], False
    for v in sorted(values):
        if not saturated:
            kept.append(v)
        saturated = saturated or v >= limit
    return kept


def _grid(space: Mapping[str, Sequence[Any]], limits: Mapping[str, int]) -> list[dict[str, Any]]:
    names = list(space)
    values = [_prune(space[n], n, limits.get(n, 1 << 62)) for n in names]
    out = []
    for combo in itertools.product(*values):
        params = dict(zip(names, combo))
        if params.get("mm_thresh", 1) == 0 and params.get("epsilon", 0) > 0:
            continue  # never batched: epsilon only pads
        if params.get("native") is True and (params.get("epsilon", 0) or
                                             params.get("mm_thresh", 0)):
            continue  # the native weight gradient does not group
        out.append(params)
    return out


def _limits(max_rows: int, kernel_volume: int) -> dict[str, int]:
    return {"mm_thresh": max_rows + 1, "tile_rows": max_rows, "block_rows": max_rows,
            "chunk_size": max_rows * kernel_volume}


def _dataflow_names(space: SearchSpace, on_triton: bool) -> list[str]:
    table = TRITON_DATAFLOWS if on_triton else CPU_DATAFLOWS
    names = list(table) if space.dataflows is None else list(space.dataflows)
    unknown = [n for n in names if n not in table and n != DEFAULT_EXECUTION.dataflow]
    if unknown:
        raise ValueError(f"autotune: unknown dataflow(s) {unknown} for this device; known: "
                         f"{sorted(table)}")
    return names


def uses_triton(device_type: str) -> bool:
    return device_type == "cuda" and TRITON_AVAILABLE


def forward_candidates(space: SearchSpace, device_type: str, max_rows: int,
                       kernel_volume: int, spconv_available: bool) -> list[ExecutionConfig]:
    """Stage 'forward' candidates; the default config is always first."""
    out = [DEFAULT_EXECUTION]
    if "native" in space.backends:
        on_triton = uses_triton(device_type)
        for name in _dataflow_names(space, on_triton):
            if on_triton and name in TRITON_DATAFLOWS:
                out.append(ExecutionConfig(name))
                continue
            spec = CPU_DATAFLOWS[name]
            grid = {**spec.space(), **{k: tuple(v) for k, v in space.params.get(name, {}).items()}}
            for params in _grid(grid, _limits(max_rows, kernel_volume)):
                out.append(ExecutionConfig(name, spec.resolve(params)))
    if "spconv" in space.backends and spconv_available:
        out.append(ExecutionConfig(backend="spconv"))
    unique: list[ExecutionConfig] = []
    for c in out:
        if c not in unique and _canonical(c) not in [_canonical(u) for u in unique]:
            unique.append(c)
    return unique


def _canonical(c: ExecutionConfig) -> ExecutionConfig:
    """Config with default parameters spelt out (so {} and the defaults compare equal)."""
    if c.backend != "native" or c.dataflow not in CPU_DATAFLOWS:
        return c
    return c.replace(params=CPU_DATAFLOWS[c.dataflow].resolve(dict(c.params)))


def dgrad_candidates(space: SearchSpace, device_type: str) -> list[str | None]:
    """Stage 'dgrad': None (= the forward's dataflow and params), then each dataflow."""
    if not space.dgrad:
        return [None]
    return [None] + _dataflow_names(space, uses_triton(device_type))


def wgrad_candidates(space: SearchSpace, max_rows: int) -> list[dict[str, Any]]:
    """Stage 'wgrad': weight-gradient grouping parameters (defaults first)."""
    defaults = {k: p.default for k, p in WGRAD_PARAMS.items()}
    if not space.wgrad:
        return [defaults]
    grid = _grid({k: p.candidates for k, p in WGRAD_PARAMS.items()}, _limits(max_rows, 1))
    return [defaults] + [g for g in grid if g != defaults]
