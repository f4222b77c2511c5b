"""Registries of the stack, children of mmengine's so mmengine's Runner finds our components.

Everything configurable is registered here and built from a config dict with
``MODELS.build(cfg)``, ``DATASETS.build(cfg)`` and so on; ``locations`` lists the packages
imported on first use, so a config never needs to import anything itself.
"""
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

SCOPE = "perception"

MODELS = Registry("model", parent=MMENGINE_MODELS, scope=SCOPE, locations=["perception.models"])
DATASETS = Registry("dataset", parent=MMENGINE_DATASETS, scope=SCOPE, locations=["perception.datasets"])
TRANSFORMS = Registry(
    "transform", parent=MMENGINE_TRANSFORMS, scope=SCOPE, locations=["perception.transforms"]
)
METRICS = Registry("metric", parent=MMENGINE_METRICS, scope=SCOPE, locations=["perception.evaluation"])
HOOKS = Registry("hook", parent=MMENGINE_HOOKS, scope=SCOPE, locations=["perception.engine"])
KERNELS = Registry("kernel", scope=SCOPE, locations=["perception_ops"])
"""Kernel implementations (dataflows, pooling ops) chosen by config or by the autotuner."""

ALL_REGISTRIES: tuple[Registry, ...] = (MODELS, DATASETS, TRANSFORMS, METRICS, HOOKS, KERNELS)
