// BEV pooling, native CPU kernels (interval method), registered as torch.ops.perception_ops.*.
//
// The frustum points of all cameras are ranked by the BEV cell they fall in and sorted once
// (Python side, perception_ops.bev_pool.plan); the sorted points form intervals, one per
// non-empty cell.  Two ops, each with forward and backward:
//   * bev_pool: features (N, C).  Forward: out[cells[m]] = sum of features[order[p]] over the
//     interval m, OpenMP over intervals, summed in the opmath type (float for half/bfloat16/
//     float, double for double), no atomics: deterministic.  Backward: the op is a sum, so
//     grad_features[i] = grad_cells[ranks[i]] (zero for a dropped point, rank -1), a gather
//     OpenMP over points.
//   * bev_pool_depth: the LSS outer product depth (G, D, HW) x context (G, HW, C) pooled
//     without materializing the (G * D * HW, C) features (BEVPoolv2's idea).  Backward: one
//     gather pass over the pixels gives both gradients.
// The ops are declared in a TORCH_LIBRARY_FRAGMENT of their own so they need no pybind entry;
// importing perception_ops._C registers them.
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>
#include <torch/types.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <vector>

namespace perception_ops {
namespace {

constexpr int64_t kChannelBlock = 128;    // channels summed at once (stack accumulator)
constexpr int64_t kIntervalGrain = 256;   // fewer intervals run on one thread
constexpr int64_t kPointGrain = 4096;     // fewer points run on one thread
constexpr int64_t kPrefetchRows = 4;      // rows summed ahead of the one being prefetched
constexpr int64_t kCacheLine = 64;

// Threads the kernels use: torch's setting (torch.set_num_threads), not OpenMP's default.
int num_threads() { return std::max(1, at::get_num_threads()); }

void check_index(const at::Tensor& t, const char* name, int64_t length) {
  TORCH_CHECK_VALUE(t.device().is_cpu(), "bev_pool: ", name, " must be a CPU tensor, got ",
                    t.device());
  TORCH_CHECK_VALUE(t.scalar_type() == at::kLong, "bev_pool: ", name, " must be int64, got ",
                    t.scalar_type());
  TORCH_CHECK_VALUE(t.dim() == 1, "bev_pool: ", name, " must be 1-D, got shape ", t.sizes());
  if (length >= 0) {
    TORCH_CHECK_VALUE(t.size(0) == length, "bev_pool: ", name, " must have ", length,
                      " entries, got ", t.size(0));
  }
}

// Every interval inside order, every cell inside the output, every order entry a point:
// a bad plan raises here instead of reading or writing out of bounds.
void check_plan(const int64_t* order, int64_t order_len, int64_t num_points, const int64_t* starts,
                const int64_t* lengths, const int64_t* cells, int64_t num_intervals,
                int64_t num_cells) {
  int64_t bad_interval = -1;
  int64_t bad_order = -1;
#pragma omp parallel for num_threads(num_threads()) schedule(static) \
    if (num_intervals > kPointGrain) reduction(max : bad_interval)
  for (int64_t m = 0; m < num_intervals; ++m) {
    const bool ok = starts[m] >= 0 && lengths[m] >= 0 && starts[m] <= order_len - lengths[m] &&
                    cells[m] >= 0 && cells[m] < num_cells;
    if (!ok) bad_interval = std::max(bad_interval, m);
  }
  TORCH_CHECK_VALUE(bad_interval < 0, "bev_pool forward: interval ", bad_interval,
                    " (start ", bad_interval >= 0 ? starts[bad_interval] : 0, ", length ",
                    bad_interval >= 0 ? lengths[bad_interval] : 0, ", cell ",
                    bad_interval >= 0 ? cells[bad_interval] : 0, ") is outside the ", order_len,
                    " sorted points or the ", num_cells, " cells");
#pragma omp parallel for num_threads(num_threads()) schedule(static) \
    if (order_len > kPointGrain) reduction(max : bad_order)
  for (int64_t p = 0; p < order_len; ++p) {
    if (order[p] < 0 || order[p] >= num_points) bad_order = std::max(bad_order, p);
  }
  TORCH_CHECK_VALUE(bad_order < 0, "bev_pool forward: order[", bad_order, "] = ",
                    bad_order >= 0 ? order[bad_order] : 0, " is not one of the ", num_points,
                    " points");
}

void check_floating(const at::Tensor& t, const char* name, int64_t dims) {
  TORCH_CHECK_VALUE(t.device().is_cpu(), "bev_pool: ", name, " must be a CPU tensor, got ",
                    t.device());
  TORCH_CHECK_VALUE(t.dim() == dims, "bev_pool: ", name, " must have ", dims,
                    " dimensions, got shape ", t.sizes());
  TORCH_CHECK_VALUE(at::isFloatingType(t.scalar_type()), "bev_pool: ", name,
                    " must be a floating tensor, got ", t.scalar_type());
}

void check_same_dtype(const at::Tensor& a, const at::Tensor& b, const char* what) {
  TORCH_CHECK_VALUE(a.scalar_type() == b.scalar_type(), "bev_pool: ", what,
                    " must share a dtype, got ", a.scalar_type(), " and ", b.scalar_type());
}

// The plan's interval tensors, validated (see check_plan) and contiguous.
struct Intervals {
  at::Tensor order, starts, lengths, cells;
  int64_t count() const { return starts.size(0); }
};

Intervals intervals_of(const at::Tensor& order, const at::Tensor& starts,
                       const at::Tensor& lengths, const at::Tensor& cells, int64_t num_points,
                       int64_t num_cells) {
  check_index(order, "order", -1);
  check_index(starts, "interval_starts", -1);
  check_index(lengths, "interval_lengths", starts.size(0));
  check_index(cells, "interval_cells", starts.size(0));
  TORCH_CHECK_VALUE(num_cells >= 0, "bev_pool: num_cells must be >= 0, got ", num_cells);
  Intervals out{order.contiguous(), starts.contiguous(), lengths.contiguous(),
                cells.contiguous()};
  check_plan(out.order.data_ptr<int64_t>(), out.order.size(0), num_points,
             out.starts.data_ptr<int64_t>(), out.lengths.data_ptr<int64_t>(),
             out.cells.data_ptr<int64_t>(), out.count(), num_cells);
  return out;
}

// Point q of the plain op is feature row q.
template <typename scalar_t>
struct FeatureRows {
  static constexpr bool kWeighted = false;
  const scalar_t* features;
  int64_t channels;
  const scalar_t* row(int64_t q) const { return features + q * channels; }
  scalar_t weight(int64_t) const { return scalar_t(1); }
};

// Point q = (g * D + d) * HW + s of the fused op is context row g * HW + s times depth[q].
template <typename scalar_t>
struct DepthContextRows {
  static constexpr bool kWeighted = true;
  const scalar_t* depth;
  const scalar_t* context;
  int64_t channels, dhw, hw;
  const scalar_t* row(int64_t q) const { return context + ((q / dhw) * hw + q % hw) * channels; }
  scalar_t weight(int64_t q) const { return depth[q]; }
};

template <typename scalar_t, typename Rows>
void pool_intervals(const Rows& source, int64_t channels, const Intervals& plan, scalar_t* out) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t* order = plan.order.data_ptr<int64_t>();
  const int64_t* starts = plan.starts.data_ptr<int64_t>();
  const int64_t* lengths = plan.lengths.data_ptr<int64_t>();
  const int64_t* cells = plan.cells.data_ptr<int64_t>();
  const int64_t num_intervals = plan.count();
#pragma omp parallel for num_threads(num_threads()) schedule(dynamic, 64) \
    if (num_intervals > kIntervalGrain)
  for (int64_t m = 0; m < num_intervals; ++m) {
    const int64_t* rows = order + starts[m];
    const int64_t count = lengths[m];
    scalar_t* dst = out + cells[m] * channels;
    for (int64_t c0 = 0; c0 < channels; c0 += kChannelBlock) {
      const int64_t width = std::min(kChannelBlock, channels - c0);
      const int64_t row_bytes = width * static_cast<int64_t>(sizeof(scalar_t));
      acc_t acc[kChannelBlock];
      for (int64_t c = 0; c < width; ++c) acc[c] = acc_t(0);
      for (int64_t p = 0; p < count; ++p) {
        if (p + kPrefetchRows < count) {  // rows are scattered: fetch every line of a later one
          const char* ahead =
              reinterpret_cast<const char*>(source.row(rows[p + kPrefetchRows]) + c0);
          for (int64_t byte = 0; byte < row_bytes; byte += kCacheLine) {
            __builtin_prefetch(ahead + byte);
          }
        }
        const scalar_t* src = source.row(rows[p]) + c0;
        if constexpr (Rows::kWeighted) {
          const acc_t w = static_cast<acc_t>(source.weight(rows[p]));
          for (int64_t c = 0; c < width; ++c) acc[c] += w * static_cast<acc_t>(src[c]);
        } else {
          for (int64_t c = 0; c < width; ++c) acc[c] += static_cast<acc_t>(src[c]);
        }
      }
      for (int64_t c = 0; c < width; ++c) dst[c0 + c] = static_cast<scalar_t>(acc[c]);
    }
  }
}

// (num_cells, C) sums of features (N, C) over the intervals; other cells stay zero.
at::Tensor bev_pool_forward(const at::Tensor& features, const at::Tensor& order,
                            const at::Tensor& interval_starts, const at::Tensor& interval_lengths,
                            const at::Tensor& interval_cells, int64_t num_cells) {
  check_floating(features, "features", 2);
  const at::Tensor feats = features.contiguous();
  const Intervals plan = intervals_of(order, interval_starts, interval_lengths, interval_cells,
                                      feats.size(0), num_cells);
  const int64_t channels = feats.size(1);
  at::Tensor out = at::zeros({num_cells, channels}, feats.options());
  if (plan.count() == 0 || channels == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, feats.scalar_type(),
                                  "bev_pool_forward", [&] {
    const FeatureRows<scalar_t> rows{feats.data_ptr<scalar_t>(), channels};
    pool_intervals<scalar_t>(rows, channels, plan, out.data_ptr<scalar_t>());
  });
  return out;
}

// (num_cells, C) sums of depth (G, D, HW) x context (G, HW, C) (the LSS outer product, never
// materialized) over the intervals of the G * D * HW points.
at::Tensor bev_pool_depth_forward(const at::Tensor& depth, const at::Tensor& context,
                                  const at::Tensor& order, const at::Tensor& interval_starts,
                                  const at::Tensor& interval_lengths,
                                  const at::Tensor& interval_cells, int64_t num_cells) {
  check_floating(depth, "depth", 3);
  check_floating(context, "context", 3);
  check_same_dtype(depth, context, "depth and context");
  TORCH_CHECK_VALUE(context.size(0) == depth.size(0) && context.size(1) == depth.size(2),
                    "bev_pool: context (G, HW, C) ", context.sizes(),
                    " does not match depth (G, D, HW) ", depth.sizes());
  const at::Tensor dep = depth.contiguous();
  const at::Tensor ctx = context.contiguous();
  const Intervals plan = intervals_of(order, interval_starts, interval_lengths, interval_cells,
                                      dep.numel(), num_cells);
  const int64_t channels = ctx.size(2);
  at::Tensor out = at::zeros({num_cells, channels}, ctx.options());
  if (plan.count() == 0 || channels == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, ctx.scalar_type(),
                                  "bev_pool_depth_forward", [&] {
    const DepthContextRows<scalar_t> rows{dep.data_ptr<scalar_t>(), ctx.data_ptr<scalar_t>(),
                                          channels, dep.size(1) * dep.size(2), dep.size(2)};
    pool_intervals<scalar_t>(rows, channels, plan, out.data_ptr<scalar_t>());
  });
  return out;
}

// Raise naming the first point whose rank is past the gradient's rows.
void check_ranks(const int64_t* rank, int64_t n, int64_t num_cells) {
  int64_t bad = -1;
#pragma omp parallel for num_threads(num_threads()) schedule(static) if (n > kPointGrain) \
    reduction(max : bad)
  for (int64_t i = 0; i < n; ++i) {
    if (rank[i] >= num_cells) bad = std::max(bad, i);
  }
  TORCH_CHECK_VALUE(bad < 0, "bev_pool backward: ranks[", bad, "] = ", bad >= 0 ? rank[bad] : 0,
                    " is outside the ", num_cells, " cells of grad_cells");
}

// (N, C) gradient of the features: row i is grad_cells[ranks[i]], zero where ranks[i] < 0.
at::Tensor bev_pool_backward(const at::Tensor& grad_cells, const at::Tensor& ranks) {
  check_floating(grad_cells, "grad_cells", 2);
  check_index(ranks, "ranks", -1);
  const at::Tensor grad = grad_cells.contiguous();
  const at::Tensor rk = ranks.contiguous();
  const int64_t n = rk.size(0);
  const int64_t* rank = rk.data_ptr<int64_t>();
  check_ranks(rank, n, grad.size(0));
  at::Tensor out = at::empty({n, grad.size(1)}, grad.options());
  if (out.numel() == 0) return out;
  const size_t row_bytes = static_cast<size_t>(grad.size(1)) * grad.element_size();
  const char* src = static_cast<const char*>(grad.data_ptr());
  char* dst = static_cast<char*>(out.data_ptr());
#pragma omp parallel for num_threads(num_threads()) schedule(static) if (n > kPointGrain)
  for (int64_t i = 0; i < n; ++i) {
    char* row = dst + static_cast<size_t>(i) * row_bytes;
    if (rank[i] < 0) {
      std::memset(row, 0, row_bytes);
    } else {
      std::memcpy(row, src + static_cast<size_t>(rank[i]) * row_bytes, row_bytes);
    }
  }
  return out;
}

// <a, b> over n entries in kLanes independent partial sums, so the compiler vectorizes it (a
// single running sum is a serial chain of float adds it may not reorder).
template <typename scalar_t>
at::opmath_type<scalar_t> dot(const scalar_t* a, const scalar_t* b, int64_t n) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int64_t kLanes = 8;
  acc_t part[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int64_t k = 0; k < kLanes; ++k) {
      part[k] += static_cast<acc_t>(a[i + k]) * static_cast<acc_t>(b[i + k]);
    }
  }
  for (; i < n; ++i) part[0] += static_cast<acc_t>(a[i]) * static_cast<acc_t>(b[i]);
  acc_t total = 0;
  for (int64_t k = 0; k < kLanes; ++k) total += part[k];
  return total;
}

// One pass over pixels (the context rows): for each of the pixel's depth bins q the cell's
// gradient row is read once and gives d/d depth[q] = <grad_cells[rank q], context[pixel]> and
// its share depth[q] * grad_cells[rank q] of d/d context[pixel].  Either output may be null.
template <typename scalar_t>
void depth_context_grads(const scalar_t* grad, const scalar_t* depth, const scalar_t* context,
                         const int64_t* rank, int64_t groups, int64_t bins, int64_t hw,
                         int64_t channels, scalar_t* grad_depth, scalar_t* grad_context) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t pixels = groups * hw;
#pragma omp parallel num_threads(num_threads()) if (pixels > 64)
  {
    std::vector<acc_t> acc(static_cast<size_t>(channels));
#pragma omp for schedule(static)
    for (int64_t pixel = 0; pixel < pixels; ++pixel) {
      std::fill(acc.begin(), acc.end(), acc_t(0));
      const scalar_t* x = context + pixel * channels;
      const int64_t first = (pixel / hw) * bins * hw + pixel % hw;
      for (int64_t d = 0; d < bins; ++d) {
        const int64_t q = first + d * hw;
        if (rank[q] < 0) {
          if (grad_depth != nullptr) grad_depth[q] = scalar_t(0);
          continue;
        }
        const scalar_t* g = grad + rank[q] * channels;
        if (grad_depth != nullptr) grad_depth[q] = static_cast<scalar_t>(dot<scalar_t>(g, x, channels));
        if (grad_context != nullptr) {
          const acc_t w = static_cast<acc_t>(depth[q]);
          for (int64_t c = 0; c < channels; ++c) acc[c] += w * static_cast<acc_t>(g[c]);
        }
      }
      if (grad_context != nullptr) {
        scalar_t* dst = grad_context + pixel * channels;
        for (int64_t c = 0; c < channels; ++c) dst[c] = static_cast<scalar_t>(acc[c]);
      }
    }
  }
}

// Gradients of depth (G, D, HW) and context (G, HW, C), each only when asked for (else an
// undefined tensor): one gather pass over the pixels, no atomics.
std::tuple<at::Tensor, at::Tensor> bev_pool_depth_backward(
    const at::Tensor& grad_cells, const at::Tensor& depth, const at::Tensor& context,
    const at::Tensor& ranks, bool need_depth, bool need_context) {
  check_floating(grad_cells, "grad_cells", 2);
  check_floating(depth, "depth", 3);
  check_floating(context, "context", 3);
  check_same_dtype(depth, context, "depth and context");
  check_same_dtype(grad_cells, context, "grad_cells and context");
  check_index(ranks, "ranks", depth.numel());
  TORCH_CHECK_VALUE(context.size(0) == depth.size(0) && context.size(1) == depth.size(2) &&
                        grad_cells.size(1) == context.size(2),
                    "bev_pool: depth ", depth.sizes(), ", context ", context.sizes(),
                    " and grad_cells ", grad_cells.sizes(), " do not match");
  const at::Tensor grad = grad_cells.contiguous();
  const at::Tensor dep = depth.contiguous();
  const at::Tensor ctx = context.contiguous();
  const at::Tensor rk = ranks.contiguous();
  check_ranks(rk.data_ptr<int64_t>(), rk.size(0), grad.size(0));
  at::Tensor grad_depth = need_depth ? at::empty_like(dep) : at::Tensor();
  at::Tensor grad_context = need_context ? at::empty_like(ctx) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, ctx.scalar_type(),
                                  "bev_pool_depth_backward", [&] {
    depth_context_grads<scalar_t>(
        grad.data_ptr<scalar_t>(), dep.data_ptr<scalar_t>(), ctx.data_ptr<scalar_t>(),
        rk.data_ptr<int64_t>(), dep.size(0), dep.size(1), dep.size(2), ctx.size(2),
        need_depth ? grad_depth.data_ptr<scalar_t>() : nullptr,
        need_context ? grad_context.data_ptr<scalar_t>() : nullptr);
  });
  return {grad_depth, grad_context};
}

}  // namespace
}  // namespace perception_ops

TORCH_LIBRARY_FRAGMENT(perception_ops, m) {
  m.def("bev_pool_forward(Tensor features, Tensor order, Tensor interval_starts, "
        "Tensor interval_lengths, Tensor interval_cells, int num_cells) -> Tensor");
  m.def("bev_pool_backward(Tensor grad_cells, Tensor ranks) -> Tensor");
  m.def("bev_pool_depth_forward(Tensor depth, Tensor context, Tensor order, "
        "Tensor interval_starts, Tensor interval_lengths, Tensor interval_cells, "
        "int num_cells) -> Tensor");
  m.def("bev_pool_depth_backward(Tensor grad_cells, Tensor depth, Tensor context, Tensor ranks, "
        "bool need_depth, bool need_context) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(perception_ops, CPU, m) {
  m.impl("bev_pool_forward", &perception_ops::bev_pool_forward);
  m.impl("bev_pool_backward", &perception_ops::bev_pool_backward);
  m.impl("bev_pool_depth_forward", &perception_ops::bev_pool_depth_forward);
  m.impl("bev_pool_depth_backward", &perception_ops::bev_pool_depth_backward);
}
