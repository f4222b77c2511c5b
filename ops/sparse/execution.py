"""Per-layer execution configs of the sparse conv modules (which kernel runs a layer).

An :class:`ExecutionConfig` names the dataflow of a layer's feature GEMM and its parameters,
the input-gradient (dgrad) dataflow, the weight-gradient (wgrad) grouping and the backend:

* ``backend="native"``: ``dataflow`` is a CPU dataflow (:data:`.dataflows.DATAFLOWS`:
  gather_gemm_scatter, fetch_on_demand, implicit_gemm, native_implicit_gemm) run by
  :func:`.dataflows.sparse_matmul`
  on any device, or a Triton dataflow (:data:`.triton.DATAFLOWS`) run by
  :func:`.triton.triton_sparse_matmul` for CUDA tensors when triton is importable.  A name in
  both tables runs on Triton there and on the torch path elsewhere (the other path's
  parameters are then ignored); a Triton-only name off CUDA / without triton runs its torch
  equivalent (gather_scatter, gather_mm_scatter -> gather_gemm_scatter; implicit_gemm_sorted
  -> implicit_gemm with sorted=True): same result, other kernel.  The compiled CPU dataflow
  ``native_implicit_gemm`` runs Triton's ``implicit_gemm_sorted`` on CUDA with triton (its
  GPU counterpart), its torch fallback elsewhere.
* ``backend="spconv"``: the layer runs spconv 2.x's conv on the same weights
  (``params={"algo": ...}`` optional).  Tensors are converted at the layer's boundaries and
  spconv's indice pairs are kept next to our kernel-map cache, so consecutive spconv layers
  with an ``indice_key`` share them as in spconv.  An inverse conv on spconv needs its
  ``indice_key``'s conv to have run on spconv as well.

The default config is gather_gemm_scatter with its default parameters on the native backend
(the autotuner's baseline; on the CPU the compiled native_implicit_gemm is the fastest
dataflow, and autotuned models pick it up).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

import torch
from torch import Tensor

from .dataflows import DATAFLOWS as CPU_DATAFLOWS
from .dataflows import WGRAD_PARAMS, MapView, get_dataflow, sparse_matmul
from .gather_gemm_scatter import SparseTensor
from .kernel_map import KernelMap
from .triton import DATAFLOWS as TRITON_DATAFLOWS
from .triton import TRITON_AVAILABLE, triton_sparse_matmul

if TYPE_CHECKING:  # pragma: no cover
    from .modules import _SparseConvNd

EXEC_BACKENDS = ("native", "spconv")
TRITON_PARAMS = ("allow_tf32", "config_index")
SPCONV_PARAMS = ("algo",)
TORCH_EQUIVALENT: Mapping[str, tuple[str, dict[str, Any]]] = {
    "gather_scatter": ("gather_gemm_scatter", {}),
    "gather_mm_scatter": ("gather_gemm_scatter", {}),
    "implicit_gemm_sorted": ("implicit_gemm", {"sorted": True}),
}
TRITON_EQUIVALENT: Mapping[str, str] = {"native_implicit_gemm": "implicit_gemm_sorted"}
MODES = ("inference", "training")


def _frozen(params: Mapping[str, Any] | None) -> tuple[tuple[str, Any], ...] | None:
    if params is None:
        return None
    if not isinstance(params, Mapping):
        params = dict(params)
    return tuple(sorted(params.items()))


def _check_params(dataflow: str, params: Mapping[str, Any], what: str) -> None:
    if dataflow not in CPU_DATAFLOWS and dataflow not in TRITON_DATAFLOWS:
        known = sorted(set(CPU_DATAFLOWS) | set(TRITON_DATAFLOWS))
        raise ValueError(f"ExecutionConfig: unknown {what} dataflow {dataflow!r}; known: {known}")
    cpu = {k: v for k, v in params.items() if k not in TRITON_PARAMS}
    if cpu:
        if dataflow not in CPU_DATAFLOWS:
            raise ValueError(f"ExecutionConfig: Triton dataflow {dataflow!r} takes only "
                             f"{TRITON_PARAMS}, got {sorted(cpu)}")
        get_dataflow(dataflow).resolve(cpu)


@dataclass(frozen=True)
class ExecutionConfig:
    """How one sparse conv layer runs (module doc).  Hashable; JSON via to_dict/from_dict."""

    dataflow: str = "gather_gemm_scatter"
    params: Any = field(default=())
    dgrad_dataflow: str | None = None
    dgrad_params: Any = None
    wgrad_params: Any = field(default=())
    backend: str = "native"

    def __post_init__(self) -> None:
        for name in ("params", "dgrad_params", "wgrad_params"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        if self.backend not in EXEC_BACKENDS:
            raise ValueError(f"ExecutionConfig: backend must be one of {EXEC_BACKENDS}, "
                             f"got {self.backend!r}")
        if self.backend == "spconv":
            bad = sorted(set(dict(self.params)) - set(SPCONV_PARAMS))
            if bad:
                raise ValueError(f"ExecutionConfig: the spconv backend takes only "
                                 f"{SPCONV_PARAMS}, got {bad}")
            return
        _check_params(self.dataflow, dict(self.params), "forward")
        if self.dgrad_dataflow is not None:
            _check_params(self.dgrad_dataflow, dict(self.dgrad_params or ()), "dgrad")
        elif self.dgrad_params is not None:
            raise ValueError("ExecutionConfig: dgrad_params given without dgrad_dataflow")
        wgrad = dict(self.wgrad_params)
        for name, value in wgrad.items():
            if name not in WGRAD_PARAMS:
                raise ValueError(f"ExecutionConfig: weight gradient has no parameter {name!r}; "
                                 f"known: {sorted(WGRAD_PARAMS)}")
            WGRAD_PARAMS[name].check("weight gradient", name, value)

    def replace(self, **changes: Any) -> "ExecutionConfig":
        """Copy with some fields changed."""
        data = self.to_dict()
        data.update(changes)
        return ExecutionConfig.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return {"dataflow": self.dataflow, "params": dict(self.params),
                "dgrad_dataflow": self.dgrad_dataflow,
                "dgrad_params": None if self.dgrad_params is None else dict(self.dgrad_params),
                "wgrad_params": dict(self.wgrad_params), "backend": self.backend}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ExecutionConfig":
        unknown = sorted(set(data) - {"dataflow", "params", "dgrad_dataflow", "dgrad_params",
                                      "wgrad_params", "backend"})
        if unknown:
            raise ValueError(f"ExecutionConfig: unknown field(s) {unknown}")
        return cls(**{k: v for k, v in data.items()})

    def describe(self) -> str:
        """Short human-readable form, e.g. ``implicit_gemm(tile_rows=256)``."""
        if self.backend == "spconv":
            return "spconv" + (f"({dict(self.params)['algo']})" if self.params else "")
        text = self.dataflow + (f"({', '.join(f'{k}={v}' for k, v in self.params)})"
                                if self.params else "")
        if self.dgrad_dataflow is not None:
            args = ", ".join(f"{k}={v}" for k, v in (self.dgrad_params or ()))
            text += f" dgrad={self.dgrad_dataflow}" + (f"({args})" if args else "")
        if self.wgrad_params:
            text += f" wgrad({', '.join(f'{k}={v}' for k, v in self.wgrad_params)})"
        return text


DEFAULT_EXECUTION = ExecutionConfig()


def map_view(x: SparseTensor, kmap: KernelMap) -> MapView:
    """The MapView of ``kmap`` kept next to the tensor's kernel-map cache (built once per map,
    so derived indices and dataflow plans are shared by every layer using that map)."""
    views = vars(x.cache).setdefault("_map_views", {})
    hit = views.get(id(kmap))
    if hit is None or hit[0] is not kmap:
        hit = views[id(kmap)] = (kmap, MapView(kmap))
    return hit[1]


def _triton_name(dataflow: str | None) -> str | None:
    """The Triton dataflow a config's dataflow name runs on CUDA (None: no Triton kernel)."""
    if dataflow is None:
        return None
    name = TRITON_EQUIVALENT.get(dataflow, dataflow)
    return name if name in TRITON_DATAFLOWS else None


def _use_triton(features: Tensor, dataflow: str) -> bool:
    return features.is_cuda and TRITON_AVAILABLE and _triton_name(dataflow) is not None


def _torch_name(dataflow: str, params: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """CPU dataflow name and its parameters (dropping Triton-only ones)."""
    if dataflow in CPU_DATAFLOWS:
        return dataflow, {k: v for k, v in params.items() if k not in TRITON_PARAMS}
    name, extra = TORCH_EQUIVALENT[dataflow]
    return name, dict(extra)


def feature_matmul(x: SparseTensor, weight: Tensor, kmap: KernelMap,
                   config: ExecutionConfig) -> Tensor:
    """``(kmap.num_out, C_out)`` conv features of ``x`` along ``kmap`` by ``config``."""
    params = dict(config.params)
    if _use_triton(x.features, config.dataflow):
        return triton_sparse_matmul(
            x.features, weight, kmap, _triton_name(config.dataflow),
            backward_dataflow=_triton_name(config.dgrad_dataflow),
            allow_tf32=bool(params.get("allow_tf32", False)),
            config_index=params.get("config_index"))
    name, resolved = _torch_name(config.dataflow, params)
    kwargs: dict[str, Any] = {}
    if config.dgrad_dataflow is not None:
        kwargs["dgrad_dataflow"], kwargs["dgrad_params"] = _torch_name(
            config.dgrad_dataflow, dict(config.dgrad_params or ()))
    return sparse_matmul(x.features, weight, map_view(x, kmap), name,
                         wgrad_params=dict(config.wgrad_params), **kwargs, **resolved)


def run_native(module: "_SparseConvNd", x: SparseTensor, weight: Tensor, bias: Tensor | None,
               config: ExecutionConfig) -> SparseTensor:
    """The layer on our engine: cached kernel map, then the configured dataflow."""
    k = module.kernel_size
    if module.inverse:
        kmap = x.cache.inverse_map(x.coords, x.spatial_shape, k, module.indice_key)
    else:
        kmap = x.cache.conv_map(x.coords, x.spatial_shape, k, module.stride, module.padding,
                                module.dilation, module.subm, module.indice_key, x.batch_size,
                                x.tensor_stride)
    out = feature_matmul(x, weight, kmap, config)
    if bias is not None:
        out = out + bias
    return x.replace(out, kmap.out_coords, kmap.out_spatial_shape, kmap.out_stride)


def _spconv_impl(module: "_SparseConvNd", algo: Any) -> Any:
    """spconv conv of the module's geometry, cached outside the module's parameters/state."""
    key = ("_spconv_impl", algo)
    cached = module.__dict__.get("_spconv_cache")
    if cached is not None and cached[0] == key:
        return cached[1]
    from .backends import BACKENDS  # lazy: backends imports the modules, which import us
    spconv_backend = BACKENDS["spconv"]
    if module.inverse:
        impl = spconv_backend.module("SparseInverseConv3d", module.in_channels,
                                     module.out_channels, module.kernel_size,
                                     indice_key=module.indice_key, bias=False, algo=algo)
    else:
        name = "SubMConv3d" if module.subm else "SparseConv3d"
        impl = spconv_backend.module(name, module.in_channels, module.out_channels,
                                     module.kernel_size, module.stride, module.padding,
                                     module.dilation, bias=False,
                                     indice_key=module.indice_key, algo=algo)
    module.__dict__["_spconv_cache"] = (key, impl)
    return impl


def run_spconv(module: "_SparseConvNd", x: SparseTensor, weight: Tensor, bias: Tensor | None,
               config: ExecutionConfig) -> SparseTensor:
    """The layer on spconv: convert in, spconv conv with our weights, convert back."""
    from .backends import load_spconv
    spconv = load_spconv()
    impl = _spconv_impl(module, dict(config.params).get("algo"))
    store: dict = vars(x.cache).setdefault("_spconv_indice_dict", {})
    if module.inverse and module.indice_key not in store:
        raise ValueError(f"{type(module).__name__}(indice_key={module.indice_key!r}) on the "
                         f"spconv backend needs the conv {module.indice_key!r} to run on spconv "
                         f"too (its indice pairs are spconv's); set that conv's backend to "
                         f"'spconv' or this layer's to 'native'")
    sp_in = spconv.SparseConvTensor(x.features, x.coords, list(x.spatial_shape), x.batch_size,
                                    indice_dict=store)
    # bias added here: spconv's eval path fuses it into a kernel that fails on the CPU
    # ("bias and act don't support cpu")
    sp_out = impl._conv_forward(module.training, sp_in, weight, None)
    store.update(sp_out.indice_dict)
    features = sp_out.features if bias is None else sp_out.features + bias
    shape = tuple(int(s) for s in sp_out.spatial_shape)
    if module.inverse:
        conv_stride = store[module.indice_key].stride
        stride = tuple(t // int(s) for t, s in zip(x.tensor_stride, conv_stride))
    else:
        stride = tuple(t * s for t, s in zip(x.tensor_stride, module.stride))
    return x.replace(features, sp_out.indices, shape, stride)  # type: ignore[arg-type]


def run_conv(module: "_SparseConvNd", x: SparseTensor, weight: Tensor, bias: Tensor | None,
             config: ExecutionConfig) -> SparseTensor:
    """Run one conv layer as ``config`` says."""
    if config.backend == "spconv":
        return run_spconv(module, x, weight, bias, config)
    return run_native(module, x, weight, bias, config)


def active_mode(training: bool) -> str:
    """'training' when grad is enabled and the module trains, else 'inference'."""
    return "training" if training and torch.is_grad_enabled() else "inference"


__all__ = ["DEFAULT_EXECUTION", "EXEC_BACKENDS", "ExecutionConfig", "MODES", "active_mode",
           "feature_matmul", "map_view", "run_conv"]
