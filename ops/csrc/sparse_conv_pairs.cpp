// Checks and transposition of kernel-map pairs (see sparse_conv_pairs.h).
#include "sparse_conv_pairs.h"

#include <ATen/Parallel.h>

#include <algorithm>

#include "sparse_conv.h"

namespace perception_ops {
namespace sparse_conv {
namespace {

int num_threads() { return std::max(1, at::get_num_threads()); }

void check_index(const at::Tensor& t, const char* name) {
  check_cpu_contiguous(t, name, 1);
  TORCH_CHECK_VALUE(t.scalar_type() == at::kInt, name, " must be int32, got ", t.scalar_type());
}

// offset_ptr: int64 (K + 1,), 0 first, non-decreasing, num_pairs last.  Returns K.
int64_t check_offset_ptr(const at::Tensor& ptr, int64_t num_pairs) {
  check_cpu_contiguous(ptr, "offset_ptr", 1);
  TORCH_CHECK_VALUE(ptr.scalar_type() == at::kLong, "offset_ptr must be int64, got ",
                    ptr.scalar_type());
  const int64_t k = ptr.size(0) - 1;
  TORCH_CHECK_VALUE(k >= 0, "offset_ptr must hold K + 1 >= 1 entries");
  const int64_t* p = ptr.data_ptr<int64_t>();
  TORCH_CHECK_VALUE(p[0] == 0 && p[k] == num_pairs, "offset_ptr must run from 0 to the ",
                    num_pairs, " pairs, got ", p[0], " .. ", p[k]);
  for (int64_t j = 0; j < k; ++j) {
    TORCH_CHECK_VALUE(p[j] <= p[j + 1], "offset_ptr must be non-decreasing, got ", p[j],
                      " before ", p[j + 1], " at offset ", j);
  }
  return k;
}

// One pass over the pairs, offset by offset (see PairScan).
PairScan scan_pairs(const int32_t* in, const int32_t* out, const int64_t* ptr, int64_t k,
                    int64_t num_in, int64_t num_out, int64_t blocks, int64_t block) {
  PairScan scan;
  scan.bounds.resize(blocks > 0 ? (blocks + 1) * k : 0);
  std::vector<int64_t> first(4 * k, -1);  // per offset: bad in, bad out, unsorted out / in
#pragma omp parallel for num_threads(num_threads()) schedule(dynamic, 1) if (ptr[k] > 65536)
  for (int64_t j = 0; j < k; ++j) {
    int64_t* f = first.data() + 4 * j;
    int64_t b = 0;
    for (int64_t p = ptr[j]; p < ptr[j + 1]; ++p) {
      const int32_t i = in[p], o = out[p];
      if ((i < 0 || i >= num_in) && f[0] < 0) f[0] = p;
      if ((o < 0 || o >= num_out) && f[1] < 0) f[1] = p;
      if (p > ptr[j] && o < out[p - 1] && f[2] < 0) f[2] = p;
      if (p > ptr[j] && i < in[p - 1] && f[3] < 0) f[3] = p;
      for (; b < blocks && b * block <= o; ++b) scan.bounds[b * k + j] = p;
    }
    for (; b <= blocks && blocks > 0; ++b) scan.bounds[b * k + j] = ptr[j + 1];
  }
  int64_t* fields[4] = {&scan.bad_in, &scan.bad_out, &scan.unsorted_out, &scan.unsorted_in};
  for (int64_t j = 0; j < k; ++j) {  // positions grow with j: the first offset's hit wins
    for (int e = 0; e < 4; ++e) {
      if (*fields[e] < 0) *fields[e] = first[4 * j + e];
    }
  }
  return scan;
}

}  // namespace

void check_cpu_contiguous(const at::Tensor& t, const char* name, int64_t dim) {
  TORCH_CHECK_VALUE(t.device().is_cpu(), name, " must be a CPU tensor, got device ", t.device());
  TORCH_CHECK_VALUE(t.dim() == dim, name, " must have ", dim, " dimensions, got shape ",
                    t.sizes());
  TORCH_CHECK_VALUE(t.is_contiguous(), name, " must be contiguous");
}

void check_float(const at::Tensor& t, const char* name) {
  TORCH_CHECK_VALUE(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, name,
                    " must be float32 or float64 (other dtypes use the PyTorch dataflows), got ",
                    t.scalar_type());
}

PairScan check_pairs(const at::Tensor& in_idx, const at::Tensor& out_idx,
                     const at::Tensor& offset_ptr, int64_t num_in, int64_t num_out,
                     int64_t blocks, int64_t block) {
  check_index(in_idx, "in_idx");
  check_index(out_idx, "out_idx");
  TORCH_CHECK_VALUE(in_idx.size(0) == out_idx.size(0), "in_idx and out_idx lengths differ: ",
                    in_idx.size(0), " vs ", out_idx.size(0));
  const int64_t k = check_offset_ptr(offset_ptr, in_idx.size(0));
  const int32_t* in = in_idx.data_ptr<int32_t>();
  const int32_t* out = out_idx.data_ptr<int32_t>();
  PairScan scan = scan_pairs(in, out, offset_ptr.data_ptr<int64_t>(), k, num_in, num_out,
                             blocks, block);
  TORCH_CHECK_VALUE(scan.bad_in < 0, "in_idx[", scan.bad_in, "] = ",
                    scan.bad_in < 0 ? 0 : in[scan.bad_in], " outside [0, ", num_in, ")");
  TORCH_CHECK_VALUE(scan.bad_out < 0, "out_idx[", scan.bad_out, "] = ",
                    scan.bad_out < 0 ? 0 : out[scan.bad_out], " outside [0, ", num_out, ")");
  return scan;
}

}  // namespace sparse_conv

std::vector<at::Tensor> sparse_conv_transpose_pairs(const at::Tensor& in_idx,
                                                    const at::Tensor& out_idx,
                                                    const at::Tensor& offset_ptr,
                                                    int64_t num_in) {
  TORCH_CHECK_VALUE(num_in >= 0 && num_in < INT32_MAX, "num_in must be in [0, 2^31 - 1), got ",
                    num_in);
  const sparse_conv::PairScan scan =
      sparse_conv::check_pairs(in_idx, out_idx, offset_ptr, num_in, INT32_MAX);
  if (scan.unsorted_in < 0) return {out_idx, in_idx};
  const int64_t k = offset_ptr.size(0) - 1;
  const int64_t* ptr = offset_ptr.data_ptr<int64_t>();
  const int32_t* in = in_idx.data_ptr<int32_t>();
  const int32_t* out = out_idx.data_ptr<int32_t>();
  // Stable counting sort of every offset's pairs by input row (one count array per thread).
  at::Tensor t_in = at::empty_like(in_idx), t_out = at::empty_like(out_idx);
  int32_t* ti = t_in.data_ptr<int32_t>();
  int32_t* to = t_out.data_ptr<int32_t>();
#pragma omp parallel num_threads(sparse_conv::num_threads()) if (ptr[k] > 65536)
  {
    std::vector<int64_t> start(num_in + 1);
#pragma omp for schedule(dynamic, 1)
    for (int64_t j = 0; j < k; ++j) {
      std::fill(start.begin(), start.end(), 0);
      for (int64_t p = ptr[j]; p < ptr[j + 1]; ++p) ++start[in[p] + 1];
      start[0] = ptr[j];
      for (int64_t r = 0; r < num_in; ++r) start[r + 1] += start[r];
      for (int64_t p = ptr[j]; p < ptr[j + 1]; ++p) {
        const int64_t dst = start[in[p]]++;
        ti[dst] = out[p];
        to[dst] = in[p];
      }
    }
  }
  return {t_in, t_out};
}

}  // namespace perception_ops
