// Python bindings of the native CPU kernels (module perception_ops._C).
#include <torch/extension.h>

#include "kernel_map.h"
#include "sparse_conv.h"

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

  // Sparse convolution (ops/csrc/sparse_conv.cpp), float32 / float64.
  m.def("sparse_conv_isa", &po::sparse_conv_isa,
        "Instruction set a sparse-conv isa name resolves to on this CPU", py::arg("isa") = "auto");
  m.def("sparse_conv_transpose_pairs", &po::sparse_conv_transpose_pairs,
        "Pairs of the transposed conv, sorted by output row inside every offset: (in, out)",
        py::arg("in_idx"), py::arg("out_idx"), py::arg("offset_ptr"), py::arg("num_in"),
        release_gil());
  m.def("sparse_conv_forward", &po::sparse_conv_forward,
        "Output-stationary implicit-GEMM sparse conv: (N_out, C_out)", py::arg("features"),
        py::arg("weight"), py::arg("in_idx"), py::arg("out_idx"), py::arg("offset_ptr"),
        py::arg("num_out"), py::arg("block_rows") = 128, py::arg("isa") = "auto", release_gil());
  m.def("sparse_conv_weight_grad", &po::sparse_conv_weight_grad,
        "Weight gradient (K, C_in, C_out) of a sparse conv", py::arg("features"),
        py::arg("grad_out"), py::arg("in_idx"), py::arg("out_idx"), py::arg("offset_ptr"),
        py::arg("chunk_pairs") = 256, py::arg("isa") = "auto", release_gil());
}
