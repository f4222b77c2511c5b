// Native CPU kernel maps (submanifold and strided sparse conv), parallel over voxels with OpenMP.
//
// Both maps first fill a neighbour table nbr[o * K + j] = input row feeding output o through
// kernel offset j (or -1); the CSR pairs are that table compacted offset by offset, in output
// order, which is exactly the order of the PyTorch path (per offset, sorted by output row).
//   * submanifold: a sort-merge search along the sorted voxel keys (kernel_map_sorted.cpp) for
//     half of the offsets; the mirrored offset K-1-j is filled from the same hit;
//   * strided conv: every input lists its candidate outputs, an LSD radix sort of their keys
//     gives the outputs sorted by (batch, z, y, x) (= torch.unique(sorted=True)) and the rank
//     of each candidate is its output row.
#include "kernel_map.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <sstream>
#include <string>

#include "coord_hash.h"
#include "kernel_map_sorted.h"
#include "radix_sort.h"

namespace perception_ops {
namespace {

constexpr int64_t kMaxSpatial = int64_t{1} << 16;  // 16 bits per spatial field of a key
constexpr int64_t kMaxBatch = int64_t{1} << 15;    // 15 bits of batch index
constexpr int64_t kMaskWordBits = 32;
constexpr int64_t kParallelGrain = 4096;  // fewer items run on one thread (no wake-up cost)
constexpr const char* kColumnNames[4] = {"batch", "z", "y", "x"};

// Threads the kernels use: torch's setting (torch.set_num_threads), not OpenMP's default.
int num_threads() { return std::max(1, at::get_num_threads()); }

// coords must be a contiguous CPU int32 (N, 4) tensor with N < 2^31 (rows are int32).
void check_coords_tensor(const at::Tensor& coords, const char* name) {
  TORCH_CHECK_VALUE(coords.device().is_cpu(), name, " must be a CPU tensor, got device ",
                    coords.device());
  TORCH_CHECK_VALUE(coords.scalar_type() == at::kInt, name,
                    " must be int32 (batch, z, y, x), got ", coords.scalar_type());
  TORCH_CHECK_VALUE(coords.dim() == 2 && coords.size(1) == 4, name,
                    " must have shape (N, 4) = (batch, z, y, x), got ", coords.sizes());
  TORCH_CHECK_VALUE(coords.is_contiguous(), name, " must be contiguous");
  TORCH_CHECK_VALUE(coords.size(0) < INT32_MAX, name, " has ", coords.size(0),
                    " rows, more than int32 row indices can address");
}

// A (z, y, x) argument: exactly three entries, each in [minimum, maximum].
void check_triple(const std::vector<int64_t>& value, const char* name, int64_t minimum,
                  int64_t maximum) {
  TORCH_CHECK_VALUE(value.size() == 3, name, " must hold 3 entries (z, y, x), got ",
                    value.size());
  for (int64_t v : value) {
    TORCH_CHECK_VALUE(minimum <= v && v <= maximum, name, " entries must be in [", minimum,
                      ", ", maximum, "], got ", v);
  }
}

// Every coordinate inside [0, (max batch, D, H, W)), else ValueError naming the first bad row.
void check_coords_range(const at::Tensor& coords, const std::vector<int64_t>& shape,
                        const char* name) {
  const std::vector<int64_t> upper = {kMaxBatch, shape[0], shape[1], shape[2]};
  const std::vector<int64_t> bad = coords_first_out_of_range(coords, upper);
  for (int col = 0; col < 4; ++col) {
    TORCH_CHECK_VALUE(bad[col] < 0, name, " column '", kColumnNames[col], "' out of range [0, ",
                      upper[col], ") at row ", bad[col]);
  }
}

// Raise the ValueError of the PyTorch path for duplicate coordinates: the smallest duplicated
// key (in (batch, z, y, x) order) and the two lowest rows holding it.  Sequential: error path.
[[noreturn]] void raise_duplicate_error(const int32_t* c, int64_t n) {
  std::vector<int64_t> keys(n);
  for (int64_t r = 0; r < n; ++r) {
    keys[r] = pack_key(c[4 * r], c[4 * r + 1], c[4 * r + 2], c[4 * r + 3]);
  }
  CoordHashTable first_row(std::move(keys));
  int64_t best_key = -1;
  int64_t rows[2] = {-1, -1};
  for (int64_t r = 0; r < n; ++r) {
    const int32_t earlier = first_row.insert(static_cast<int32_t>(r));  // lowest row of the key
    const int64_t key = first_row.key(r);
    if (earlier >= 0 && (best_key < 0 || key < best_key)) {
      best_key = key;
      rows[0] = earlier;
      rows[1] = r;
    }
  }
  const int32_t* q = c + 4 * rows[0];
  std::ostringstream msg;
  msg << "coords contain duplicate coordinates: rows " << rows[0] << " and " << rows[1]
      << " are both [" << q[0] << ", " << q[1] << ", " << q[2] << ", " << q[3]
      << "] (deduplicate, e.g. with torch.unique, first)";
  throw pybind11::value_error(msg.str());
}

// Neighbour table nbr[o * K + j] (input row or -1) -> (in_indices, out_indices, offset_ptr,
// out_masks).  Outputs are split into chunks in order; pass 1 counts the pairs of every
// (chunk, offset) and writes the masks, pass 2 writes each chunk's pairs at its place.
std::vector<at::Tensor> pairs_from_neighbours(const std::vector<int32_t>& nbr,
                                              int64_t num_offsets, int64_t num_out) {
  const int64_t K = num_offsets;
  const int64_t words = (K + kMaskWordBits - 1) / kMaskWordBits;
  const int64_t pieces = 8 * num_threads();  // a few chunks per thread balance the load
  const int64_t chunk = std::max<int64_t>(1024, (num_out + pieces - 1) / pieces);
  const int64_t num_chunks = (num_out + chunk - 1) / chunk;
  std::vector<int64_t> start(num_chunks * K, 0);  // (chunk, offset): count, then first pair
  at::Tensor out_masks = at::zeros({num_out, words}, at::kInt);
  uint32_t* masks = reinterpret_cast<uint32_t*>(out_masks.data_ptr<int32_t>());

#pragma omp parallel for num_threads(num_threads()) schedule(dynamic) if (num_chunks > 1)
  for (int64_t ch = 0; ch < num_chunks; ++ch) {
    int64_t* count = start.data() + ch * K;
    for (int64_t o = ch * chunk; o < std::min(num_out, (ch + 1) * chunk); ++o) {
      const int32_t* row = nbr.data() + o * K;
      for (int64_t w = 0; w < words; ++w) {
        uint32_t word = 0;
        for (int64_t j = w * kMaskWordBits; j < std::min(K, (w + 1) * kMaskWordBits); ++j) {
          const uint32_t hit = row[j] >= 0;  // branch-free: hits are rare
          count[j] += hit;
          word |= hit << (j % kMaskWordBits);
        }
        masks[o * words + w] = word;
      }
    }
  }
  // Offsets in order, chunks (= output ranges) in order inside each offset.
  at::Tensor offset_ptr = at::empty({K + 1}, at::kLong);
  int64_t* ptr = offset_ptr.data_ptr<int64_t>();
  int64_t total = 0;
  for (int64_t j = 0; j < K; ++j) {
    ptr[j] = total;
    for (int64_t ch = 0; ch < num_chunks; ++ch) {
      std::swap(start[ch * K + j], total);
      total += start[ch * K + j];
    }
  }
  ptr[K] = total;

  at::Tensor in_indices = at::empty({total}, at::kInt);
  at::Tensor out_indices = at::empty({total}, at::kInt);
  int32_t* in_idx = in_indices.data_ptr<int32_t>();
  int32_t* out_idx = out_indices.data_ptr<int32_t>();
#pragma omp parallel for num_threads(num_threads()) schedule(dynamic) if (num_chunks > 1)
  for (int64_t ch = 0; ch < num_chunks; ++ch) {
    int64_t* write = start.data() + ch * K;
    for (int64_t o = ch * chunk; o < std::min(num_out, (ch + 1) * chunk); ++o) {
      for (int64_t w = 0; w < words; ++w) {  // visit only the set bits of the mask
        for (uint32_t bits = masks[o * words + w]; bits != 0; bits &= bits - 1) {
          const int64_t j = w * kMaskWordBits + __builtin_ctz(bits);
          in_idx[write[j]] = nbr[o * K + j];
          out_idx[write[j]] = static_cast<int32_t>(o);
          ++write[j];
        }
      }
    }
  }
  return {in_indices, out_indices, offset_ptr, out_masks};
}

// For one axis, the (tap t, output o) pairs of every input coordinate v in [0, size), CSR:
// entries [first[v], first[v + 1]) of tap / out, with o = (v + p - t * d) / s exact and in
// [0, out_size).  Per-axis lists multiply out to the candidates of a voxel.
struct AxisTaps {
  std::vector<int64_t> first, tap, out;

  AxisTaps(int64_t size, int64_t k, int64_t s, int64_t p, int64_t d, int64_t out_size)
      : first(size + 1, 0) {
    for (int64_t v = 0; v < size; ++v) {
      for (int64_t t = 0; t < k; ++t) {
        const int64_t num = v + p - t * d;
        if (num >= 0 && num % s == 0 && num / s < out_size) {
          tap.push_back(t);
          out.push_back(num / s);
        }
      }
      first[v + 1] = static_cast<int64_t>(tap.size());
    }
  }

  int64_t count(int64_t v) const { return first[v + 1] - first[v]; }
};

}  // namespace

std::vector<int64_t> coords_first_out_of_range(const at::Tensor& coords,
                                               const std::vector<int64_t>& upper) {
  check_coords_tensor(coords, "coords");
  TORCH_CHECK_VALUE(upper.size() == 4, "upper must hold 4 bounds (batch, z, y, x), got ",
                    upper.size());
  const int32_t* c = coords.data_ptr<int32_t>();
  const int64_t n = coords.size(0);
  const int64_t hi[4] = {upper[0], upper[1], upper[2], upper[3]};
  int64_t first[4] = {n, n, n, n};  // n = "no bad row"
#pragma omp parallel for num_threads(num_threads()) schedule(static) if (n > kParallelGrain) \
    reduction(min : first[:4])
  for (int64_t r = 0; r < n; ++r) {
    for (int col = 0; col < 4; ++col) {
      const int64_t v = c[4 * r + col];
      if ((v < 0 || v >= hi[col]) && r < first[col]) first[col] = r;
    }
  }
  std::vector<int64_t> out(4);
  for (int col = 0; col < 4; ++col) out[col] = first[col] == n ? -1 : first[col];
  return out;
}

std::vector<at::Tensor> subm_kernel_map(const at::Tensor& coords,
                                        const std::vector<int64_t>& spatial_shape,
                                        const std::vector<int64_t>& kernel_size,
                                        const std::vector<int64_t>& dilation) {
  check_coords_tensor(coords, "coords");
  check_triple(spatial_shape, "spatial_shape", 1, kMaxSpatial);
  check_triple(kernel_size, "kernel_size", 1, kMaxSpatial);
  check_triple(dilation, "dilation", 1, kMaxSpatial);
  for (int64_t k : kernel_size) {
    TORCH_CHECK_VALUE(k % 2 == 1, "kernel_size entries must be odd for a submanifold map, got ",
                      k);
  }
  check_coords_range(coords, spatial_shape, "coords");
  const int64_t n = coords.size(0);
  const int32_t* c = coords.data_ptr<int32_t>();
  SortedKeys sorted;
  if (!sort_keys(c, n, sorted)) raise_duplicate_error(c, n);

  // Offset j = (kd, kh, kw) in C order: input = output + (tap - k / 2) * dilation.  Sorted
  // rows are searched line by line with forward-moving cursors (kernel_map_sorted.cpp).
  const int64_t K = kernel_size[0] * kernel_size[1] * kernel_size[2];
  std::vector<int32_t> nbr(n * K, -1);
  subm_neighbours_sorted(sorted, c, spatial_shape, kernel_size, dilation, num_threads(),
                         nbr.data());
  return pairs_from_neighbours(nbr, K, n);
}

std::vector<at::Tensor> conv_kernel_map(const at::Tensor& coords,
                                        const std::vector<int64_t>& spatial_shape,
                                        const std::vector<int64_t>& out_spatial_shape,
                                        const std::vector<int64_t>& kernel_size,
                                        const std::vector<int64_t>& stride,
                                        const std::vector<int64_t>& padding,
                                        const std::vector<int64_t>& dilation) {
  check_coords_tensor(coords, "coords");
  check_triple(spatial_shape, "spatial_shape", 1, kMaxSpatial);
  check_triple(out_spatial_shape, "out_spatial_shape", 1, kMaxSpatial);
  check_triple(kernel_size, "kernel_size", 1, kMaxSpatial);
  check_triple(stride, "stride", 1, kMaxSpatial);
  check_triple(padding, "padding", 0, kMaxSpatial);
  check_triple(dilation, "dilation", 1, kMaxSpatial);
  check_coords_range(coords, spatial_shape, "coords");
  const int64_t n = coords.size(0);
  const int32_t* c = coords.data_ptr<int32_t>();
  SortedKeys sorted;  // only to reject duplicate coordinates, as the PyTorch path does
  if (!sort_keys(c, n, sorted)) raise_duplicate_error(c, n);

  const int64_t* k = kernel_size.data();
  const int64_t K = k[0] * k[1] * k[2];
  const AxisTaps taps[3] = {
      {spatial_shape[0], k[0], stride[0], padding[0], dilation[0], out_spatial_shape[0]},
      {spatial_shape[1], k[1], stride[1], padding[1], dilation[1], out_spatial_shape[1]},
      {spatial_shape[2], k[2], stride[2], padding[2], dilation[2], out_spatial_shape[2]}};

  // 1. Candidates (output key, payload j << 32 | i) of every input i: the product of its
  //    per-axis taps.  Count first so each input writes its own slice.
  std::vector<int64_t> first(n + 1, 0);
#pragma omp parallel for num_threads(num_threads()) schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) {
    const int32_t* q = c + 4 * i;
    first[i + 1] = taps[0].count(q[1]) * taps[1].count(q[2]) * taps[2].count(q[3]);
  }
  for (int64_t i = 0; i < n; ++i) first[i + 1] += first[i];
  std::vector<int64_t> keys(first[n]), payload(first[n]);
#pragma omp parallel for num_threads(num_threads()) schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) {
    const int32_t* q = c + 4 * i;
    int64_t w = first[i];
    for (int64_t a = taps[0].first[q[1]]; a < taps[0].first[q[1] + 1]; ++a) {
      for (int64_t b = taps[1].first[q[2]]; b < taps[1].first[q[2] + 1]; ++b) {
        for (int64_t e = taps[2].first[q[3]]; e < taps[2].first[q[3] + 1]; ++e) {
          keys[w] = pack_key(q[0], taps[0].out[a], taps[1].out[b], taps[2].out[e]);
          const int64_t j = (taps[0].tap[a] * k[1] + taps[1].tap[b]) * k[2] + taps[2].tap[e];
          payload[w++] = (j << 32) | i;
        }
      }
    }
  }

  // 2. Sorted candidate keys: the distinct keys are the outputs in (batch, z, y, x) order and
  //    a candidate's output row is the rank of its key.
  radix_sort_pairs(keys, payload);
  std::vector<int64_t> out_keys;
  for (size_t idx = 0; idx < keys.size(); ++idx) {
    if (idx == 0 || keys[idx] != keys[idx - 1]) out_keys.push_back(keys[idx]);
  }
  const int64_t m = static_cast<int64_t>(out_keys.size());

  // 3. Neighbour table over the outputs (each (output, offset) has at most one input),
  //    written in output order.
  std::vector<int32_t> nbr(m * K, -1);
  int64_t o = -1;
  for (size_t idx = 0; idx < keys.size(); ++idx) {
    o += idx == 0 || keys[idx] != keys[idx - 1];
    nbr[o * K + (payload[idx] >> 32)] = static_cast<int32_t>(payload[idx] & 0xFFFFFFFF);
  }
  std::vector<at::Tensor> result = pairs_from_neighbours(nbr, K, m);

  at::Tensor out_coords = at::empty({m, 4}, at::kInt);
  int32_t* oc = out_coords.data_ptr<int32_t>();
#pragma omp parallel for num_threads(num_threads()) schedule(static) if (m > kParallelGrain)
  for (int64_t o = 0; o < m; ++o) {
    const int64_t key = out_keys[o];
    oc[4 * o] = static_cast<int32_t>(key >> 48);
    oc[4 * o + 1] = static_cast<int32_t>((key >> 32) & 0xFFFF);
    oc[4 * o + 2] = static_cast<int32_t>((key >> 16) & 0xFFFF);
    oc[4 * o + 3] = static_cast<int32_t>(key & 0xFFFF);
  }
  result.push_back(out_coords);
  return result;
}

}  // namespace perception_ops
