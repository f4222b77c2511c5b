"""SparseEncoder: mmdet3d's sparse 3-D middle encoder (SECOND / CenterPoint) on our engine.

Arguments, layer structure and state-dict keys are mmdet3d's ``SparseEncoder`` (so its
checkpoints load), plus ``sparseconv_backend`` choosing the conv layers' backend
(``'native'``: perception_ops.sparse, ``'spconv'``: spconv 2.x), like mmdet3d's MinkUNet
switch.  Each native conv layer can be given its own execution config (dataflow / backend)
by the autotuner (:mod:`perception_ops.sparse.autotune`); ``execution`` picks them from a
config (a fixed config, a tuned JSON or ``"auto"``, see :mod:`.sparse_execution`).

``forward(voxel_features (M, C), coors (M, 4) int32 (b, z, y, x), batch_size)`` returns the
BEV map ``(B, C_out * D, H, W)`` of the stack's convention (columns +x, rows +y;
``bev[b, c * D + z, y, x]``, see ``perception_ops.sparse.tensor.to_bev``).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn

from perception_ops.sparse import make_sparse_tensor, to_bev, validate_coords
from perception_ops.sparse.backends import BACKENDS

from ...registry import MODELS
from .sparse_execution import DEFAULT_CACHE_DIR, apply_execution, check_execution
from .sparse_blocks import CONV_ORDER, SparseBasicBlock, SparseStack, make_sparse_convmodule

BLOCK_TYPES = ("conv_module", "basicblock")


def _check_layout(channels: Sequence[Sequence[int]], paddings: Sequence[Sequence[Any]]) -> None:
    if len(channels) != len(paddings) or any(
            len(tuple(c)) != len(tuple(p)) for c, p in zip(channels, paddings)):
        raise ValueError(f"encoder_channels {channels} and encoder_paddings {paddings} must "
                         f"have the same nesting (one padding per block)")


@MODELS.register_module()
class SparseEncoder(nn.Module):
    """mmdet3d ``SparseEncoder`` (module doc); defaults are mmdet3d's (SECOND)."""

    def __init__(self, in_channels: int, sparse_shape: Sequence[int],
                 order: Sequence[str] = CONV_ORDER,
                 norm_cfg: dict | None = None,
                 base_channels: int = 16, output_channels: int = 128,
                 encoder_channels: Sequence[Sequence[int]] = ((16,), (32, 32, 32),
                                                              (64, 64, 64), (64, 64, 64)),
                 encoder_paddings: Sequence[Sequence[Any]] = ((1,), (1, 1, 1), (1, 1, 1),
                                                              ((0, 1, 1), 1, 1)),
                 block_type: str = "conv_module", return_middle_feats: bool = False,
                 sparseconv_backend: str = "native", execution: Any = None,
                 execution_cache_dir: str = DEFAULT_CACHE_DIR) -> None:
        super().__init__()
        check_execution(execution)
        self.execution_spec, self.execution_cache_dir = execution, execution_cache_dir
        self.execution_applied: str | None = None
        if block_type not in BLOCK_TYPES:
            raise ValueError(f"SparseEncoder: block_type must be one of {BLOCK_TYPES}, got "
                             f"{block_type!r}")
        if sparseconv_backend not in BACKENDS:
            raise ValueError(f"SparseEncoder: sparseconv_backend must be one of "
                             f"{sorted(BACKENDS)}, got {sparseconv_backend!r}")
        if len(sparse_shape) != 3:
            raise ValueError(f"SparseEncoder: sparse_shape must be (D, H, W), got {sparse_shape}")
        _check_layout(encoder_channels, encoder_paddings)
        self.sparse_shape = tuple(int(s) for s in sparse_shape)
        self.in_channels, self.base_channels = in_channels, base_channels
        self.output_channels = output_channels
        self.encoder_channels, self.encoder_paddings = encoder_channels, encoder_paddings
        self.order, self.block_type = tuple(order), block_type
        self.return_middle_feats = return_middle_feats
        self.sparseconv_backend = sparseconv_backend
        norm_cfg = dict(norm_cfg or dict(type="BN1d", eps=1e-3, momentum=0.01))
        pre_act = self.order[0] != "conv"  # mmdet3d: pre-activation input conv is conv only
        self.conv_input = make_sparse_convmodule(
            in_channels, base_channels, 3, "subm1", padding=1, conv_type="SubMConv3d",
            norm_cfg=norm_cfg, order=("conv",) if pre_act else self.order,
            backend=sparseconv_backend)
        out_ch = self._make_encoder_layers(norm_cfg, base_channels)
        self.conv_out = make_sparse_convmodule(
            out_ch, output_channels, (3, 1, 1), "spconv_down2", stride=(2, 1, 1), padding=0,
            conv_type="SparseConv3d", norm_cfg=norm_cfg, order=CONV_ORDER,
            backend=sparseconv_backend)

    def _make_encoder_layers(self, norm_cfg: dict, in_channels: int) -> int:
        """``encoder_layers.encoder_layer{i}``, each a stack of blocks (mmdet3d's rules)."""
        self.encoder_layers = SparseStack()
        last_stage = len(self.encoder_channels) - 1
        for i, blocks in enumerate(self.encoder_channels):
            layers: list[nn.Module] = []
            for j, out_channels in enumerate(tuple(blocks)):
                padding = tuple(self.encoder_paddings[i])[j]
                padding = tuple(padding) if isinstance(padding, (list, tuple)) else padding
                down = dict(stride=2, padding=padding, indice_key=f"spconv{i + 1}",
                            conv_type="SparseConv3d")
                if self.block_type == "conv_module":
                    kw = down if i != 0 and j == 0 else dict(
                        padding=padding, indice_key=f"subm{i + 1}", conv_type="SubMConv3d")
                    layers.append(make_sparse_convmodule(
                        in_channels, out_channels, 3, norm_cfg=norm_cfg, order=self.order,
                        backend=self.sparseconv_backend, **kw))
                elif j == len(blocks) - 1 and i != last_stage:
                    layers.append(make_sparse_convmodule(
                        in_channels, out_channels, 3, norm_cfg=norm_cfg, order=self.order,
                        backend=self.sparseconv_backend, **down))
                else:
                    layers.append(SparseBasicBlock(in_channels, out_channels, norm_cfg,
                                                   f"subm{i + 1}", self.sparseconv_backend))
                in_channels = out_channels
            self.encoder_layers.add_module(f"encoder_layer{i + 1}", SparseStack(*layers))
        return in_channels

    def forward(self, voxel_features: Tensor, coors: Tensor,
                batch_size: int) -> Tensor | tuple[Tensor, list[Any]]:
        """BEV map (B, C_out * D, H, W) of the voxels (module doc)."""
        if voxel_features.dim() != 2 or voxel_features.shape[1] != self.in_channels:
            raise ValueError(f"SparseEncoder: voxel_features must be (M, {self.in_channels}), "
                             f"got {tuple(voxel_features.shape)}")
        if coors.dim() != 2 or coors.shape != (voxel_features.shape[0], 4):
            raise ValueError(f"SparseEncoder: coors must be (M, 4) (b, z, y, x) with M = "
                             f"{voxel_features.shape[0]}, got {tuple(coors.shape)}")
        if self.execution_applied is None:  # once, on the first batch (the device is known now)
            self.execution_applied = apply_execution(self, self.execution_spec, voxel_features.device,
                                                     self.execution_cache_dir)
        coors = coors.to(torch.int32)
        validate_coords(coors, self.sparse_shape, int(batch_size))
        x = make_sparse_tensor(voxel_features, coors, self.sparse_shape, int(batch_size),
                               backend=self.sparseconv_backend)
        x = self.conv_input(x)
        middle = []
        for stage in self.encoder_layers:
            x = stage(x)
            middle.append(x)
        bev = to_bev(self.conv_out(x))
        return (bev, middle) if self.return_middle_feats else bev
