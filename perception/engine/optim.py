"""``AutocastOptimWrapper``: mixed precision by ``torch.autocast`` on any device, no loss scaling.

mmengine 0.10.7's ``AmpOptimWrapper`` asserts a GPU/NPU/MLU at construction, so it cannot run
bf16 on CPU.  bfloat16 has float32's exponent range, so it needs no ``GradScaler``; this wrapper
only enters ``torch.autocast(device_type=<the model's device>, dtype=...)`` around the forward
pass (``optim_context``), and is a plain ``OptimWrapper`` otherwise (clip_grad, accumulation).
For float16 on a GPU use mmengine's ``AmpOptimWrapper`` (dynamic loss scaling).

Registered in mmengine's ``OPTIM_WRAPPERS`` (perception.registry has no optim-wrapper child).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS
from torch import nn

AUTOCAST_DTYPES = ("bfloat16", "float16")


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward pass runs under ``torch.autocast(dtype)``."""

    def __init__(self, dtype: str = "bfloat16", **kwargs) -> None:
        if dtype not in AUTOCAST_DTYPES:
            raise ValueError(f"AutocastOptimWrapper: dtype must be one of {AUTOCAST_DTYPES}, got {dtype!r}")
        super().__init__(**kwargs)
        self.cast_dtype = getattr(torch, dtype)

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """Gradient-accumulation context of ``OptimWrapper`` plus autocast on the model's device."""
        parameter = next(model.parameters(), None)
        device_type = parameter.device.type if parameter is not None else "cpu"
        with super().optim_context(model), torch.autocast(device_type=device_type, dtype=self.cast_dtype):
            yield
