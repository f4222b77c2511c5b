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

__all__ = [
    "BATCH_BITS", "COORD_BITS", "MAX_BATCH", "MAX_SPATIAL", "CoordHash", "conv_output_shape",
    "pack_keys", "unpack_keys", "validate_coords", "SparseTensor", "gather_gemm_scatter",
    "sparse_conv3d", "sparse_inverse_conv3d", "KernelMap", "KernelMapCache", "build_conv_map",
    "build_subm_map", "invert_kernel_map",
]
