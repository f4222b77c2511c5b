// Plain-C++ interface between the sparse-conv dispatcher (sparse_conv.cpp) and the
// micro-kernels compiled once per instruction set (sparse_conv_isa.cpp).  No torch headers:
// the kernel file compiles fast and contains nothing but the kernels.
#pragma once

#include <cstdint>

namespace perception_ops {
namespace sparse_conv {

constexpr int64_t kChannelPad = 16;  // C_out is padded to a multiple of this in the kernels

// Forward of output rows [lo, hi) into acc ((hi - lo) rows of cp elements, overwritten); the
// block's pairs of offset j are [begin[j], end[j]) (pairs are sorted by output row).
template <typename T>
struct ForwardArgs {
  const T* x;              // (N_in, cin)
  int64_t cin;
  const T* w;              // (K, cin, cp), zero-padded columns
  int64_t cp;
  const int32_t* in_idx;   // pairs, sorted by output row inside every offset
  const int32_t* out_idx;
  int64_t k;
};

// Weight gradient of pairs [plo, phi) of one offset into dw (cin, cp); xbuf / ybuf are
// scratch of (phi - plo) * cin and (phi - plo) * cp elements.
template <typename T>
struct WgradArgs {
  const T* x;   // (N_in, cin)
  int64_t cin;
  const T* dy;  // (N_out, cout)
  int64_t cout;
  int64_t cp;
  const int32_t* in_idx;
  const int32_t* out_idx;
};

// One set of kernels per instruction set (sparse_conv_kernels.h compiled in each namespace).
#define PERCEPTION_SPARSE_CONV_DECLARE(NS)                                                   \
  namespace NS {                                                                             \
  void forward_block(const ForwardArgs<float>& a, int64_t lo, int64_t hi,                    \
                     const int64_t* begin, const int64_t* end, float* acc);                  \
  void forward_block(const ForwardArgs<double>& a, int64_t lo, int64_t hi,                   \
                     const int64_t* begin, const int64_t* end, double* acc);                 \
  void wgrad_chunk(const WgradArgs<float>& a, int64_t plo, int64_t phi, float* dw,            \
                   float* xbuf, float* ybuf);                                                \
  void wgrad_chunk(const WgradArgs<double>& a, int64_t plo, int64_t phi, double* dw,          \
                   double* xbuf, double* ybuf);                                              \
  }
PERCEPTION_SPARSE_CONV_DECLARE(generic)
#if defined(__x86_64__) && defined(__GNUC__)
#define PERCEPTION_SPARSE_CONV_X86 1
PERCEPTION_SPARSE_CONV_DECLARE(avx2)
PERCEPTION_SPARSE_CONV_DECLARE(avx512)
#endif
#undef PERCEPTION_SPARSE_CONV_DECLARE

}  // namespace sparse_conv
}  // namespace perception_ops
