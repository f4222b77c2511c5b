"""necks of the stack (registered in MODELS)."""
from .second_fpn import SECONDFPN

__all__ = ["SECONDFPN"]
