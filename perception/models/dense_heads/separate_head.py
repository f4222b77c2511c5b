"""CenterPoint's per-task output branches (mmdet3d's ``SeparateHead``) and the 2D
conv-norm-ReLU block they are made of.

Module and parameter names follow mmcv's ``ConvModule`` (``conv``, ``bn``, ``activate``) and
mmdet3d's ``SeparateHead`` (one ``nn.Sequential`` attribute per output), so mmdet3d
CenterPoint checkpoints map onto these state-dict keys unchanged.
"""
from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor, nn

from ...registry import MODELS
from ..layers.builders import ConvModule2d, build_norm_layer, check_conv_cfg  # noqa: F401  (re-exported)

@MODELS.register_module()
class SeparateHead(nn.Module):
    """One small conv branch per output: ``heads = {name: (channels, num_conv)}`` gives
    ``num_conv - 1`` conv-norm-ReLU blocks of ``head_conv`` channels then a plain conv.

    ``num_cls`` and ``init_cfg`` are accepted for mmdet3d config compatibility (the
    initialization is always mmdet3d's default): every conv is Kaiming-initialized and the
    heatmap branch's last bias starts at ``init_bias`` (-2.19: sigmoid ~0.1, the focal loss
    prior).
    """

    def __init__(self, in_channels: int, heads: Mapping[str, tuple[int, int]],
                 head_conv: int = 64, final_kernel: int = 1, init_bias: float = -2.19,
                 norm_cfg: Mapping[str, Any] | None = None, bias: bool | str = "auto",
                 conv_cfg: Mapping[str, Any] | None = None, num_cls: int | None = None,
                 init_cfg: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        check_conv_cfg(conv_cfg)
        norm_cfg = dict(type="BN2d") if norm_cfg is None else norm_cfg
        self.heads = dict(heads)
        self.init_bias = init_bias
        for name, (channels, num_conv) in self.heads.items():
            if num_conv < 1 or channels < 1:
                raise ValueError(f"SeparateHead: head {name!r} needs channels >= 1 and "
                                 f"num_conv >= 1, got {(channels, num_conv)}")
            layers: list[nn.Module] = []
            c_in = in_channels
            for _ in range(num_conv - 1):
                layers.append(ConvModule2d(c_in, head_conv, final_kernel, norm_cfg, bias))
                c_in = head_conv
            layers.append(nn.Conv2d(c_in, channels, final_kernel, padding=final_kernel // 2))
            setattr(self, name, nn.Sequential(*layers))
        self.init_weights()

    def init_weights(self) -> None:
        """Kaiming (fan_out, ReLU) convs with zero bias; the heatmap's last conv gets small
        weights (std 0.01) and bias ``init_bias`` so every cell starts at the prior
        probability sigmoid(init_bias) (RetinaNet's prior init).  mmdet3d leaves that conv at
        Kaiming init, which gives logits of std ~7 and first heatmap losses of 1e3-1e5."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        if "heatmap" in self.heads:
            nn.init.normal_(getattr(self, "heatmap")[-1].weight, std=0.01)
            nn.init.constant_(getattr(self, "heatmap")[-1].bias, self.init_bias)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """``{name: (B, channels, H, W)}`` for every head."""
        return {name: getattr(self, name)(x) for name in self.heads}
