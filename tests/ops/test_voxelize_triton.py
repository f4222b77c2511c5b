"""Triton voxelize kernels == the plain reference, run by Triton's interpreter on CPU tensors.

``TRITON_INTERPRET=1`` must be set before ``triton.jit`` decorates the kernels, so the checks
run in one child process (shared by all tests here) that prints a JSON report.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("triton", reason="triton is not installed (pip install triton) - Triton kernels untested")

CHILD = textwrap.dedent(r'''
    import json, torch
    from perception_ops.voxelize import VoxelGrid, reference as ref, triton_kernels as tk
    assert tk.TRITON_AVAILABLE
    RANGE = [-4.0, -4.0, -2.0, 4.0, 4.0, 2.0]
    report = {}

    def cloud(seed, n, dtype):
        g = torch.Generator().manual_seed(seed)
        p = torch.rand(n, 4, generator=g, dtype=torch.float64) * 10 - 5
        if seed % 2:
            p[:, :3] = torch.round(p[:, :3] * 2) / 2  # points on voxel boundaries
        p[0, 0], p[1, 1] = float("nan"), float("inf")
        return p.to(dtype)

    def same(a, b):
        return all(x.dtype == y.dtype and torch.equal(x, y) for x, y in zip(a, b))

    dtypes = [torch.float32, torch.float64, torch.float16]
    grids = [VoxelGrid.build(v, RANGE) for v in ([0.5] * 3, [0.3, 0.7, 0.25])]
    bad = []
    for seed in range(6):
        pts, grid = cloud(seed, 120, dtypes[seed % 3]), grids[seed % 2]
        if not torch.equal(tk.dynamic_voxelize_triton(pts, grid), ref.dynamic_voxelize_reference(pts, grid)):
            bad.append(seed)
    report["dynamic"] = bad

    bad = []
    for seed in range(6):
        pts, grid = cloud(seed, 150, dtypes[seed % 3]), grids[seed % 2]
        mp, mv = 1 + seed % 3, [4, 30, 500][seed % 3]
        v, c, n = tk.hard_voxelize_triton(pts[:, [0, 1, 2, 3, 3]], grid, mp, mv, True)
        if not same((v, c[:, 1:], n), ref.hard_voxelize_reference(pts[:, [0, 1, 2, 3, 3]], grid, mp, mv)):
            bad.append(seed)
    report["hard"] = bad

    clouds = [cloud(10, 90, torch.float32), cloud(11, 5, torch.float32)[:0], cloud(12, 60, torch.float32)]
    flat = torch.cat(clouds)
    batch = torch.repeat_interleave(torch.arange(3), torch.tensor([90, 0, 60]))
    got = tk.hard_voxelize_triton(flat, grids[0], 3, 10, True, batch, 3)
    report["batch"] = same(got, ref.hard_voxelize_batch_reference(clouds, grids[0], 3, 10))
    v, c, n = tk.hard_voxelize_triton(flat[:0], grids[0], 3, 10, True)
    report["empty"] = [list(v.shape), list(c.shape), list(n.shape), str(c.dtype), str(n.dtype)]

    bad = []
    for seed in range(3):
        pts = cloud(20 + seed, 80, torch.float64)[2:]
        coords = tk.dynamic_voxelize_triton(pts, grids[1])
        coords[::7, 0] = -1  # ignored rows
        for mode in ("mean", "max", "sum"):
            f1 = pts.clone().requires_grad_()
            f2 = pts.clone().requires_grad_()
            out1 = tk.voxel_pooling_triton(f1, coords, mode)
            out2 = ref.voxel_pooling_reference(f2, coords, mode)
            w = torch.randn_like(out2[0])
            (out1[0] * w).sum().backward()
            (out2[0] * w).sum().backward()
            ok = torch.allclose(out1[0], out2[0]) and same(out1[1:], out2[1:]) and torch.allclose(f1.grad, f2.grad)
            if not ok:
                bad.append(f"{seed}-{mode}")
    report["pooling"] = bad

    ties = torch.tensor([[1.0, 2.0], [1.0, 5.0], [0.5, 5.0]], dtype=torch.float64, requires_grad=True)
    tk.voxel_pooling_triton(ties, torch.zeros((3, 3), dtype=torch.int32), "max")[0].sum().backward()
    report["ties"] = ties.grad.tolist()
    feats = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    small = torch.tensor([[0, 0, 1], [0, 0, 1], [0, 1, 0], [-1, 0, 0], [0, 0, 1]], dtype=torch.int32)
    report["gradcheck"] = all(torch.autograd.gradcheck(lambda f: tk.voxel_pooling_triton(f, small, m)[0], (feats,),
                                                       raise_exception=False)
                              for m in ("mean", "max"))
    print("REPORT" + json.dumps(report))
''')


@pytest.fixture(scope="module")
def report() -> dict:
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("REPORT")]
    assert proc.returncode == 0 and lines, f"triton child failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return json.loads(lines[-1][len("REPORT"):])


pytestmark = pytest.mark.slow


def test_dynamic_voxelize_kernel(report: dict) -> None:
    assert report["dynamic"] == [], f"seeds differing from the reference: {report['dynamic']}"


def test_hard_voxelize_kernels(report: dict) -> None:
    assert report["hard"] == [], f"seeds differing from the reference: {report['hard']}"
    assert report["batch"] is True


def test_empty_input(report: dict) -> None:
    assert report["empty"] == [[0, 3, 4], [0, 4], [0], "torch.int32", "torch.int32"]


def test_pooling_kernel_forward_and_gradients(report: dict) -> None:
    assert report["pooling"] == [], f"(seed, mode) differing from the reference: {report['pooling']}"
    assert report["ties"] == [[0.5, 0.0], [0.5, 0.5], [0.0, 0.5]]
    assert report["gradcheck"] is True
