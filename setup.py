"""Install the `perception` package and the kernels in `ops/` (imported as `perception_ops`).

`ops/` is mapped to the import name `perception_ops` so it can never collide with another
installed top-level package called `ops`.
"""
from setuptools import find_packages, setup

OPS_IMPORT_NAME = "perception_ops"

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
    ],
    extras_require={
        # triton runs the GPU kernels' tests on the CPU (TRITON_INTERPRET=1)
        "test": ["pytest", "pytest-timeout", "hypothesis", "triton"],
        "triton": ["triton"],
        "spconv": ["spconv-cu120==2.3.6"],
        "open3d": ["open3d==0.20.0"],
        "bridge": ["roslibpy", "rosbags", "foxglove-sdk"],
    },
)
