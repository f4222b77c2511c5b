// Checks and transposition of the pairs of a kernel map for the native sparse conv
// (sparse_conv_pairs.cpp): one pass over the pairs validates them and finds each row block's
// pair ranges; the transposed conv's pairs are re-sorted only when their order needs it.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace perception_ops {
namespace sparse_conv {

// ValueError unless t is a contiguous CPU tensor with dim dimensions.
void check_cpu_contiguous(const at::Tensor& t, const char* name, int64_t dim);
// ValueError unless t is float32 or float64.
void check_float(const at::Tensor& t, const char* name);

// First bad positions (-1 = none) of a scan, and when blocks > 0 the block bounds:
// bounds[b * K + j] = first pair of offset j whose output row is >= b * block (b <= blocks).
struct PairScan {
  int64_t bad_in = -1, bad_out = -1, unsorted_out = -1, unsorted_in = -1;
  std::vector<int64_t> bounds;
};

// in_idx / out_idx int32 (P,) with indices in [0, num_in) / [0, num_out), offset_ptr int64
// (K + 1,) from 0 to P, non-decreasing; ValueError naming the first bad entry otherwise.
// One pass (a single parallel region: every barrier costs on a busy machine).
PairScan check_pairs(const at::Tensor& in_idx, const at::Tensor& out_idx,
                     const at::Tensor& offset_ptr, int64_t num_in, int64_t num_out,
                     int64_t blocks = 0, int64_t block = 1);

}  // namespace sparse_conv
}  // namespace perception_ops
