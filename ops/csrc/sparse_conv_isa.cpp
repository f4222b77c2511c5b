// The micro-kernels of sparse_conv_kernels.h compiled once per instruction set.
//
// setup.py builds every source with the same portable flags (no -march), so the wide
// instruction sets are enabled per region with `#pragma GCC target`; sparse_conv.cpp picks
// one at run time from the CPU's features.  Every header is included before the first
// pragma, so only the kernels themselves use the wider instructions.
#include <cstdint>

#include "sparse_conv_args.h"

#if defined(PERCEPTION_SPARSE_CONV_X86)
#include <immintrin.h>
#endif

#define SC_NS generic
#define SC_ISA 0
#include "sparse_conv_kernels.h"
#undef SC_ISA
#undef SC_NS

#if defined(PERCEPTION_SPARSE_CONV_X86)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define SC_NS avx2
#define SC_ISA 1
#include "sparse_conv_kernels.h"
#undef SC_ISA
#undef SC_NS
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
#define SC_NS avx512
#define SC_ISA 2
#include "sparse_conv_kernels.h"
#undef SC_ISA
#undef SC_NS
#pragma GCC pop_options
#endif
