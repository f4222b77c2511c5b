"""Vector-map heads on BEV features (MapTR- and MapQR-style), their matcher and losses, and
the MapDetector that puts one on the LiDAR BEV encoder (all registered in MODELS)."""
from .base_head import MAP_CLASSES, BaseMapHead, MapHeadInputError
from .map_detector import MapDetector
from .mapqr_head import MapQRHead
from .maptr_head import MapTRHead
from .matching import PermutationHungarianMatcher, equivalent_permutations

__all__ = ["MAP_CLASSES", "BaseMapHead", "MapDetector", "MapHeadInputError", "MapQRHead", "MapTRHead",
           "PermutationHungarianMatcher", "equivalent_permutations"]

# HRMapNet's modules (perception/models/map/hrmap*.py, another issue) register themselves when
# present; importing them here means configs need no extra import.
import importlib as _importlib
import pkgutil as _pkgutil

for _module in _pkgutil.iter_modules(__path__):
    if _module.name.startswith("hrmap"):
        _importlib.import_module(f"{__name__}.{_module.name}")
