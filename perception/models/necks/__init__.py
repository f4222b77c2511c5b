"""necks of the stack (registered in MODELS)."""
from .second_fpn import SECONDFPN

__all__ = ["SECONDFPN"]
from .lss_fpn import GeneralizedLSSFPN  # noqa: F401,E402
