// Python bindings of the native CPU kernels (module perception_ops._C).
#include <torch/extension.h>

#include "kernel_map.h"

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

  // Kernel maps (ops/csrc/kernel_map.cpp); the GIL is released while they run.
  namespace po = perception_ops;
  using release_gil = py::call_guard<py::gil_scoped_release>;
  m.def("coords_first_out_of_range", &po::coords_first_out_of_range,
        "First row per column (batch, z, y, x) outside [0, upper), -1 where none", py::arg("coords"),
        py::arg("upper"), release_gil());
  m.def("subm_kernel_map", &po::subm_kernel_map,
        "Submanifold kernel map: (in_indices, out_indices, offset_ptr, out_masks)", py::arg("coords"),
        py::arg("spatial_shape"), py::arg("kernel_size"), py::arg("dilation"), release_gil());
  m.def("conv_kernel_map", &po::conv_kernel_map,
        "Strided conv kernel map: (in_indices, out_indices, offset_ptr, out_masks, out_coords)",
        py::arg("coords"), py::arg("spatial_shape"), py::arg("out_spatial_shape"),
        py::arg("kernel_size"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        release_gil());
}
