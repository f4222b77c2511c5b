// Native CPU sparse convolution (fp32 / fp64): output-stationary implicit GEMM forward (also the
// input gradient, run on the transposed map) and the weight gradient.
//
// Layouts (see perception_ops/sparse/dataflows/native.py):
//   features  (N_in, C_in)              contiguous, float32 or float64
//   weight    (K, C_in, C_out)          offset j = W_j^T of the KRSC weight
//   pairs     in_idx / out_idx int32 (P,), offset_ptr int64 (K + 1,): the kernel map's CSR,
//             offset j owning [offset_ptr[j], offset_ptr[j + 1]), sorted by output row there
// The micro-kernels are compiled for AVX-512, AVX2 and a portable baseline
// (sparse_conv_isa.cpp) and picked at run time from the CPU's features; `isa` forces one.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "sparse_conv_args.h"

namespace perception_ops {

// The pairs of the transposed conv (inputs <-> outputs, same offsets), sorted by their new
// output row (the old input row) inside every offset: (in_idx', out_idx') = (out_idx, in_idx)
// reordered.  When the pairs already are in that order (sorted coordinates: strided and
// submanifold maps of sorted rows) the swapped tensors are returned without a copy.
std::vector<at::Tensor> sparse_conv_transpose_pairs(const at::Tensor& in_idx,
                                                    const at::Tensor& out_idx,
                                                    const at::Tensor& offset_ptr,
                                                    int64_t num_in);

// out (N_out, C_out): out[o] = sum over pairs (i, o) of offset j of features[i] @ weight[j],
// computed in blocks of `block_rows` output rows that stay in cache; no gathered buffer.
at::Tensor sparse_conv_forward(const at::Tensor& features, const at::Tensor& weight,
                               const at::Tensor& in_idx, const at::Tensor& out_idx,
                               const at::Tensor& offset_ptr, int64_t num_out,
                               int64_t block_rows, const std::string& isa);

// (K, C_in, C_out) weight gradient: offset j gets sum over its pairs of
// features[in]^T grad_out[out]; pairs are processed in chunks of `chunk_pairs`, every thread
// accumulating into its own copy (summed at the end, no atomics).
at::Tensor sparse_conv_weight_grad(const at::Tensor& features, const at::Tensor& grad_out,
                                   const at::Tensor& in_idx, const at::Tensor& out_idx,
                                   const at::Tensor& offset_ptr, int64_t chunk_pairs,
                                   const std::string& isa);

// Instruction set `isa` ("auto", "avx512", "avx2" or "generic") resolves to on this CPU;
// ValueError for an unknown name or one the CPU lacks.
std::string sparse_conv_isa(const std::string& isa);

}  // namespace perception_ops
