"""SECOND backbone and SECONDFPN neck: CenterPoint shapes, mmdet3d state-dict keys, init,
resampling rules, BEV orientation and bad-argument errors."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from perception.models.backbones import SECOND
from perception.models.necks import SECONDFPN
from perception.registry import MODELS

BN = dict(type="BN", eps=1e-3, momentum=0.01)
CENTERPOINT_SECOND = dict(type="SECOND", in_channels=256, out_channels=[128, 256],
                          layer_nums=[5, 5], layer_strides=[1, 2], norm_cfg=BN,
                          conv_cfg=dict(type="Conv2d", bias=False))
CENTERPOINT_FPN = dict(type="SECONDFPN", in_channels=[128, 256], out_channels=[256, 256],
                       upsample_strides=[1, 2], norm_cfg=BN,
                       upsample_cfg=dict(type="deconv", bias=False), use_conv_for_no_stride=True)


def test_centerpoint_second_and_fpn_shapes_and_keys():
    backbone, neck = MODELS.build(CENTERPOINT_SECOND), MODELS.build(CENTERPOINT_FPN)
    x = torch.randn(2, 256, 24, 20)
    with torch.no_grad():
        feats = backbone(x)
        out = neck(feats)
    assert isinstance(feats, tuple) and [f.shape for f in feats] == [(2, 128, 24, 20), (2, 256, 12, 10)]
    assert isinstance(out, list) and len(out) == 1 and out[0].shape == (2, 512, 24, 20)
    keys = backbone.state_dict().keys()
    # each stage: 1 strided + 5 plain conv-BN-ReLU triplets -> indices 0..17 (mmdet3d layout)
    for key in ("blocks.0.0.weight", "blocks.0.1.running_mean", "blocks.0.15.weight",
                "blocks.1.0.weight", "blocks.1.16.num_batches_tracked"):
        assert key in keys, key
    assert len(backbone.blocks[0]) == 18 and backbone.blocks[1][0].stride == (2, 2)
    assert backbone.blocks[0][0].bias is None and backbone.blocks[0][1].eps == 1e-3
    assert sum(p.numel() for p in backbone.parameters()) == 4_280_832
    assert isinstance(neck.deblocks[0][0], nn.Conv2d)  # use_conv_for_no_stride: 1x1 conv
    assert neck.deblocks[0][0].kernel_size == (1, 1)
    assert isinstance(neck.deblocks[1][0], nn.ConvTranspose2d)
    assert neck.deblocks[1][0].kernel_size == (2, 2) and neck.deblocks[1][0].stride == (2, 2)
    assert set(neck.state_dict()) >= {"deblocks.0.0.weight", "deblocks.1.1.running_var"}


def test_fpn_resampling_rules():
    no_conv = SECONDFPN(in_channels=[4], out_channels=[6], upsample_strides=[1])
    assert isinstance(no_conv.deblocks[0][0], nn.ConvTranspose2d)  # mmdet3d's stride-1 rule
    down = SECONDFPN(in_channels=[4, 4], out_channels=[3, 5], upsample_strides=[0.5, 1],
                     use_conv_for_no_stride=True)
    assert isinstance(down.deblocks[0][0], nn.Conv2d) and down.deblocks[0][0].stride == (2, 2)
    out = down([torch.randn(1, 4, 8, 6), torch.randn(1, 4, 4, 3)])
    assert len(out) == 1 and out[0].shape == (1, 8, 4, 3)


def test_kaiming_init_applied_by_init_weights():
    torch.manual_seed(0)
    backbone = SECOND(in_channels=32, out_channels=[64], layer_nums=[2], layer_strides=[1])
    backbone.init_weights()
    weight = backbone.blocks[0][3].weight  # 64 -> 64, 3x3: fan_out = 576
    assert weight.std().item() == pytest.approx(math.sqrt(2 / 576), rel=0.05)
    neck = SECONDFPN(in_channels=[64], out_channels=[32], upsample_strides=[2])
    neck.init_weights()
    deconv = neck.deblocks[0][0].weight  # (in 64, out 32, 2, 2); torch's fan_out uses dim 0
    assert deconv.std().item() == pytest.approx(math.sqrt(2 / (64 * 4)), rel=0.1)


def test_bev_orientation_is_kept():
    """A single hot cell at (row, col) peaks at (row / s, col / s) in every stage."""
    backbone = SECOND(in_channels=2, out_channels=[3, 3], layer_nums=[1, 1],
                      layer_strides=[1, 2]).eval()
    with torch.no_grad():
        for module in backbone.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.fill_(0.1)
        x = torch.zeros(1, 2, 20, 28)
        x[0, :, 6, 18] = 1.0  # row (y) 6, col (x) 18
        feats = backbone(x)
    for feat, stride in zip(feats, (1, 2)):
        flat = int(feat[0, 0].argmax())
        assert divmod(flat, feat.shape[-1]) == (6 // stride, 18 // stride)


def test_frozen_norm_and_bad_arguments():
    frozen = SECOND(in_channels=4, out_channels=[4], layer_nums=[0], layer_strides=[1],
                    norm_cfg=dict(type="BN", requires_grad=False))
    assert not any(p.requires_grad for p in frozen.blocks[0][1].parameters())
    assert frozen.blocks[0][0].weight.requires_grad
    with pytest.raises(ValueError, match="same length"):
        SECOND(in_channels=4, out_channels=[4, 8], layer_nums=[1], layer_strides=[1, 2])
    with pytest.raises(ValueError, match="norm_cfg type"):
        SECOND(in_channels=4, out_channels=[4], layer_nums=[1], layer_strides=[1],
               norm_cfg=dict(type="LayerNorm3d"))
    with pytest.raises(ValueError, match=r"input must be \(B, 4, H, W\)"):
        SECOND(in_channels=4, out_channels=[4], layer_nums=[0], layer_strides=[1])(torch.ones(1, 3, 4, 4))
    with pytest.raises(ValueError, match="same length"):
        SECONDFPN(in_channels=[4, 4], out_channels=[4], upsample_strides=[1, 2])
    neck = SECONDFPN(in_channels=[4, 4], out_channels=[4, 4], upsample_strides=[1, 1])
    with pytest.raises(ValueError, match="differ in size"):  # strides do not match the maps
        neck([torch.ones(1, 4, 8, 8), torch.ones(1, 4, 4, 4)])
