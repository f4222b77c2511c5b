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
DATASETS = Registry("dataset", parent=MMENGINE_DATASETS, scope=SCOPE,
                    locations=["perception.datasets", "perception.planning.motion_dataset"])
TRANSFORMS = Registry(
    "transform", parent=MMENGINE_TRANSFORMS, scope=SCOPE, locations=["perception.transforms"]
)
METRICS = Registry("metric", parent=MMENGINE_METRICS, scope=SCOPE, locations=["perception.evaluation"])
HOOKS = Registry("hook", parent=MMENGINE_HOOKS, scope=SCOPE, locations=["perception.engine"])
KERNELS = Registry("kernel", scope=SCOPE, locations=["perception_ops"])
"""Kernel implementations (dataflows, pooling ops) chosen by config or by the autotuner."""



def _runtime_child(name: str) -> Registry:
    """A child of one of mmengine's runtime registries under our scope, so the Runner finds
    its loops, optimizers, schedulers... from the ``perception`` scope without warnings."""
    import mmengine.registry as mm_registries

    parent = getattr(mm_registries, name)
    return Registry(parent.name, parent=parent, scope=SCOPE, locations=["perception.engine"])


RUNNERS = _runtime_child("RUNNERS")
LOOPS = _runtime_child("LOOPS")
OPTIMIZERS = _runtime_child("OPTIMIZERS")
OPTIM_WRAPPERS = _runtime_child("OPTIM_WRAPPERS")
OPTIM_WRAPPER_CONSTRUCTORS = _runtime_child("OPTIM_WRAPPER_CONSTRUCTORS")
PARAM_SCHEDULERS = _runtime_child("PARAM_SCHEDULERS")
DATA_SAMPLERS = _runtime_child("DATA_SAMPLERS")
VISUALIZERS = _runtime_child("VISUALIZERS")
VISBACKENDS = _runtime_child("VISBACKENDS")
LOG_PROCESSORS = _runtime_child("LOG_PROCESSORS")
MODEL_WRAPPERS = _runtime_child("MODEL_WRAPPERS")
WEIGHT_INITIALIZERS = _runtime_child("WEIGHT_INITIALIZERS")
FUNCTIONS = _runtime_child("FUNCTIONS")

ALL_REGISTRIES: tuple[Registry, ...] = (MODELS, DATASETS, TRANSFORMS, METRICS, HOOKS, KERNELS)
