"""Fixed execution configs of the native sparse engine, enumerated from the dataflow spaces.

Every config is one :class:`~perception_ops.sparse.execution.ExecutionConfig` applied to
every conv layer (the input gradient runs the forward's dataflow and parameters, the weight
gradient its default grouping).  The space is the product of each dataflow's
``DataflowSpec.space()`` with two reductions:

* gather_gemm_scatter with ``mm_thresh = 0`` batches nothing, so ``epsilon`` is irrelevant
  there: only ``epsilon = 0`` is kept (16 -> 13 configs);
* ``limit`` keeps each dataflow's default first, then takes the others round-robin across
  dataflows (so every dataflow stays represented when the list is cut).
"""
from __future__ import annotations

import itertools
from typing import Iterable

from torch import nn

from perception_ops.sparse.dataflows import DATAFLOWS
from perception_ops.sparse.execution import ExecutionConfig
from perception_ops.sparse.modules import SparseConv3d, SparseInverseConv3d, SubMConv3d

NATIVE_CONVS = (SubMConv3d, SparseConv3d, SparseInverseConv3d)


def dataflow_configs(name: str) -> list[ExecutionConfig]:
    """All distinct configs of one dataflow, its default first."""
    spec = DATAFLOWS[name]
    space = spec.space()
    configs = [ExecutionConfig(name, spec.defaults())]
    for values in itertools.product(*space.values()):
        params = dict(zip(space, values))
        if name == "gather_gemm_scatter" and params["mm_thresh"] == 0 and params["epsilon"]:
            continue  # nothing is batched: epsilon has no effect
        config = ExecutionConfig(name, params)
        if config not in configs:
            configs.append(config)
    return configs


def fixed_configs(limit: int | None = None) -> list[ExecutionConfig]:
    """Configs of every dataflow (see module doc), at most ``limit`` of them."""
    if limit is not None and limit < 1:
        raise ValueError(f"--max-configs must be >= 1, got {limit}")
    per_flow = [dataflow_configs(name) for name in DATAFLOWS]
    ordered = [c for group in itertools.zip_longest(*per_flow) for c in group if c is not None]
    return ordered if limit is None else ordered[:limit]


def label(config: ExecutionConfig) -> str:
    """Short name of a config for tables, e.g. ``implicit_gemm(sorted=True, tile_rows=256)``."""
    return config.describe()


def conv_layers(model: nn.Module) -> list[nn.Module]:
    """The native sparse conv layers of ``model`` in registration order."""
    return [m for m in model.modules() if isinstance(m, NATIVE_CONVS)]


def apply_config(model: nn.Module, config: ExecutionConfig | None,
                 modes: Iterable[str] = ("both",)) -> int:
    """Set ``config`` (None: the default) on every native conv layer; returns their count."""
    layers = conv_layers(model)
    for layer in layers:
        for mode in modes:
            layer.set_execution(config, mode)
    return len(layers)
