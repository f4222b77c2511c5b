"""Ahead-of-time compile of the sparse kernels for a GPU target, without a GPU.

``triton.compile`` with an explicit ``GPUTarget`` runs the whole pipeline (TTIR, TTGIR, LLVM IR,
PTX and, with the ptxas bundled in the triton wheel, a cubin), so a machine without a GPU can
check that every kernel and config lowers for e.g. sm_90.  Must run *without*
``TRITON_INTERPRET`` (the interpreter's kernels cannot be compiled)::

    python -m perception_ops.sparse.triton.compile_check --arch 90 --all-configs
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any, Iterable

from .common import INTERPRETED, require_triton

_DTYPES = {"fp32": "fp32", "fp16": "fp16", "bf16": "bf16"}
# shared memory a block may opt into on sm_80 / sm_90 (bytes)
MAX_SHARED = {80: 166912, 86: 101376, 89: 101376, 90: 232448}


@dataclass(frozen=True)
class CompiledKernel:
    """One compiled (kernel, config, dtype): its shared memory and cubin size."""

    kernel: str
    config: str
    dtype: str
    shared_bytes: int
    cubin_bytes: int
    seconds: float


def _kernel_specs(dtype: str) -> list[tuple[str, Any, Any, dict[str, str], dict[str, Any]]]:
    """(name, plain kernel, config list, signature of non-constexpr args, constexprs) per kernel."""
    from . import backward, fetch_on_demand, gather_scatter, implicit_gemm
    f = f"*{dtype}"
    dot = {"PRECISION": "ieee", "DOT_FP32": False}
    gs = {"x_ptr": f, "w_ptr": f, "out_ptr": "*fp32", "in_idx_ptr": "*i32", "out_idx_ptr": "*i32", "n_pairs": "i32",
          "C_IN": "i32", "C_OUT": "i32", "stride_x": "i32", "stride_wk": "i32", "stride_out": "i32"}
    fd = {"x_ptr": f, "w_ptr": f, "out_ptr": "*fp32", "src_idx_ptr": "*i32", "dst_idx_ptr": "*i32",
          "offset_ptr": "*i64", "K": "i32", "C_IN": "i32", "C_OUT": "i32", "stride_x": "i32", "stride_wj": "i32",
          "stride_wk": "i32", "stride_out": "i32"}
    ig = {"x_ptr": f, "w_ptr": f, "out_ptr": f, "nmap_ptr": "*i32", "order_ptr": "*i64", "masks_ptr": "*i32",
          "N_ROWS": "i32", "K": "i32", "C_IN": "i32", "C_OUT": "i32", "stride_x": "i32", "stride_wj": "i32",
          "stride_wk": "i32", "stride_out": "i32", "NUM_WORDS": "i32"}
    wg = {"x_ptr": f, "dy_ptr": f, "dw_ptr": "*fp32", "in_idx_ptr": "*i32", "out_idx_ptr": "*i32",
          "offset_ptr": "*i64", "K": "i32", "C_IN": "i32", "C_OUT": "i32", "stride_x": "i32", "stride_dy": "i32"}
    rows = {"src_ptr": f, "idx_ptr": "*i32", "dst_ptr": f, "n_rows": "i32", "C": "i32", "stride_src": "i32"}
    scatter = {"src_ptr": f, "idx_ptr": "*i32", "dst_ptr": "*fp32", "n_rows": "i32", "C": "i32", "stride_dst": "i32"}
    return [
        ("gemm_scatter", gather_scatter._gemm_scatter_kernel, gather_scatter.GEMM_SCATTER_CONFIGS, gs, dot),
        ("gather_rows", gather_scatter._gather_rows_kernel, gather_scatter.ROW_CONFIGS, rows, {}),
        ("scatter_add_rows", gather_scatter._scatter_add_rows_kernel, gather_scatter.ROW_CONFIGS, scatter, {}),
        ("fetch_on_demand", fetch_on_demand._fetch_on_demand_kernel, fetch_on_demand.FETCH_ON_DEMAND_CONFIGS, fd,
         {**dot, "K_POW2": 32}),
        ("implicit_gemm", implicit_gemm._implicit_gemm_kernel, implicit_gemm.IMPLICIT_GEMM_CONFIGS, ig,
         {**dot, "SORTED": False}),
        ("implicit_gemm_sorted", implicit_gemm._implicit_gemm_kernel, implicit_gemm.IMPLICIT_GEMM_CONFIGS, ig,
         {**dot, "SORTED": True}),
        ("weight_grad", backward._weight_grad_kernel, backward.WEIGHT_GRAD_CONFIGS, wg, {**dot, "K_POW2": 32}),
    ]


def compile_kernels(arch: int = 90, dtypes: Iterable[str] = ("fp16",), all_configs: bool = False,
                    only: Iterable[str] | None = None) -> list[CompiledKernel]:
    """Compile every kernel (first config, or all with ``all_configs``) for ``cuda:sm_<arch>``.

    Raises on any compile failure, or when a config needs more shared memory than the target has.
    """
    require_triton()
    if INTERPRETED:
        raise RuntimeError("compile_check needs TRITON_INTERPRET unset: interpreted kernels cannot be compiled")
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    target = GPUTarget("cuda", arch, 32)
    wanted = set(only) if only is not None else None
    results = []
    for dtype in dtypes:
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        for name, kernel, configs, signature, constexprs in _kernel_specs(_DTYPES[dtype]):
            if wanted is not None and name not in wanted:
                continue
            for config in configs if all_configs else configs[:1]:
                consts = {**constexprs, **config.kwargs}
                sig = {**signature, **{k: "constexpr" for k in consts}}
                missing = set(kernel.arg_names) - set(sig)
                if missing:
                    raise ValueError(f"compile_check signature of {name} misses {sorted(missing)}")
                start = time.perf_counter()
                compiled = triton.compile(ASTSource(fn=kernel, signature=sig, constexprs=consts), target=target,
                                          options={"num_warps": config.num_warps, "num_stages": config.num_stages})
                shared = int(compiled.metadata.shared)
                if shared > MAX_SHARED.get(arch, 232448):
                    raise RuntimeError(f"{name} {config} needs {shared} B shared memory > sm_{arch}'s limit")
                results.append(CompiledKernel(name, str(config), dtype, shared, len(compiled.asm["cubin"]),
                                              time.perf_counter() - start))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90, help="CUDA compute capability, e.g. 80 or 90")
    parser.add_argument("--dtypes", nargs="+", default=["fp16", "bf16", "fp32"])
    parser.add_argument("--all-configs", action="store_true")
    args = parser.parse_args()
    for r in compile_kernels(args.arch, args.dtypes, args.all_configs):
        print(f"{r.kernel:22s} {r.dtype} shared={r.shared_bytes:6d}B cubin={r.cubin_bytes:7d}B "
              f"{r.seconds:5.1f}s  {r.config}")


if __name__ == "__main__":
    main()
