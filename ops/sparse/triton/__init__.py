"""Triton GPU kernels of the sparse conv dataflows (forward and backward, autotuned).

Entry point :func:`triton_sparse_matmul`; the kernels are in :mod:`.gather_scatter`,
:mod:`.fetch_on_demand`, :mod:`.implicit_gemm` and :mod:`.backward`.  Importable without
triton (``TRITON_AVAILABLE`` is then False and the entry point raises).
"""
from .api import CONFIG_ENV, DATAFLOWS, SUPPORTED_DTYPES, triton_sparse_matmul
from .common import INTERPRETED, TRITON_AVAILABLE

__all__ = ["CONFIG_ENV", "DATAFLOWS", "INTERPRETED", "SUPPORTED_DTYPES", "TRITON_AVAILABLE",
           "triton_sparse_matmul"]
