"""Sparse 3-D convolution: coordinate hashing, kernel maps and the gather-GEMM-scatter dataflow.

Coordinates are int32 (batch, z, y, x) as in spconv; weights use spconv 2.x's KRSC layout
(out_channels, kD, kH, kW, in_channels).  :mod:`.reference` holds the dense references.
"""
from .coords import (
    BATCH_BITS,
    COORD_BITS,
    MAX_BATCH,
    MAX_SPATIAL,
    CoordHash,
    conv_output_shape,
    pack_keys,
    unpack_keys,
    validate_coords,
)
from .gather_gemm_scatter import (
    SparseTensor,
    gather_gemm_scatter,
    sparse_conv3d,
    sparse_inverse_conv3d,
)
from .kernel_map import (
    KernelMap,
    KernelMapCache,
    build_conv_map,
    build_subm_map,
    invert_kernel_map,
)
from .modules import SparseConv3d, SparseInverseConv3d, SparseModule, SubMConv3d
from .nn import SparseBatchNorm, SparseReLU, SparseSequential
from .tensor import coords_of, dense, replace_features, to_bev
from .backends import (
    BACKENDS,
    from_spconv,
    get_backend,
    make_sparse_module,
    make_sparse_tensor,
    to_spconv,
)

__all__ = [
    "BATCH_BITS", "COORD_BITS", "MAX_BATCH", "MAX_SPATIAL", "CoordHash", "conv_output_shape",
    "pack_keys", "unpack_keys", "validate_coords", "SparseTensor", "gather_gemm_scatter",
    "sparse_conv3d", "sparse_inverse_conv3d", "KernelMap", "KernelMapCache", "build_conv_map",
    "build_subm_map", "invert_kernel_map",
    "SparseModule", "SubMConv3d", "SparseConv3d", "SparseInverseConv3d", "SparseBatchNorm",
    "SparseReLU", "SparseSequential", "coords_of", "dense", "replace_features", "to_bev",
    "BACKENDS", "get_backend", "make_sparse_module", "make_sparse_tensor", "to_spconv",
    "from_spconv",
]

# Triton GPU kernels of the dataflows (importable without triton: TRITON_AVAILABLE is then False)
from .triton import DATAFLOWS as TRITON_DATAFLOWS, TRITON_AVAILABLE, triton_sparse_matmul  # noqa: E402

__all__ += ["TRITON_DATAFLOWS", "TRITON_AVAILABLE", "triton_sparse_matmul"]

# CPU dataflows (gather-GEMM-scatter with grouping, fetch-on-demand, implicit GEMM, and the
# compiled native_implicit_gemm) with
# explicit backward and a tunable-parameter table for an autotuner
from .dataflows import DATAFLOWS as CPU_DATAFLOWS, DataflowSpec, MapView, sparse_matmul  # noqa: E402

__all__ += ["CPU_DATAFLOWS", "DataflowSpec", "MapView", "sparse_matmul"]

# per-module execution choice (dataflow, parameters, backend) and the autotuner that sets it
from . import autotune  # noqa: E402
from .execution import DEFAULT_EXECUTION, ExecutionConfig  # noqa: E402

__all__ += ["autotune", "DEFAULT_EXECUTION", "ExecutionConfig"]
