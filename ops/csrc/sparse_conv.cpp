// Native sparse conv: entry points, threading and instruction-set dispatch of the micro-kernels
// in sparse_conv_kernels.h (see sparse_conv.h for the layouts; pair checks and the transposed
// pairs are in sparse_conv_pairs.cpp).
//
// Threads: OpenMP with torch's thread count (torch.set_num_threads).  Blocks of output rows are
// handed out dynamically, as LiDAR density (pairs per row) varies a lot; each block is summed
// by one thread in a fixed order, so the forward is bitwise reproducible.  Weight-gradient
// chunks (equal-sized) are split statically, each thread summing into its own copy.
#include "sparse_conv.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "sparse_conv_pairs.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace perception_ops {
namespace {

using sparse_conv::check_cpu_contiguous;
using sparse_conv::check_float;
using sparse_conv::check_pairs;
using sparse_conv::ForwardArgs;
using sparse_conv::kChannelPad;
using sparse_conv::PairScan;
using sparse_conv::WgradArgs;

enum class Isa { kGeneric, kAvx2, kAvx512 };

int num_threads() { return std::max(1, at::get_num_threads()); }

int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

Isa resolve_isa(const std::string& name) {
  bool avx2 = false, avx512 = false;
#ifdef PERCEPTION_SPARSE_CONV_X86
  __builtin_cpu_init();
  avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  avx512 = avx2 && __builtin_cpu_supports("avx512f");
#endif
  if (name == "auto") return avx512 ? Isa::kAvx512 : avx2 ? Isa::kAvx2 : Isa::kGeneric;
  if (name == "generic") return Isa::kGeneric;
  if (name == "avx2") {
    TORCH_CHECK_VALUE(avx2, "isa 'avx2': this CPU or build lacks AVX2 + FMA");
    return Isa::kAvx2;
  }
  if (name == "avx512") {
    TORCH_CHECK_VALUE(avx512, "isa 'avx512': this CPU or build lacks AVX-512F");
    return Isa::kAvx512;
  }
  TORCH_CHECK_VALUE(false, "isa must be 'auto', 'avx512', 'avx2' or 'generic', got '", name,
                    "'");
  return Isa::kGeneric;
}

template <typename T>
void forward_block(Isa isa, const ForwardArgs<T>& a, int64_t lo, int64_t hi,
                   const int64_t* begin, const int64_t* end, T* acc) {
  switch (isa) {
#ifdef PERCEPTION_SPARSE_CONV_X86
    case Isa::kAvx512: sparse_conv::avx512::forward_block(a, lo, hi, begin, end, acc); return;
    case Isa::kAvx2: sparse_conv::avx2::forward_block(a, lo, hi, begin, end, acc); return;
#endif
    default: sparse_conv::generic::forward_block(a, lo, hi, begin, end, acc); return;
  }
}

template <typename T>
void wgrad_chunk(Isa isa, const WgradArgs<T>& a, int64_t plo, int64_t phi, T* dw, T* xbuf,
                 T* ybuf) {
  switch (isa) {
#ifdef PERCEPTION_SPARSE_CONV_X86
    case Isa::kAvx512: sparse_conv::avx512::wgrad_chunk(a, plo, phi, dw, xbuf, ybuf); return;
    case Isa::kAvx2: sparse_conv::avx2::wgrad_chunk(a, plo, phi, dw, xbuf, ybuf); return;
#endif
    default: sparse_conv::generic::wgrad_chunk(a, plo, phi, dw, xbuf, ybuf); return;
  }
}

template <typename T>
at::Tensor forward_impl(const at::Tensor& features, const at::Tensor& weight,
                        const at::Tensor& in_idx, const at::Tensor& out_idx,
                        const std::vector<int64_t>& bounds, int64_t n_out, int64_t block,
                        Isa isa) {
  const int64_t k = weight.size(0), cin = features.size(1);
  const int64_t cout = weight.size(2), cp = round_up(cout, kChannelPad);
  at::Tensor out = at::empty({n_out, cout}, features.options());
  if (n_out == 0) return out;
  at::Tensor w = weight;
  if (cp != cout) {
    w = at::zeros({k, cin, cp}, weight.options());
    w.narrow(2, 0, cout).copy_(weight);
  }
  const ForwardArgs<T> args{features.data_ptr<T>(), cin, w.data_ptr<T>(), cp,
                            in_idx.data_ptr<int32_t>(), out_idx.data_ptr<int32_t>(), k};
  T* out_ptr = out.data_ptr<T>();
  const int64_t blocks = (n_out + block - 1) / block;
  const bool direct = cp == cout;  // accumulate straight into the output rows
#pragma omp parallel num_threads(std::min<int64_t>(num_threads(), blocks)) if (blocks > 1)
  {
    std::vector<T> acc(direct ? 0 : block * cp);
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t lo = b * block, hi = std::min(n_out, lo + block);
      T* dst = direct ? out_ptr + lo * cout : acc.data();
      forward_block(isa, args, lo, hi, bounds.data() + b * k, bounds.data() + (b + 1) * k, dst);
      if (!direct) {
        for (int64_t r = 0; r < hi - lo; ++r) {
          std::copy(dst + r * cp, dst + r * cp + cout, out_ptr + (lo + r) * cout);
        }
      }
    }
  }
  return out;
}

template <typename T>
at::Tensor weight_grad_impl(const at::Tensor& features, const at::Tensor& grad_out,
                            const at::Tensor& in_idx, const at::Tensor& out_idx,
                            const int64_t* ptr, int64_t k, int64_t chunk, Isa isa) {
  const int64_t cin = features.size(1), cout = grad_out.size(1);
  const int64_t cp = round_up(cout, kChannelPad);
  std::vector<int64_t> items;  // (offset, first pair) of every chunk
  for (int64_t j = 0; j < k; ++j) {
    for (int64_t p = ptr[j]; p < ptr[j + 1]; p += chunk) {
      items.push_back(j);
      items.push_back(p);
    }
  }
  const int64_t n_items = static_cast<int64_t>(items.size()) / 2;
  const int64_t threads = std::max<int64_t>(1, std::min<int64_t>(num_threads(), n_items));
  at::Tensor partial = at::zeros({threads, k, cin, cp}, features.options());
  const WgradArgs<T> args{features.data_ptr<T>(), cin, grad_out.data_ptr<T>(), cout, cp,
                          in_idx.data_ptr<int32_t>(), out_idx.data_ptr<int32_t>()};
  T* base = partial.data_ptr<T>();
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    T* dw = base + thread_id() * k * cin * cp;
    std::vector<T> xbuf(chunk * cin), ybuf(chunk * cp);
    // static: items are equal-sized chunks, and a fixed item -> thread assignment keeps the
    // summation order (so the result) reproducible for a given thread count
#pragma omp for schedule(static)
    for (int64_t it = 0; it < n_items; ++it) {
      const int64_t j = items[2 * it], plo = items[2 * it + 1];
      const int64_t phi = std::min(ptr[j + 1], plo + chunk);
      wgrad_chunk(isa, args, plo, phi, dw + j * cin * cp, xbuf.data(), ybuf.data());
    }
  }
  at::Tensor grad = threads == 1 ? partial[0] : partial.sum(0);
  return cp == cout ? grad : grad.narrow(2, 0, cout).contiguous();
}

}  // namespace

std::string sparse_conv_isa(const std::string& isa) {
  switch (resolve_isa(isa)) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    default: return "generic";
  }
}

at::Tensor sparse_conv_forward(const at::Tensor& features, const at::Tensor& weight,
                               const at::Tensor& in_idx, const at::Tensor& out_idx,
                               const at::Tensor& offset_ptr, int64_t num_out,
                               int64_t block_rows, const std::string& isa) {
  check_cpu_contiguous(features, "features", 2);
  check_float(features, "features");
  check_cpu_contiguous(weight, "weight", 3);
  TORCH_CHECK_VALUE(weight.scalar_type() == features.scalar_type(), "weight dtype ",
                    weight.scalar_type(), " differs from features dtype ",
                    features.scalar_type());
  TORCH_CHECK_VALUE(weight.size(1) == features.size(1), "weight (K, C_in, C_out) has C_in = ",
                    weight.size(1), " but features have ", features.size(1), " channels");
  TORCH_CHECK_VALUE(num_out >= 0 && num_out < INT32_MAX, "num_out must be in [0, 2^31 - 1), got ",
                    num_out);
  TORCH_CHECK_VALUE(block_rows >= 1 && block_rows <= (1 << 20),
                    "block_rows must be in [1, 2^20], got ", block_rows);
  const int64_t blocks = (num_out + block_rows - 1) / block_rows;
  const PairScan scan = check_pairs(in_idx, out_idx, offset_ptr, features.size(0), num_out,
                                    blocks, block_rows);
  const int64_t k = offset_ptr.size(0) - 1;
  TORCH_CHECK_VALUE(k == weight.size(0), "offset_ptr has ", k, " kernel offsets but weight has ",
                    weight.size(0));
  TORCH_CHECK_VALUE(scan.unsorted_out < 0, "out_idx must be sorted inside every kernel offset, "
                    "but pair ", scan.unsorted_out, " is smaller than its predecessor "
                    "(transpose a map with sparse_conv_transpose_pairs)");
  const Isa which = resolve_isa(isa);
  if (features.size(1) == 0 || k == 0) {
    return at::zeros({num_out, weight.size(2)}, features.options());
  }
  return AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "sparse_conv_forward", [&] {
    return forward_impl<scalar_t>(features, weight, in_idx, out_idx, scan.bounds, num_out,
                                  block_rows, which);
  });
}

at::Tensor sparse_conv_weight_grad(const at::Tensor& features, const at::Tensor& grad_out,
                                   const at::Tensor& in_idx, const at::Tensor& out_idx,
                                   const at::Tensor& offset_ptr, int64_t chunk_pairs,
                                   const std::string& isa) {
  check_cpu_contiguous(features, "features", 2);
  check_float(features, "features");
  check_cpu_contiguous(grad_out, "grad_out", 2);
  TORCH_CHECK_VALUE(grad_out.scalar_type() == features.scalar_type(), "grad_out dtype ",
                    grad_out.scalar_type(), " differs from features dtype ",
                    features.scalar_type());
  TORCH_CHECK_VALUE(chunk_pairs >= 1 && chunk_pairs <= (1 << 20),
                    "chunk_pairs must be in [1, 2^20], got ", chunk_pairs);
  const int64_t n = in_idx.size(0);
  check_pairs(in_idx, out_idx, offset_ptr, features.size(0), grad_out.size(0));
  const int64_t k = offset_ptr.size(0) - 1;
  const Isa which = resolve_isa(isa);
  if (n == 0 || features.size(1) == 0 || grad_out.size(1) == 0) {
    return at::zeros({k, features.size(1), grad_out.size(1)}, features.options());
  }
  const int64_t* ptr = offset_ptr.data_ptr<int64_t>();
  return AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "sparse_conv_weight_grad", [&] {
    return weight_grad_impl<scalar_t>(features, grad_out, in_idx, out_idx, ptr, k, chunk_pairs,
                                      which);
  });
}

}  // namespace perception_ops
