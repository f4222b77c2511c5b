"""detectors of the stack (registered in MODELS)."""
from .base import Base3DDetector
from .centerpoint import CenterPoint

__all__ = ["Base3DDetector", "CenterPoint"]
from . import bevfusion, bevfusion_inputs  # noqa: F401,E402
