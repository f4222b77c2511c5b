"""Install the `perception` package and the kernels in `ops/` (imported as `perception_ops`).

`ops/` is mapped to the import name `perception_ops` so it can never collide with another
installed top-level package called `ops`.
"""
import os
import shutil
import sys
from glob import glob

from setuptools import find_packages, setup

OPS_IMPORT_NAME = "perception_ops"
NATIVE_SOURCES = sorted(glob("ops/csrc/*.cpp"))


def _note(message: str) -> None:
    print(f"perception-stack: {message}", file=sys.stderr)


def native_extensions() -> tuple[list, dict]:
    """The C++/OpenMP CPU kernels as ``perception_ops._C``, or nothing with a clear note.

    They are built during ``pip install`` (with ``--no-build-isolation`` so the installed
    torch is used).  Without a C++ compiler, or with PERCEPTION_NO_NATIVE=1, the package
    installs without them and the ops use their PyTorch paths.
    """
    if os.environ.get("PERCEPTION_NO_NATIVE") == "1":
        _note("PERCEPTION_NO_NATIVE=1: skipping the native CPU kernels (PyTorch fallbacks are used)")
        return [], {}
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        _note(f"no C++ compiler found ({compiler!r} is not on PATH; install g++ or set CXX): "
              "installing without the native CPU kernels, the PyTorch fallbacks are used")
        return [], {}
    try:
        from torch.utils.cpp_extension import BuildExtension, CppExtension
    except ImportError:
        _note("torch is not installed in the build environment: install torch==2.13.0 first and "
              "run pip with --no-build-isolation to build the native CPU kernels; installing without them")
        return [], {}
    extension = CppExtension(
        f"{OPS_IMPORT_NAME}._C",
        NATIVE_SOURCES,
        extra_compile_args=["-O3", "-fopenmp", "-std=c++17"],
        extra_link_args=["-fopenmp"],
        # header-only edits must rebuild the kernels that include them
        depends=sorted(glob("ops/csrc/*.h")),
    )
    return [extension], {"build_ext": BuildExtension.with_options(use_ninja=False)}


EXTENSIONS, CMDCLASS = native_extensions()

ops_packages = [OPS_IMPORT_NAME] + [f"{OPS_IMPORT_NAME}.{p}" for p in find_packages("ops")]

setup(
    name="perception-stack",
    version="0.1.0",
    description="Autonomous-driving 3D perception stack: sparse conv, FlatFormer, BEVFusion, "
    "vector maps and STR planning on nuScenes, Argoverse 2 and a synthetic world.",
    python_requires=">=3.10",
    packages=find_packages(include=["perception", "perception.*"]) + ops_packages,
    package_dir={OPS_IMPORT_NAME: "ops"},
    include_package_data=True,
    ext_modules=EXTENSIONS,
    cmdclass=CMDCLASS,
    install_requires=[
        "torch>=2.4",
        "numpy<2",
        "pyarrow<21",
        "mmengine",
        "nuscenes-devkit",
        "av2",
        "shapely",
        "motmetrics",
        "matplotlib",
        "Pillow",
        "tqdm",
        "pyquaternion",
        "tensorboard",
        # the ROS bridge (perception.bridge): rosbridge v2 client, bag replay, Foxglove + MCAP
        "roslibpy",
        "rosbags",
        "foxglove-sdk",
        "websockets",
        "mcap",
    ],
    extras_require={
        # triton runs the GPU kernels' tests on the CPU (TRITON_INTERPRET=1); spconv is the
        # peer the sparse engine is checked against (weights, outputs, gradients)
        "test": ["pytest", "pytest-timeout", "hypothesis", "triton", "spconv-cu120"],
        "triton": ["triton"],
        "spconv": ["spconv-cu120==2.3.6"],
        "open3d": ["open3d==0.20.0"],
    },
)
