"""Models of the stack (registered in :mod:`perception.registry`)."""
from . import backbones, voxel_encoders  # noqa: F401  (registers the models)
from . import data_preprocessors, dense_heads, detectors, losses, necks, task_modules  # noqa: F401
from .backbones import SparseEncoder
from .voxel_encoders import DynamicSimpleVFE, DynamicVoxelizer, HardSimpleVFE, HardVoxelizer

__all__ = ["DynamicSimpleVFE", "DynamicVoxelizer", "HardSimpleVFE", "HardVoxelizer",
           "SparseEncoder"]
from . import map  # noqa: F401,E402
from . import fusers, vtransforms  # noqa: F401,E402
from . import planning  # noqa: F401,E402
