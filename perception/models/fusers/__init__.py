"""BEV fusers (registered in MODELS): concatenate + conv, and add."""
from .fusers import AddFuser, ConvFuser

__all__ = ["AddFuser", "ConvFuser"]
