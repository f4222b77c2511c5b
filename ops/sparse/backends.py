"""Backend switch of the sparse engine: ``native`` (ours) or ``spconv`` (spconv 2.x), chosen
per model by a config string, behind one module API::

    conv = make_sparse_module("SubMConv3d", 16, 32, 3, indice_key="subm1", backend=cfg.backend)
    x = make_sparse_tensor(features, coords, spatial_shape, batch_size, backend=cfg.backend)

Module names: SubMConv3d, SparseConv3d, SparseInverseConv3d, SparseSequential,
SparseBatchNorm, SparseReLU; constructor arguments are spconv's, weights KRSC in both, so
state dicts move between backends.  :func:`to_spconv` / :func:`from_spconv` convert tensors
(the kernel-map cache / indice dict is not carried over).  Backend-neutral dense views:
:func:`.tensor.dense`, :func:`.tensor.to_bev`.

spconv on the CPU (done by :func:`load_spconv`, never at import time of this package):

* conv ``algo=None`` becomes ``ConvAlgo.Native`` when CUDA is unavailable: spconv's default
  (MaskImplicitGemm) is CUDA-only.  Strings ``"native"``, ``"mask_implicit_gemm"``,
  ``"mask_split_implicit_gemm"`` name the other algorithms.
* :func:`patch_spconv_cpu_stream` replaces ``spconv.pytorch.cppcore.get_current_stream`` (and
  the copies bound by ``from ... import`` in ``spconv.pytorch.ops`` / ``hash`` / ``utils`` /
  ``quantization.*``) by a wrapper returning stream 0 when CUDA is unavailable.  spconv calls
  it unconditionally in its Python CPU paths, e.g. ``ops.indice_conv_backward`` (taken when
  ``GEMM_CPP`` is None, as in the CPU-only wheel), where ``torch.cuda.current_stream()``
  raises "Torch not compiled with CUDA enabled".  With CUDA present the original is called.
* The CPU-only ``spconv`` wheel (2.3.8) gives wrong results with more than one torch thread;
  use ``spconv-cu120==2.3.6`` (correct on the CPU with ConvAlgo.Native).  A RuntimeWarning is
  raised when a CPU-only build is loaded with several threads.
"""
from __future__ import annotations

import importlib
import sys
import warnings
from types import MappingProxyType, ModuleType
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from .gather_gemm_scatter import SparseTensor
from .modules import SparseConv3d, SparseInverseConv3d, SubMConv3d
from .nn import SparseBatchNorm, SparseReLU, SparseSequential

CONV_NAMES = ("SubMConv3d", "SparseConv3d", "SparseInverseConv3d")
MODULE_NAMES = CONV_NAMES + ("SparseSequential", "SparseBatchNorm", "SparseReLU")
SPCONV_INSTALL_HINT = ("pip install 'perception-stack[spconv]' (spconv-cu120==2.3.6; its "
                       "ConvAlgo.Native path is correct on the CPU)")
_PATCH_MARK = "_perception_cpu_safe"


def _cpu_safe_stream(original: Callable[[], int]) -> Callable[[], int]:
    def get_current_stream() -> int:
        """spconv's stream getter, returning 0 (no stream) when CUDA is unavailable."""
        return original() if torch.cuda.is_available() else 0
    setattr(get_current_stream, _PATCH_MARK, True)
    return get_current_stream


def patch_spconv_cpu_stream() -> None:
    """Make spconv's ``get_current_stream`` return 0 without CUDA (see module doc); idempotent."""
    cppcore = importlib.import_module("spconv.pytorch.cppcore")
    original = cppcore.get_current_stream
    if getattr(original, _PATCH_MARK, False):
        return
    patched = _cpu_safe_stream(original)
    for name, module in list(sys.modules.items()):
        if (name == "spconv" or name.startswith("spconv.")) and \
                getattr(module, "get_current_stream", None) is original:
            module.get_current_stream = patched  # type: ignore[attr-defined]


def load_spconv() -> ModuleType:
    """``spconv.pytorch``, patched for the CPU; ImportError with the install hint if absent."""
    try:
        with warnings.catch_warnings():  # spconv uses deprecated torch.cuda.amp decorators
            warnings.simplefilter("ignore", FutureWarning)
            spconv = importlib.import_module("spconv.pytorch")
    except (ImportError, OSError) as e:  # OSError: a broken binary extension
        raise ImportError(f"sparse backend 'spconv' needs spconv 2.x, which is not "
                          f"importable ({e}); {SPCONV_INSTALL_HINT}") from e
    patch_spconv_cpu_stream()
    cpu_only = getattr(importlib.import_module("spconv.cppconstants"), "CPU_ONLY_BUILD", False)
    if cpu_only and torch.get_num_threads() > 1:
        warnings.warn(f"the CPU-only spconv build gives wrong results with more than one torch "
                      f"thread (now {torch.get_num_threads()}); {SPCONV_INSTALL_HINT}",
                      RuntimeWarning, stacklevel=2)
    return spconv


def _spconv_algo(spconv: ModuleType, algo: Any) -> Any:
    """ConvAlgo for a conv: None -> Native without CUDA (spconv's default needs CUDA)."""
    conv_algo = spconv.ConvAlgo
    if algo is None:
        return None if torch.cuda.is_available() else conv_algo.Native
    if isinstance(algo, str):
        names = {"native": "Native", "mask_implicit_gemm": "MaskImplicitGemm",
                 "mask_split_implicit_gemm": "MaskSplitImplicitGemm"}
        if algo.lower() not in names:
            raise ValueError(f"unknown spconv algo {algo!r}; known: {sorted(names)}")
        return getattr(conv_algo, names[algo.lower()])
    return algo


class NativeBackend:
    """Our gather-GEMM-scatter engine (always available)."""

    name = "native"

    def is_available(self) -> bool:
        return True

    def modules(self) -> Mapping[str, Callable[..., nn.Module]]:
        return {"SubMConv3d": SubMConv3d, "SparseConv3d": SparseConv3d,
                "SparseInverseConv3d": SparseInverseConv3d, "SparseSequential": SparseSequential,
                "SparseBatchNorm": SparseBatchNorm, "SparseReLU": SparseReLU}

    def module(self, name: str, *args: Any, **kwargs: Any) -> nn.Module:
        return _lookup(self, name)(*args, **kwargs)

    def tensor(self, features: Tensor, coords: Tensor, spatial_shape: Sequence[int],
               batch_size: int) -> SparseTensor:
        return SparseTensor(features, coords, tuple(int(s) for s in spatial_shape), batch_size)


class SpconvBackend:
    """spconv 2.x modules (``spconv.pytorch``), imported and patched on first use."""

    name = "spconv"

    def is_available(self) -> bool:
        try:
            load_spconv()
        except ImportError:
            return False
        return True

    def modules(self) -> Mapping[str, Callable[..., nn.Module]]:
        spconv = load_spconv()
        return {name: getattr(spconv, name) for name in MODULE_NAMES}

    def module(self, name: str, *args: Any, **kwargs: Any) -> nn.Module:
        ctor = _lookup(self, name)
        if name in CONV_NAMES:
            kwargs["algo"] = _spconv_algo(load_spconv(), kwargs.get("algo"))
        return ctor(*args, **kwargs)

    def tensor(self, features: Tensor, coords: Tensor, spatial_shape: Sequence[int],
               batch_size: int) -> Any:
        return load_spconv().SparseConvTensor(features, coords, [int(s) for s in spatial_shape],
                                              batch_size)


def _lookup(backend: NativeBackend | SpconvBackend, name: str) -> Callable[..., nn.Module]:
    table = backend.modules()
    if name not in table:
        raise ValueError(f"sparse backend {backend.name!r} has no module {name!r}; known: "
                         f"{sorted(table)}")
    return table[name]


BACKENDS: Mapping[str, NativeBackend | SpconvBackend] = MappingProxyType(
    {"native": NativeBackend(), "spconv": SpconvBackend()})


def get_backend(name: str) -> NativeBackend | SpconvBackend:
    """The backend named by a config string ('native' or 'spconv')."""
    if name not in BACKENDS:
        raise ValueError(f"unknown sparse backend {name!r}; known: {sorted(BACKENDS)}")
    return BACKENDS[name]


def make_sparse_module(name: str, *args: Any, backend: str = "native",
                       **kwargs: Any) -> nn.Module:
    """Module ``name`` of ``backend`` built with spconv's constructor arguments."""
    return get_backend(backend).module(name, *args, **kwargs)


def make_sparse_tensor(features: Tensor, coords: Tensor, spatial_shape: Sequence[int],
                       batch_size: int, backend: str = "native") -> Any:
    """Input tensor of ``backend``: our SparseTensor or spconv's SparseConvTensor."""
    return get_backend(backend).tensor(features, coords, spatial_shape, batch_size)


def to_spconv(x: SparseTensor) -> Any:
    """Our SparseTensor as a fresh spconv SparseConvTensor (same features, int32 indices)."""
    if not isinstance(x, SparseTensor):
        raise TypeError(f"to_spconv expects a SparseTensor, got {type(x).__name__}")
    return BACKENDS["spconv"].tensor(x.features, x.coords, x.spatial_shape, x.batch_size)


def from_spconv(x: Any) -> SparseTensor:
    """A spconv SparseConvTensor as our SparseTensor (fresh kernel-map cache)."""
    if not hasattr(x, "indices") or not hasattr(x, "features"):
        raise TypeError(f"from_spconv expects a spconv SparseConvTensor, got {type(x).__name__}")
    return SparseTensor(x.features, x.indices.to(torch.int32),
                        tuple(int(s) for s in x.spatial_shape), int(x.batch_size))
