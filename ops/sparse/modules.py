"""spconv-compatible sparse conv layers: SubMConv3d, SparseConv3d, SparseInverseConv3d.

Constructor signatures, parameter names, weight layout (spconv 2.x KRSC:
``(out_channels, kD, kH, kW, in_channels)``) and initialisation follow spconv 2.x, so a
spconv 2.x ``state_dict`` loads with ``load_state_dict(strict=True)`` and a model written for
spconv needs only its imports changed.  spconv's performance knobs (``algo``, ``fp32_accum``,
``large_kernel_fast_algo``, ``name``) are accepted and ignored.

Each conv layer has a tunable execution config (:class:`.execution.ExecutionConfig`: dataflow,
its parameters, dgrad / wgrad choices, backend), one for inference and one for training,
picked per call by :func:`.execution.active_mode` (training when ``module.training`` and grad
is enabled).  Set with ``module.set_execution(config, mode)``; ``module.execution`` is the
config of the current mode.  Configs are not part of the ``state_dict`` (spconv keys only).

Under ``torch.autocast`` the layers cast features and weights to the autocast dtype (as
``F.conv3d`` does); outside it, features and weights must share a dtype.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from .coords import IntOrTriple, Triple, as_triple
from .execution import DEFAULT_EXECUTION, MODES, ExecutionConfig, active_mode, run_conv
from .gather_gemm_scatter import SparseTensor


class SparseModule(nn.Module):
    """Marker base: SparseSequential hands these modules the SparseTensor itself (as spconv)."""


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    """The autocast dtype when autocast is on for ``device_type``, else None."""
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return None


class _SparseConvNd(SparseModule):
    """Shared parameters, init and input checks of the three conv layers."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTriple,
                 stride: IntOrTriple, padding: IntOrTriple, dilation: IntOrTriple, groups: int,
                 bias: bool, indice_key: str | None, subm: bool, inverse: bool) -> None:
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{type(self).__name__}: {name} must be a positive int, "
                                 f"got {v!r}")
        if groups != 1:
            raise ValueError(f"{type(self).__name__}: groups must be 1 (as in spconv 2.x), "
                             f"got {groups}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size: Triple = as_triple(kernel_size, "kernel_size")
        self.stride: Triple = as_triple(stride, "stride")
        self.padding: Triple = as_triple(padding, "padding", 0)
        self.dilation: Triple = as_triple(dilation, "dilation")
        self.subm, self.inverse, self.indice_key = subm, inverse, indice_key
        if subm and self.stride != (1, 1, 1):
            raise ValueError(f"SubMConv3d has stride 1, got stride {stride}")
        if subm and any(k % 2 == 0 for k in self.kernel_size):
            raise ValueError(f"SubMConv3d needs odd kernel sizes (as spconv 2.x), got "
                             f"{self.kernel_size}")
        self.weight = nn.Parameter(torch.empty(out_channels, *self.kernel_size, in_channels))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels))
        else:
            self.register_parameter("bias", None)
        self._execution: dict[str, ExecutionConfig] = dict.fromkeys(MODES, DEFAULT_EXECUTION)
        self.reset_parameters()

    @property
    def execution(self) -> ExecutionConfig:
        """Execution config of the current mode (see module doc)."""
        return self._execution[active_mode(self.training)]

    def execution_for(self, mode: str) -> ExecutionConfig:
        """Execution config of ``mode`` ('inference' or 'training')."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        return self._execution[mode]

    def set_execution(self, config: ExecutionConfig | None, mode: str = "both") -> None:
        """Set the config of ``mode`` ('inference', 'training' or 'both'); None = default."""
        if mode not in MODES + ("both",):
            raise ValueError(f"mode must be one of {MODES + ('both',)}, got {mode!r}")
        config = DEFAULT_EXECUTION if config is None else config
        if not isinstance(config, ExecutionConfig):
            raise TypeError(f"set_execution expects an ExecutionConfig, got "
                            f"{type(config).__name__}")
        for m in (MODES if mode == "both" else (mode,)):
            self._execution[m] = config

    def forward(self, x: SparseTensor) -> SparseTensor:
        x, w, b = self._prepare(x)
        return run_conv(self, x, w, b, self.execution)

    def reset_parameters(self) -> None:
        """spconv 2.x init: kaiming-uniform (a = sqrt(5)) with fan_in = in * kD*kH*kW, bias
        uniform(+-1/sqrt(fan_in)) -- i.e. nn.Conv3d's default on the KRSC layout."""
        fan_in = self.in_channels * math.prod(self.kernel_size)
        gain = nn.init.calculate_gain("leaky_relu", math.sqrt(5))
        bound = math.sqrt(3.0) * gain / math.sqrt(fan_in)
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)
            if self.bias is not None:
                b = 1 / math.sqrt(fan_in)
                self.bias.uniform_(-b, b)

    def _prepare(self, x: SparseTensor) -> tuple[SparseTensor, Tensor, Tensor | None]:
        """Check the input and return (input, weight, bias) in the compute dtype."""
        name = type(self).__name__
        if not isinstance(x, SparseTensor):
            raise TypeError(f"{name} expects a perception_ops.sparse.SparseTensor, got "
                            f"{type(x).__name__} (convert spconv tensors with "
                            f"backends.from_spconv)")
        if x.features.shape[1] != self.in_channels:
            raise ValueError(f"{name}: input has {x.features.shape[1]} channels, the layer "
                             f"expects in_channels = {self.in_channels}")
        weight, bias = self.weight, self.bias
        cast = _autocast_dtype(x.features.device.type)
        if cast is not None:
            weight = weight.to(cast)
            bias = None if bias is None else bias.to(cast)
            if x.features.dtype != cast:
                x = x.replace(x.features.to(cast))
        elif x.features.dtype != weight.dtype:
            raise ValueError(f"{name}: features dtype {x.features.dtype} != weight dtype "
                             f"{weight.dtype}; cast the module (.to(dtype)) or the features, "
                             f"or run under torch.autocast")
        return x, weight, bias

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1, 1):
            s += f", dilation={self.dilation}"
        if self.bias is None:
            s += ", bias=False"
        if self.indice_key is not None:
            s += f", indice_key={self.indice_key!r}"
        for mode, config in self._execution.items():
            if config != DEFAULT_EXECUTION:
                s += f", {mode}={config.describe()}"
        return s


class SparseConv3d(_SparseConvNd):
    """spconv ``SparseConv3d``: outputs at every cell whose receptive field has an input."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTriple,
                 stride: IntOrTriple = 1, padding: IntOrTriple = 0, dilation: IntOrTriple = 1,
                 groups: int = 1, bias: bool = True, indice_key: str | None = None,
                 algo: Any = None, fp32_accum: bool | None = None,
                 large_kernel_fast_algo: bool = False, name: str | None = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, indice_key, subm=False, inverse=False)


class SubMConv3d(_SparseConvNd):
    """spconv ``SubMConv3d``: outputs exactly at the input voxels (stride 1, centred kernel)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTriple,
                 stride: IntOrTriple = 1, padding: IntOrTriple = 0, dilation: IntOrTriple = 1,
                 groups: int = 1, bias: bool = True, indice_key: str | None = None,
                 algo: Any = None, fp32_accum: bool | None = None,
                 large_kernel_fast_algo: bool = False, name: str | None = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, indice_key, subm=True, inverse=False)


class SparseInverseConv3d(_SparseConvNd):
    """spconv ``SparseInverseConv3d``: undoes the SparseConv3d named ``indice_key``, giving
    back that conv's input coordinates (kernel size must match that conv's)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTriple,
                 indice_key: str, bias: bool = True, algo: Any = None,
                 fp32_accum: bool | None = None, large_kernel_fast_algo: bool = False,
                 name: str | None = None) -> None:
        if not isinstance(indice_key, str) or not indice_key:
            raise ValueError(f"SparseInverseConv3d needs the indice_key of the SparseConv3d it "
                             f"inverts, got {indice_key!r}")
        super().__init__(in_channels, out_channels, kernel_size, 1, 0, 1, 1, bias, indice_key,
                         subm=False, inverse=True)
