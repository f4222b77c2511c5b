// Python bindings of the native CPU kernels (module perception_ops._C).
#include <torch/extension.h>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

// Number of OpenMP threads the kernels may use (1 when built without OpenMP).
int64_t openmp_max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "Native CPU kernels of perception_ops (C++ / OpenMP).";
  m.def("openmp_max_threads", &openmp_max_threads, "OpenMP threads available to the kernels");
}
