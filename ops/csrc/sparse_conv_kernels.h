// Register-blocked micro-kernels of the native sparse conv, for one instruction set.
//
// No include guard on purpose: sparse_conv_isa.cpp includes this file once per instruction
// set, inside `#pragma GCC target(...)` and with SC_NS (namespace) and SC_ISA (0 = portable
// 16-byte vectors, 1 = AVX2 + FMA, 2 = AVX-512F) defined.  It includes nothing itself (all
// headers are included before the target pragma, so no inline library function is compiled
// for a wider instruction set than the baseline) and defines only internal functions plus
// the entry points declared in sparse_conv.h.
//
// Forward tile: R output rows x V vectors of output channels accumulate in registers over
// C_in; per input channel the V weight vectors of the offset are loaded once and every row
// broadcasts its input value (the rows are gathered on the fly: no gathered buffer).
// Weight-gradient tile: R input channels x V vectors of output channels accumulate over the
// pairs of a chunk (gathered once into contiguous buffers).

namespace perception_ops {
namespace sparse_conv {
namespace SC_NS {
namespace {

template <typename T>
struct Vec;

#if SC_ISA == 2
template <>
struct Vec<float> {
  using Reg = __m512;
  static constexpr int W = 16;
  static Reg load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, Reg v) { _mm512_storeu_ps(p, v); }
  static Reg set1(float x) { return _mm512_set1_ps(x); }
  static Reg zero() { return _mm512_setzero_ps(); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  static Reg add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
};
template <>
struct Vec<double> {
  using Reg = __m512d;
  static constexpr int W = 8;
  static Reg load(const double* p) { return _mm512_loadu_pd(p); }
  static void store(double* p, Reg v) { _mm512_storeu_pd(p, v); }
  static Reg set1(double x) { return _mm512_set1_pd(x); }
  static Reg zero() { return _mm512_setzero_pd(); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm512_fmadd_pd(a, b, c); }
  static Reg add(Reg a, Reg b) { return _mm512_add_pd(a, b); }
};
// 32 vector registers: R * V accumulators + V weights + 1 broadcast.
constexpr int kMaxVectors = 4;
constexpr int tile_rows(int v) { return v == 1 ? 12 : v == 2 ? 12 : v == 3 ? 8 : 6; }
#elif SC_ISA == 1
template <>
struct Vec<float> {
  using Reg = __m256;
  static constexpr int W = 8;
  static Reg load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, Reg v) { _mm256_storeu_ps(p, v); }
  static Reg set1(float x) { return _mm256_set1_ps(x); }
  static Reg zero() { return _mm256_setzero_ps(); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  static Reg add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
};
template <>
struct Vec<double> {
  using Reg = __m256d;
  static constexpr int W = 4;
  static Reg load(const double* p) { return _mm256_loadu_pd(p); }
  static void store(double* p, Reg v) { _mm256_storeu_pd(p, v); }
  static Reg set1(double x) { return _mm256_set1_pd(x); }
  static Reg zero() { return _mm256_setzero_pd(); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm256_fmadd_pd(a, b, c); }
  static Reg add(Reg a, Reg b) { return _mm256_add_pd(a, b); }
};
// 16 vector registers.
constexpr int kMaxVectors = 3;
constexpr int tile_rows(int v) { return v == 1 ? 8 : v == 2 ? 6 : 4; }
#else
// Portable 16-byte vectors (SSE2 on x86-64, NEON on arm64); multiply-add without fusion.
template <typename T>
struct GenericVec {
  typedef T Reg __attribute__((vector_size(16)));
  static constexpr int W = 16 / sizeof(T);
  static Reg load(const T* p) {
    Reg v;
    __builtin_memcpy(&v, p, sizeof(Reg));
    return v;
  }
  static void store(T* p, Reg v) { __builtin_memcpy(p, &v, sizeof(Reg)); }
  static Reg set1(T x) { return Reg{} + x; }
  static Reg zero() { return Reg{}; }
  static Reg fma(Reg a, Reg b, Reg c) { return a * b + c; }
  static Reg add(Reg a, Reg b) { return a + b; }
};
template <>
struct Vec<float> : GenericVec<float> {};
template <>
struct Vec<double> : GenericVec<double> {};
constexpr int kMaxVectors = 3;
constexpr int tile_rows(int v) { return v == 1 ? 8 : v == 2 ? 6 : 4; }
#endif

constexpr int64_t kPrefetchRows = 16;  // wgrad: rows gathered ahead of use

template <typename T>
inline void prefetch_row(const T* row, int64_t n) {
  for (int64_t e = 0; e < n; e += 64 / static_cast<int64_t>(sizeof(T))) {
    __builtin_prefetch(row + e);
  }
}

// ---------------------------------------------------------------------------------------------
// Forward: out rows (local to the block) += x[ins[r]] @ w[:, co0 : co0 + V * W].

template <typename T, int V, int R>
inline void fwd_tile(const T* __restrict x, int64_t cin, const int32_t* ins, const int32_t* outs,
                     int64_t lo, const T* __restrict w, int64_t cp, T* __restrict acc_buf) {
  using VT = Vec<T>;
  using Reg = typename VT::Reg;
  constexpr int W = VT::W;
  Reg acc[R][V];
  const T* xr[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    xr[r] = x + static_cast<int64_t>(ins[r]) * cin;
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) acc[r][v] = VT::zero();
  }
  for (int64_t ci = 0; ci < cin; ++ci) {
    const T* wr = w + ci * cp;
    Reg wv[V];
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) wv[v] = VT::load(wr + v * W);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const Reg b = VT::set1(xr[r][ci]);
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) acc[r][v] = VT::fma(b, wv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    T* o = acc_buf + (static_cast<int64_t>(outs[r]) - lo) * cp;
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) VT::store(o + v * W, VT::add(VT::load(o + v * W), acc[r][v]));
  }
}

// The last (rem < full tile) pairs: one tile of exactly rem rows.
template <typename T, int V, int R>
inline void fwd_tail(int64_t rem, const T* x, int64_t cin, const int32_t* ins,
                     const int32_t* outs, int64_t lo, const T* w, int64_t cp, T* acc_buf) {
  if (rem == R) {
    fwd_tile<T, V, R>(x, cin, ins, outs, lo, w, cp, acc_buf);
  } else if constexpr (R > 1) {
    fwd_tail<T, V, R - 1>(rem, x, cin, ins, outs, lo, w, cp, acc_buf);
  }
}

template <typename T, int V>
void fwd_pairs(int64_t n, const T* x, int64_t cin, const int32_t* ins, const int32_t* outs,
               int64_t lo, const T* w, int64_t cp, T* acc_buf) {
  constexpr int R = tile_rows(V);
  int64_t p = 0;
  for (; p + R <= n; p += R) {
    for (int64_t q = p + R; q < p + 2 * R && q < n; ++q) {  // the next tile's input rows
      prefetch_row(x + static_cast<int64_t>(ins[q]) * cin, cin);
    }
    fwd_tile<T, V, R>(x, cin, ins + p, outs + p, lo, w, cp, acc_buf);
  }
  if (p < n) fwd_tail<T, V, R - 1>(n - p, x, cin, ins + p, outs + p, lo, w, cp, acc_buf);
}

template <typename T>
void forward_block_impl(const ForwardArgs<T>& a, int64_t lo, int64_t hi, const int64_t* begin,
                        const int64_t* end, T* acc) {
  constexpr int W = Vec<T>::W;
  const int64_t cp = a.cp;
  for (int64_t e = 0; e < (hi - lo) * cp; ++e) acc[e] = T(0);
  for (int64_t j = 0; j < a.k; ++j) {
    const int64_t first = begin[j], n = end[j] - first;
    if (n == 0) continue;
    const int32_t* ins = a.in_idx + first;
    const int32_t* outs = a.out_idx + first;
    const T* wj = a.w + j * a.cin * cp;
    for (int64_t co0 = 0; co0 < cp;) {
      const int64_t left = (cp - co0) / W;
      const int nv = left < kMaxVectors ? static_cast<int>(left) : kMaxVectors;
      switch (nv) {
#if SC_ISA == 2
        case 4: fwd_pairs<T, 4>(n, a.x, a.cin, ins, outs, lo, wj + co0, cp, acc + co0); break;
#endif
        case 3: fwd_pairs<T, 3>(n, a.x, a.cin, ins, outs, lo, wj + co0, cp, acc + co0); break;
        case 2: fwd_pairs<T, 2>(n, a.x, a.cin, ins, outs, lo, wj + co0, cp, acc + co0); break;
        default: fwd_pairs<T, 1>(n, a.x, a.cin, ins, outs, lo, wj + co0, cp, acc + co0); break;
      }
      co0 += static_cast<int64_t>(nv) * W;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Weight gradient: dw[ci0 : ci0 + R, co0 : co0 + V * W] += xbuf[:, ci0 : ci0 + R]^T @ ybuf.

template <typename T, int V, int R>
inline void wg_tile(int64_t n, const T* __restrict xbuf, int64_t cin, int64_t ci0,
                    const T* __restrict ybuf, int64_t cp, T* __restrict dw) {
  using VT = Vec<T>;
  using Reg = typename VT::Reg;
  constexpr int W = VT::W;
  Reg acc[R][V];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) acc[r][v] = VT::zero();
  }
  for (int64_t p = 0; p < n; ++p) {
    const T* yr = ybuf + p * cp;
    const T* xr = xbuf + p * cin + ci0;
    Reg yv[V];
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) yv[v] = VT::load(yr + v * W);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const Reg b = VT::set1(xr[r]);
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) acc[r][v] = VT::fma(b, yv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    T* d = dw + (ci0 + r) * cp;
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) VT::store(d + v * W, VT::add(VT::load(d + v * W), acc[r][v]));
  }
}

template <typename T, int V, int R>
inline void wg_tail(int64_t rem, int64_t n, const T* xbuf, int64_t cin, int64_t ci0,
                    const T* ybuf, int64_t cp, T* dw) {
  if (rem == R) {
    wg_tile<T, V, R>(n, xbuf, cin, ci0, ybuf, cp, dw);
  } else if constexpr (R > 1) {
    wg_tail<T, V, R - 1>(rem, n, xbuf, cin, ci0, ybuf, cp, dw);
  }
}

template <typename T, int V>
void wg_channels(int64_t n, const T* xbuf, int64_t cin, const T* ybuf, int64_t cp, T* dw) {
  constexpr int R = tile_rows(V);
  int64_t ci = 0;
  for (; ci + R <= cin; ci += R) wg_tile<T, V, R>(n, xbuf, cin, ci, ybuf, cp, dw);
  if (ci < cin) wg_tail<T, V, R - 1>(cin - ci, n, xbuf, cin, ci, ybuf, cp, dw);
}

template <typename T>
void wgrad_chunk_impl(const WgradArgs<T>& a, int64_t plo, int64_t phi, T* dw, T* xbuf,
                      T* ybuf) {
  constexpr int W = Vec<T>::W;
  const int64_t n = phi - plo, cin = a.cin, cout = a.cout, cp = a.cp;
  for (int64_t p = 0; p < n; ++p) {
    if (p + kPrefetchRows < n) {  // the gather is bound by L3 latency: fetch rows ahead
      prefetch_row(a.x + static_cast<int64_t>(a.in_idx[plo + p + kPrefetchRows]) * cin, cin);
      prefetch_row(a.dy + static_cast<int64_t>(a.out_idx[plo + p + kPrefetchRows]) * cout,
                   cout);
    }
    const T* xs = a.x + static_cast<int64_t>(a.in_idx[plo + p]) * cin;
    const T* ys = a.dy + static_cast<int64_t>(a.out_idx[plo + p]) * cout;
    T* xd = xbuf + p * cin;
    T* yd = ybuf + p * cp;
    for (int64_t c = 0; c < cin; ++c) xd[c] = xs[c];
    for (int64_t c = 0; c < cout; ++c) yd[c] = ys[c];
    for (int64_t c = cout; c < cp; ++c) yd[c] = T(0);
  }
  for (int64_t co0 = 0; co0 < cp;) {
    const int64_t left = (cp - co0) / W;
    const int nv = left < kMaxVectors ? static_cast<int>(left) : kMaxVectors;
    switch (nv) {
#if SC_ISA == 2
      case 4: wg_channels<T, 4>(n, xbuf, cin, ybuf + co0, cp, dw + co0); break;
#endif
      case 3: wg_channels<T, 3>(n, xbuf, cin, ybuf + co0, cp, dw + co0); break;
      case 2: wg_channels<T, 2>(n, xbuf, cin, ybuf + co0, cp, dw + co0); break;
      default: wg_channels<T, 1>(n, xbuf, cin, ybuf + co0, cp, dw + co0); break;
    }
    co0 += static_cast<int64_t>(nv) * W;
  }
}

}  // namespace

void forward_block(const ForwardArgs<float>& a, int64_t lo, int64_t hi, const int64_t* begin,
                   const int64_t* end, float* acc) {
  forward_block_impl(a, lo, hi, begin, end, acc);
}
void forward_block(const ForwardArgs<double>& a, int64_t lo, int64_t hi, const int64_t* begin,
                   const int64_t* end, double* acc) {
  forward_block_impl(a, lo, hi, begin, end, acc);
}
void wgrad_chunk(const WgradArgs<float>& a, int64_t plo, int64_t phi, float* dw, float* xbuf,
                 float* ybuf) {
  wgrad_chunk_impl(a, plo, phi, dw, xbuf, ybuf);
}
void wgrad_chunk(const WgradArgs<double>& a, int64_t plo, int64_t phi, double* dw,
                 double* xbuf, double* ybuf) {
  wgrad_chunk_impl(a, plo, phi, dw, xbuf, ybuf);
}

}  // namespace SC_NS
}  // namespace sparse_conv
}  // namespace perception_ops
