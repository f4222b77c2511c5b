"""Triton BEV pooling kernels == the references, run by Triton's interpreter on CPU tensors.

``TRITON_INTERPRET=1`` must be set before ``triton.jit`` decorates the kernels, so the checks
run in one child process (shared by the tests here) that prints a JSON report.  A second
child, without the interpreter, compiles every kernel and config for sm_90 / sm_80 (no GPU).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("triton", reason="triton is not installed (pip install triton) - Triton kernels untested")

from bev_pool_cases import CASES  # noqa: E402  (after the skip)

CHILD = textwrap.dedent(r'''
    import json, sys, torch
    sys.path.insert(0, sys.argv[1])
    from bev_pool_cases import CASES, GRID, SMALL_GRID, depth_context, gradcheck_case, lifted, make_case
    from perception_ops.bev_pool import BEVPoolPlan, bev_pool, bev_pool_depth
    from perception_ops.bev_pool import triton_depth as td, triton_kernels as tk
    from perception_ops.bev_pool import reference as ref
    assert tk.INTERPRETED
    report = {"cases": {}, "depth": {}, "configs": {}}

    def grads(fn, inputs, weight):
        return torch.autograd.grad((fn(*inputs) * weight).sum(), inputs)

    def same(a, b):
        return all(torch.allclose(x, y, rtol=1e-12, atol=1e-12) for x, y in zip(a, b))

    def max_diff(a, b):
        return float((a.detach() - b.detach()).abs().max()) if a.numel() else 0.0

    for case in CASES:
        geometry, features = make_case(case)
        plan = BEVPoolPlan.build(geometry, GRID)
        f = features.clone().requires_grad_()
        out = bev_pool(f, plan, backend="triton")
        w = torch.randn(out.shape, dtype=out.dtype)
        got = grads(lambda x: bev_pool(x, plan, backend="triton"), (f,), w)
        errs = []
        for method in ("index_add", "cumsum"):
            expected = ref.bev_pool_reference(features, geometry, GRID, method)
            want = grads(lambda x: ref.bev_pool_reference(x, geometry, GRID, method), (f,), w)
            errs.append([max_diff(out, expected), bool(torch.equal(got[0], want[0]))])
        report["cases"][case] = errs
        d, c = (t.requires_grad_() for t in depth_context(geometry, channels=3))
        fused = bev_pool_depth(d, c, plan, backend="triton")
        expected = ref.bev_pool_reference(lifted(d, c), geometry, GRID, "cumsum")
        w = torch.randn(fused.shape, dtype=fused.dtype)
        fused_grads = grads(lambda a, b: bev_pool_depth(a, b, plan, backend="triton"), (d, c), w)
        lifted_grads = grads(lambda a, b: ref.bev_pool_reference(lifted(a, b), geometry, GRID, "cumsum"), (d, c), w)
        report["depth"][case] = [max_diff(fused, expected), same(fused_grads, lifted_grads)]

    geometry, features = make_case("random", torch.float32, channels=136)
    plan = BEVPoolPlan.build(geometry, GRID)
    expected = ref.pool_index_add(features.double(), plan.ranks, plan.num_rows)
    for i in range(len(tk.FORWARD_CONFIGS)):
        out = tk.interval_sum_triton(features, plan.order, plan.starts, plan.lengths, plan.cells, plan.num_rows, i)
        report["configs"][f"fwd{i}"] = float((out.double() - expected).abs().max())
    grad = torch.randn(plan.num_rows, 136)
    gather = torch.cat([grad, grad.new_zeros(1, 136)])[plan.ranks.where(plan.ranks >= 0, plan.num_rows)]
    for i in range(len(tk.BACKWARD_CONFIGS)):
        report["configs"][f"bwd{i}"] = bool(torch.equal(tk.gather_cells_triton(grad, plan.ranks, i), gather))
    d, c = depth_context(geometry, channels=136, dtype=torch.float32)
    d3, c3 = d.reshape(4, 4, 15), c.reshape(4, 15, 136)
    want = bev_pool(lifted(d, c).double(), plan, backend="torch").permute(0, 3, 4, 2, 1).reshape(-1, 136)
    for i in range(len(td.FORWARD_CONFIGS)):
        out = td.depth_interval_sum_triton(d3, c3, plan.order, plan.starts, plan.lengths, plan.cells, plan.num_rows, i)
        report["configs"][f"depth_fwd{i}"] = float((out.double() - want).abs().max())
    ref_gd = (gather.view(4, 4, 15, 136) * c3[:, None]).sum(-1)
    ref_gc = (gather.view(4, 4, 15, 136) * d3[..., None]).sum(1)
    for i in range(len(td.DEPTH_GRAD_CONFIGS)):
        got = td.depth_grad_triton(grad, c3, plan.ranks, d3.shape, i)
        report["configs"][f"depth_grad{i}"] = float((got - ref_gd).abs().max())
    for i in range(len(td.CONTEXT_GRAD_CONFIGS)):
        got = td.context_grad_triton(grad, d3, plan.ranks, c3.shape, i)
        report["configs"][f"context_grad{i}"] = float((got - ref_gc).abs().max())
    half = bev_pool(features.half(), plan, backend="triton")
    report["half"] = [str(half.dtype), float((half.double() - ref.bev_pool_reference(
        features.double(), geometry, GRID)).abs().max())]
    geometry, f = gradcheck_case()
    small = BEVPoolPlan.build(geometry, SMALL_GRID)
    d, c = (t.requires_grad_() for t in depth_context(geometry, channels=3))
    report["gradcheck"] = [  # fast mode: the interpreter takes ~0.1 s per launch
        torch.autograd.gradcheck(lambda x: bev_pool(x, small, backend="triton"), (f,), fast_mode=True),
        torch.autograd.gradcheck(lambda a, b: bev_pool_depth(a, b, small, backend="triton"), (d, c), fast_mode=True)]
    print("REPORT" + json.dumps(report))
''')

COMPILE_CHILD = textwrap.dedent(r'''
    import json
    from perception_ops.bev_pool.triton_kernels import compile_for_target
    print("REPORT" + json.dumps(compile_for_target(90, "fp32") + compile_for_target(80, "fp16")))
''')


def _child(code: str, interpret: bool) -> object:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    proc = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent)], capture_output=True,
                          text=True, env=env, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("REPORT")]
    assert proc.returncode == 0 and lines, f"triton child failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return json.loads(lines[-1][len("REPORT"):])


@pytest.fixture(scope="module")
def report() -> dict:
    return _child(CHILD, interpret=True)  # type: ignore[return-value]


pytestmark = pytest.mark.slow


def test_plain_op_matches_references_and_gradients(report: dict) -> None:
    assert set(report["cases"]) == set(CASES)
    for case, per_reference in report["cases"].items():
        for max_diff, grad_equal in per_reference:
            assert max_diff <= 1e-12 and grad_equal, (case, per_reference)
    assert report["half"][0] == "torch.float16" and report["half"][1] < 5e-2


def test_fused_depth_op_matches_references_and_gradients(report: dict) -> None:
    assert set(report["depth"]) == set(CASES)
    for case, (max_diff, grads_ok) in report["depth"].items():
        assert max_diff <= 1e-12 and grads_ok, (case, max_diff, grads_ok)


def test_gradcheck(report: dict) -> None:
    assert report["gradcheck"] == [True, True]


def test_every_config_of_every_kernel(report: dict) -> None:
    configs = report["configs"]
    counts = {"fwd": 4, "bwd": 3, "depth_fwd": 3, "depth_grad": 2, "context_grad": 2}
    for prefix, count in counts.items():
        values = [v for k, v in configs.items() if k.rstrip("0123456789") == prefix]
        assert len(values) == count, prefix
        assert all(v is True for v in values) if prefix == "bwd" else max(values) < 1e-4, (prefix, values)


def test_kernels_compile_for_gpu_targets_without_a_gpu() -> None:
    rows = _child(COMPILE_CHILD, interpret=False)
    assert len(rows) == 2 * (4 + 3 + 3 + 2 + 2)  # type: ignore[arg-type]
    assert {r["kernel"] for r in rows} == {"interval_sum", "gather_cells", "depth_interval_sum",  # type: ignore[index]
                                           "depth_grad", "context_grad"}
    assert all(r["cubin"] > 0 for r in rows)  # type: ignore[index]
