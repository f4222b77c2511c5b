"""BEV pooling for the LSS camera branch (BEVFusion's interval method), with cached plans.

* :func:`bev_pool` (:mod:`.api`): sum ``(N, C)`` frustum features into BEV cells, forward and
  backward, on the native C++/OpenMP CPU kernels, the Triton GPU kernels or plain torch
  (:mod:`.backends`);
* :func:`bev_pool_depth` (:mod:`.depth`): the same for LSS's depth x context outer product,
  without materializing it (much less memory and time in training);
* :class:`BEVPoolPlan` (:mod:`.plan`): ranks, sort and intervals of a frustum geometry,
  computed once; :class:`BEVPoolPlanCache` (:mod:`.cache`) reuses it while the calibration is
  unchanged;
* :mod:`.frustum`: the frustum points of a camera rig in the LiDAR frame;
* :mod:`.reference`: the LSS cumsum trick and a plain ``index_add_``, the two references.
"""
from .api import bev_pool, cells_to_bev
from .backends import BACKENDS, native_available, select_backend
from .cache import BEVPoolPlanCache, calibration_key
from .depth import bev_pool_depth
from .frustum import frustum_geometry, frustum_points
from .plan import BEVPoolPlan, compute_ranks, grid_from_bounds, grid_shape

__all__ = [
    "BACKENDS", "BEVPoolPlan", "BEVPoolPlanCache", "bev_pool", "bev_pool_depth", "calibration_key", "cells_to_bev",
    "compute_ranks", "frustum_geometry", "frustum_points", "grid_from_bounds", "grid_shape",
    "native_available", "select_backend",
]
