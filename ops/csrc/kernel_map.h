// Native CPU kernel maps of sparse 3-D convolutions (see perception_ops/sparse/kernel_map.py).
//
// They return exactly the fields the PyTorch reference path computes:
//   in_indices int32 (P,), out_indices int32 (P,)  pairs per offset, sorted by output row
//   offset_ptr int64 (K + 1,)                        CSR pointer over offsets (C order)
//   out_masks  int32 (num_out, ceil(K / 32))         bit j % 32 of word j / 32 = offset j active
// and, for strided conv maps, out_coords int32 (M, 4) sorted by (batch, z, y, x).
// Coordinates are contiguous CPU int32 (N, 4) = (batch, z, y, x), already range-checked by
// the Python caller (the kernels check again and raise ValueError naming the argument).
#pragma once

#include <torch/extension.h>

#include <vector>

namespace perception_ops {

// First out-of-range row per column (batch, z, y, x), -1 where the column is fine:
// column c is out of range where coords[:, c] < 0 or >= upper[c].
std::vector<int64_t> coords_first_out_of_range(const at::Tensor& coords,
                                               const std::vector<int64_t>& upper);

// Submanifold map (odd kernels): input = output + (offset - k // 2) * dilation.
// Returns (in_indices, out_indices, offset_ptr, out_masks).
std::vector<at::Tensor> subm_kernel_map(const at::Tensor& coords,
                                        const std::vector<int64_t>& spatial_shape,
                                        const std::vector<int64_t>& kernel_size,
                                        const std::vector<int64_t>& dilation);

// Strided conv map: output o receives input i at offset j iff i = o * s - p + j * d.
// Returns (in_indices, out_indices, offset_ptr, out_masks, out_coords).
std::vector<at::Tensor> conv_kernel_map(const at::Tensor& coords,
                                        const std::vector<int64_t>& spatial_shape,
                                        const std::vector<int64_t>& out_spatial_shape,
                                        const std::vector<int64_t>& kernel_size,
                                        const std::vector<int64_t>& stride,
                                        const std::vector<int64_t>& padding,
                                        const std::vector<int64_t>& dilation);

}  // namespace perception_ops
