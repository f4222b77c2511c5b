"""ResNet image backbone: stage shapes/channels, mmdet/torchvision parameter names (a random
state dict with the expected names and shapes round-trips), frozen stages and norm_eval."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from perception.models.backbones.resnet import ResNet
from perception.registry import MODELS

BLOCKS = {18: ("basic", (2, 2, 2, 2)), 50: ("bottleneck", (3, 4, 6, 3))}


def expected_shapes(depth: int) -> dict[str, tuple[int, ...]]:
    """Parameter/buffer names and shapes of mmdet's (= torchvision's minus ``fc``) ResNet,
    written out from the architecture, independently of the implementation."""
    kind, blocks = BLOCKS[depth]
    shapes: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7)}

    def bn(prefix: str, c: int) -> None:
        shapes.update({f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
                       f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()})

    bn("bn1", 64)
    inplanes = 64
    for stage, count in enumerate(blocks):
        planes = 64 * 2 ** stage
        out = planes * (4 if kind == "bottleneck" else 1)
        for b in range(count):
            p = f"layer{stage + 1}.{b}"
            if kind == "basic":
                shapes[f"{p}.conv1.weight"] = (planes, inplanes, 3, 3)
                shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
                bn(f"{p}.bn1", planes), bn(f"{p}.bn2", planes)
            else:
                shapes[f"{p}.conv1.weight"] = (planes, inplanes, 1, 1)
                shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
                shapes[f"{p}.conv3.weight"] = (out, planes, 1, 1)
                bn(f"{p}.bn1", planes), bn(f"{p}.bn2", planes), bn(f"{p}.bn3", out)
            if b == 0 and (stage > 0 or inplanes != out):
                shapes[f"{p}.downsample.0.weight"] = (out, inplanes, 1, 1)
                bn(f"{p}.downsample.1", out)
            inplanes = out
    return shapes


@pytest.mark.parametrize("depth", [18, 50])
def test_state_dict_names_match_mmdet_and_round_trip(depth: int) -> None:
    model = ResNet(depth=depth)
    expected = expected_shapes(depth)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == expected
    g = torch.Generator().manual_seed(depth)
    random = {k: (torch.randint(0, 9, s, generator=g) if k.endswith("num_batches_tracked") else torch.randn(s, generator=g))
              for k, s in expected.items()}
    other = ResNet(depth=depth)
    other.load_state_dict(random, strict=True)
    for key, value in other.state_dict().items():
        assert torch.equal(value, random[key].to(value.dtype)), key
    # a torchvision checkpoint carries the classifier too: only it is left over
    result = other.load_state_dict({**random, "fc.weight": torch.zeros(1000, 2048), "fc.bias": torch.zeros(1000)},
                                   strict=False)
    assert result.missing_keys == [] and sorted(result.unexpected_keys) == ["fc.bias", "fc.weight"]


def test_stage_strides_and_channels() -> None:
    model = MODELS.build(dict(type="ResNet", depth=50, out_indices=[1, 2, 3])).eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [(2, 512, 8, 12), (2, 1024, 4, 6), (2, 2048, 2, 3)]
    assert model.out_channels == (512, 1024, 2048)
    r18 = ResNet(depth=18, out_indices=[0, 3]).eval()
    with torch.no_grad():
        outs = r18(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(1, 64, 16, 16), (1, 512, 2, 2)]


def test_frozen_stages_and_norm_eval() -> None:
    model = ResNet(depth=18, frozen_stages=1, norm_eval=True)
    model.train()
    frozen = [model.conv1, model.bn1, model.layer1]
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for p in model.layer2.parameters())
    assert all(not m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    free = ResNet(depth=18, norm_eval=False).train()
    assert all(m.training for m in free.modules() if isinstance(m, nn.BatchNorm2d))
    # a fresh block is the identity: zero-initialized last norm of every residual branch
    assert float(free.layer1[0].bn2.weight.detach().abs().sum()) == 0.0


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="depth"):
        ResNet(depth=20)
    with pytest.raises(ValueError, match="out_indices"):
        ResNet(depth=18, out_indices=[4])
    with pytest.raises(ValueError, match="B, C, H, W"):
        ResNet(depth=18)(torch.randn(3, 32, 32))
