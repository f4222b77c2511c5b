"""Triton sparse-conv kernels == gather_gemm_scatter, run by Triton's interpreter on CPU tensors.

``TRITON_INTERPRET=1`` must be set before ``triton.jit`` decorates the kernels, so the numeric
checks run in one child process (shared by the tests here) that prints a JSON report of
relative errors (max |a - b| / max |b|, against float64 references).  A second child, without
the interpreter, compiles the kernels for an sm_90 target (no GPU needed).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

pytest.importorskip("triton", reason="triton is not installed (pip install triton) - Triton kernels untested")

CHILD = textwrap.dedent(r'''
    import json, os, torch
    from perception_ops.sparse import build_conv_map, build_subm_map, gather_gemm_scatter, invert_kernel_map
    from perception_ops.sparse.triton import DATAFLOWS, INTERPRETED, triton_sparse_matmul
    from perception_ops.sparse.triton import backward as bw, fetch_on_demand as fd, gather_scatter as gs
    from perception_ops.sparse.triton import implicit_gemm as ig
    from perception_ops.sparse.maps import mask_order, out_in_map
    assert INTERPRETED
    report = {"cases": {}, "half": {}, "configs": {}, "empty_offsets": {}, "autotuned": {}}

    def coords(seed, count, shape, batch=2):
        g = torch.Generator().manual_seed(seed)
        cells = torch.randperm(batch * shape[0] * shape[1] * shape[2], generator=g)[:count]
        hw = shape[1] * shape[2]
        b, r = cells // (shape[0] * hw), cells % (shape[0] * hw)
        return torch.stack([b, r // hw, (r % hw) // shape[2], r % shape[2]], 1).to(torch.int32)

    def rel(a, b):
        return float((a.detach().double() - b).abs().max() / b.abs().max().clamp_min(1e-30)) if b.numel() else 0.0

    c40 = coords(0, 40, (4, 6, 6))
    conv = build_conv_map(c40, (4, 6, 6), 3, 2, 1)
    one = torch.tensor([[1, 2, 2, 2]], dtype=torch.int32)
    maps = {
        "subm": (build_subm_map(c40, (4, 6, 6), 3), 12, 10),
        "strided": (conv, 20, 36),
        "inverse": (invert_kernel_map(conv), 9, 5),
        "single_voxel": (build_subm_map(one, (4, 6, 6), 3, batch_size=2), 5, 7),
        "single_voxel_strided": (build_conv_map(one, (4, 6, 6), 3, 2, 0, batch_size=2), 5, 7),
        "kernel5": (build_subm_map(coords(1, 30, (4, 5, 5), 1), (4, 5, 5), 5), 6, 9),
    }
    report["empty_offsets"] = {name: sum(n == 0 for n in m.pair_counts()) for name, (m, _, _) in maps.items()}

    def reference(kmap, c_in, c_out, seed):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(kmap.num_in, c_in, generator=g, dtype=torch.float64, requires_grad=True)
        w = torch.randn(c_out, *kmap.kernel_size, c_in, generator=g, dtype=torch.float64, requires_grad=True)
        out = gather_gemm_scatter(x, w, kmap)
        gy = torch.randn(out.shape, generator=g, dtype=torch.float64)
        gx, gw = torch.autograd.grad(out, (x, w), gy)
        return x.detach(), w.detach(), gy, out.detach(), gx, gw

    def run(kmap, x, w, gy, dtype, dataflow, config_index=None, weight_grad=True):
        xt = x.to(dtype).requires_grad_()
        wt = w.to(dtype).requires_grad_(weight_grad)
        out = triton_sparse_matmul(xt, wt, kmap, dataflow, config_index=config_index)
        grads = torch.autograd.grad(out, (xt, wt) if weight_grad else (xt,), gy.to(dtype))
        return out, grads[0], grads[1] if weight_grad else None

    # fp32 forward + input gradient of every dataflow on every map, weight gradient (the same
    # kernel for all dataflows) once per map; the config index rotates over the configs and
    # comes from the environment variable for half the cases (exercising that path)
    # (kernel5: K = 125 > 32 exercises multi-word bitmasks and the 128-lane block walk)
    for m_idx, (name, (kmap, c_in, c_out)) in enumerate(maps.items()):
        x, w, gy, ref, ref_gx, ref_gw = reference(kmap, c_in, c_out, m_idx)
        for d_idx, dataflow in enumerate(DATAFLOWS):
            if name == "kernel5" and dataflow not in ("fetch_on_demand", "implicit_gemm_sorted"):
                continue
            index, wants_w = m_idx + d_idx, d_idx == m_idx % len(DATAFLOWS) or name == "kernel5"
            if index % 2:
                os.environ["PERCEPTION_SPARSE_TRITON_CONFIG"] = str(index)
                out, gx, gw = run(kmap, x, w, gy, torch.float32, dataflow, weight_grad=wants_w)
                del os.environ["PERCEPTION_SPARSE_TRITON_CONFIG"]
            else:
                out, gx, gw = run(kmap, x, w, gy, torch.float32, dataflow, index, wants_w)
            report["cases"][f"{name}/{dataflow}"] = {
                "out": rel(out, ref), "grad_x": rel(gx, ref_gx), "grad_w": None if gw is None else rel(gw, ref_gw),
                "dtype": str(out.dtype), "shape": list(out.shape), "ref_shape": list(ref.shape)}

    # fp16 / bf16 (fp32 accumulation): every dataflow forward + input gradient, one weight gradient
    kmap, c_in, c_out = maps["subm"]
    for dtype in (torch.float16, torch.bfloat16):
        x, w, gy, _, _, _ = reference(kmap, c_in, c_out, 7)
        xh, wh = x.to(dtype).double().requires_grad_(), w.to(dtype).double().requires_grad_()
        ref = gather_gemm_scatter(xh, wh, kmap)  # exact products of the rounded inputs
        ref_gx, ref_gw = torch.autograd.grad(ref, (xh, wh), gy.to(dtype).double())
        for d_idx, dataflow in enumerate(DATAFLOWS):
            out, gx, gw = run(kmap, x, w, gy, dtype, dataflow, d_idx, weight_grad=d_idx == 0)
            report["half"][f"{dtype}/{dataflow}"] = {
                "out": rel(out, ref), "grad_x": rel(gx, ref_gx), "grad_w": None if gw is None else rel(gw, ref_gw),
                "dtype": str(out.dtype)}

    # every config of every kernel once, called directly (fp32, strided map; C_in > 16 and
    # C_out > 32 so every config has several channel tiles, none of them full)
    kmap, c_in, c_out = build_conv_map(coords(5, 24, (4, 6, 6)), (4, 6, 6), 3, 2, 1), 18, 34
    x, w, gy, ref, _, ref_gw = reference(kmap, c_in, c_out, 3)
    x32, gy32 = x.float(), gy.float()
    w_kio = w.reshape(c_out, kmap.kernel_volume, c_in).permute(1, 2, 0).contiguous().float()
    ref_dw = ref_gw.reshape(c_out, kmap.kernel_volume, c_in).permute(1, 2, 0)
    nbr = out_in_map(kmap)
    kernels = {
        "gemm_scatter": (gs.GEMM_SCATTER_CONFIGS, lambda i: gs.gather_scatter(x32, w_kio, kmap, config_index=i), ref),
        "rows": (gs.ROW_CONFIGS, lambda i: gs.gather_mm_scatter(x32, w_kio, kmap, config_index=i), ref),
        "fetch_on_demand": (fd.FETCH_ON_DEMAND_CONFIGS,
                            lambda i: fd.fetch_on_demand(x32, w_kio, kmap, config_index=i), ref),
        "implicit_gemm": (ig.IMPLICIT_GEMM_CONFIGS, lambda i: ig.implicit_gemm(x32, w_kio, nbr, config_index=i), ref),
        "implicit_gemm_sorted": (ig.IMPLICIT_GEMM_CONFIGS, lambda i: ig.implicit_gemm(
            x32, w_kio, nbr, mask_order(nbr), kmap.out_masks, config_index=i), ref),
        "weight_grad": (bw.WEIGHT_GRAD_CONFIGS, lambda i: bw.weight_grad(x32, gy32, kmap, config_index=i), ref_dw),
    }
    for name, (configs, call, expected) in kernels.items():
        report["configs"][name] = [rel(call(i), expected) for i in range(len(configs))]

    # autotuned path (no pinned config): the interpreter "benchmarks" every pruned config once;
    # kernels with atomics must restore their output between trials or the result would be off
    kmap, c_in, c_out = build_subm_map(coords(6, 8, (3, 4, 4), 1), (3, 4, 4), 3), 6, 40
    x, w, gy, ref, ref_gx, ref_gw = reference(kmap, c_in, c_out, 9)
    for dataflow in DATAFLOWS:
        out, gx, gw = run(kmap, x, w, gy, torch.float32, dataflow, None, dataflow == "fetch_on_demand")
        report["autotuned"][dataflow] = [rel(out, ref), rel(gx, ref_gx), None if gw is None else rel(gw, ref_gw)]
    xt = x.float().requires_grad_()
    mixed = triton_sparse_matmul(xt, w.float(), kmap, "implicit_gemm_sorted", backward_dataflow="gather_scatter",
                                 config_index=1)
    report["mixed"] = [rel(mixed, ref), rel(torch.autograd.grad(mixed, xt, gy.float())[0], ref_gx)]
    report["tuned_trials"] = {name: len(getattr(tuned, "configs_timings", {})) for name, tuned in (
        ("gemm_scatter", gs._gemm_scatter_tuned), ("fetch_on_demand", fd._fetch_on_demand_tuned),
        ("implicit_gemm", ig._implicit_gemm_tuned), ("weight_grad", bw._weight_grad_tuned))}

    report["bitmasks_equal"] = bool(torch.equal(ig.neighbour_bitmasks(out_in_map(maps["kernel5"][0])),
                                                maps["kernel5"][0].out_masks))
    print("REPORT" + json.dumps(report))
''')

COMPILE_CHILD = textwrap.dedent(r'''
    import json
    from perception_ops.sparse.triton.compile_check import compile_kernels
    rows = compile_kernels(arch=90, dtypes=("fp16",))
    rows += compile_kernels(arch=90, dtypes=("bf16",), only=("implicit_gemm_sorted", "weight_grad"))
    rows += compile_kernels(arch=80, dtypes=("fp32",), only=("fetch_on_demand", "implicit_gemm"))
    print("REPORT" + json.dumps([[r.kernel, r.dtype, r.shared_bytes, r.cubin_bytes] for r in rows]))
''')

DATAFLOW_NAMES = ["gather_scatter", "gather_mm_scatter", "fetch_on_demand", "implicit_gemm", "implicit_gemm_sorted"]
MAP_NAMES = ["subm", "strided", "inverse", "single_voxel", "single_voxel_strided", "kernel5"]


def _child_report(code: str, interpret: bool) -> object:
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "PERCEPTION_SPARSE_TRITON_CONFIG")}
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("REPORT")]
    assert proc.returncode == 0 and lines, f"triton child failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return json.loads(lines[-1][len("REPORT"):])


@pytest.fixture(scope="module")
def report() -> dict:
    return _child_report(CHILD, interpret=True)  # type: ignore[return-value]


@pytest.mark.slow
def test_maps_cover_edge_cases(report: dict) -> None:
    empty = report["empty_offsets"]
    assert empty["single_voxel"] == 26 and empty["single_voxel_strided"] == 23  # all but the hit offsets
    assert empty["strided"] > 0 and empty["kernel5"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("kmap_name", MAP_NAMES)
def test_fp32_forward_and_gradients_match_reference(report: dict, kmap_name: str) -> None:
    dataflows = ["fetch_on_demand", "implicit_gemm_sorted"] if kmap_name == "kernel5" else DATAFLOW_NAMES
    for dataflow in dataflows:
        case = report["cases"][f"{kmap_name}/{dataflow}"]
        assert case["dtype"] == "torch.float32" and case["shape"] == case["ref_shape"], (dataflow, case)
        for key in ("out", "grad_x", "grad_w"):
            if case[key] is not None:
                assert case[key] <= 1e-5, f"{kmap_name}/{dataflow} {key} relative error {case[key]:.2e}"
    assert sum(report["cases"][f"{kmap_name}/{d}"]["grad_w"] is not None for d in dataflows) >= 1


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["torch.float16", "torch.bfloat16"])
def test_half_precision_with_fp32_accumulation(report: dict, dtype: str) -> None:
    for dataflow in DATAFLOW_NAMES:
        case = report["half"][f"{dtype}/{dataflow}"]
        assert case["dtype"] == dtype
        for key in ("out", "grad_x", "grad_w"):
            if case[key] is not None:
                assert case[key] <= 1e-2, f"{dtype}/{dataflow} {key} relative error {case[key]:.2e}"
    assert report["half"][f"{dtype}/gather_scatter"]["grad_w"] is not None


@pytest.mark.slow
def test_every_config_of_every_kernel(report: dict) -> None:
    expected_counts = {"gemm_scatter": 4, "rows": 2, "fetch_on_demand": 4, "implicit_gemm": 4,
                       "implicit_gemm_sorted": 4, "weight_grad": 3}
    for name, count in expected_counts.items():
        errors = report["configs"][name]
        assert len(errors) == count, name
        assert max(errors) <= 1e-5, f"{name}: relative errors per config {errors}"
    assert report["bitmasks_equal"] is True


@pytest.mark.slow
def test_autotuned_path_restores_atomic_outputs(report: dict) -> None:
    for dataflow in DATAFLOW_NAMES:
        errors = [e for e in report["autotuned"][dataflow] if e is not None]
        assert len(errors) >= 2 and max(errors) <= 1e-5, f"{dataflow}: {report['autotuned'][dataflow]}"
    assert report["autotuned"]["fetch_on_demand"][2] is not None  # weight gradient, autotuned too
    assert max(report["mixed"]) <= 1e-5  # forward and input gradient by different dataflows
    # C_out = 40 keeps 3 of 4 configs (BLOCK_N <= 64), so several were tried and restored
    assert all(trials >= 2 for trials in report["tuned_trials"].values()), report["tuned_trials"]


@pytest.mark.slow
def test_kernels_compile_for_gpu_targets_without_a_gpu() -> None:
    rows = _child_report(COMPILE_CHILD, interpret=False)
    compiled = {(kernel, dtype) for kernel, dtype, _, _ in rows}  # type: ignore[union-attr]
    kernels = {"gemm_scatter", "gather_rows", "scatter_add_rows", "fetch_on_demand", "implicit_gemm",
               "implicit_gemm_sorted", "weight_grad"}
    assert compiled == {(k, "fp16") for k in kernels} | {("implicit_gemm_sorted", "bf16"), ("weight_grad", "bf16"),
                                                          ("fetch_on_demand", "fp32"), ("implicit_gemm", "fp32")}
    assert all(cubin > 0 and 0 <= shared <= 232448 for _, _, shared, cubin in rows)  # type: ignore[union-attr]


def test_autotune_setup_and_pruning() -> None:
    from perception_ops.sparse.triton import implicit_gemm as ig
    from perception_ops.sparse.triton.common import prune_by_channels
    tuned = ig._implicit_gemm_tuned
    assert list(tuned.keys) == ["C_IN", "C_OUT"] and len(tuned.configs) == 4
    prune = prune_by_channels({"C_IN": "BLOCK_K", "C_OUT": "BLOCK_N"})
    small = prune(ig.IMPLICIT_GEMM_CONFIGS, {"C_IN": 8, "C_OUT": 16})
    assert [c.kwargs["BLOCK_N"] for c in small] == [32, 32]  # 64/128-wide tiles dropped for 16 channels
    assert len(prune(ig.IMPLICIT_GEMM_CONFIGS, {"C_IN": 256, "C_OUT": 256})) == 4


def test_clear_errors() -> None:
    from perception_ops.sparse import build_subm_map
    from perception_ops.sparse.triton import INTERPRETED, triton_sparse_matmul
    coords = torch.tensor([[0, 1, 1, 1], [0, 1, 1, 2]], dtype=torch.int32)
    kmap = build_subm_map(coords, (3, 3, 3), 3)
    x, w = torch.randn(2, 4), torch.randn(5, 3, 3, 3, 4)
    with pytest.raises(ValueError, match="unknown Triton sparse dataflow"):
        triton_sparse_matmul(x, w, kmap, "nope")
    with pytest.raises(ValueError, match="float32, float16 or bfloat16"):
        triton_sparse_matmul(x.double(), w.double(), kmap)
    with pytest.raises(ValueError, match="kernel map expects 2 inputs"):
        triton_sparse_matmul(torch.randn(3, 4), w, kmap)
    if not INTERPRETED:
        with pytest.raises(ValueError, match="need CUDA tensors.*TRITON_INTERPRET=1"):
            triton_sparse_matmul(x, w, kmap)


def test_importable_without_triton() -> None:
    code = textwrap.dedent("""
        import sys, torch
        sys.modules["triton"] = None  # import triton -> ImportError
        import perception_ops.sparse as sparse
        kmap = sparse.build_subm_map(torch.tensor([[0, 1, 1, 1]], dtype=torch.int32), (3, 3, 3), 3)
        assert sparse.TRITON_AVAILABLE is False
        try:
            sparse.triton_sparse_matmul(torch.randn(1, 2), torch.randn(3, 3, 3, 3, 2), kmap)
        except RuntimeError as e:
            print("REPORT" + json.dumps(str(e)))
    """).replace("import sys,", "import json, sys,")
    message = _child_report(code, interpret=False)
    assert "triton is not installed" in message  # type: ignore[operator]
