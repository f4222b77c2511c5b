"""data preprocessors of the stack (registered in MODELS)."""
from .voxelize import Det3DDataPreprocessor

__all__ = ["Det3DDataPreprocessor"]
