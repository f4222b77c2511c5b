"""Install-time behaviour: the ops import name, the native build and its clear failure mode."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_ops_import_under_a_collision_free_name() -> None:
    import perception_ops

    assert Path(perception_ops.__file__).parent == REPO_ROOT / "ops"


def test_native_kernels_built_by_install() -> None:
    from perception_ops.native import native_module

    module = native_module()
    assert module is not None, "make install should have compiled perception_ops._C"
    assert module.openmp_max_threads() >= 1


def test_missing_compiler_gives_a_clear_message_not_a_traceback() -> None:
    env = {**os.environ, "CXX": "/nonexistent/c++"}
    result = subprocess.run([sys.executable, "setup.py", "--name"], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "no C++ compiler found" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout.strip() == "perception-stack"
