"""Autotuner of the sparse conv layers: grouping, search with an injected deterministic
timer (fastest candidate wins, never slower than a fixed config), cache round trip and
reuse, --force, apply_tuned, identical outputs; plus the real hook timer on a tiny model."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from perception_ops.sparse import (SparseConv3d, SparseInverseConv3d, SparseSequential,
                                   SparseTensor, SubMConv3d, dense)
from perception_ops.sparse.autotune import (GroupKey, HookTimer, Measurement, SearchSpace,
                                            TuneResult, apply_tuned, autotune, conv_modules,
                                            discover_groups, robust_median)
from perception_ops.sparse.autotune.cache import engine_key
from perception_ops.sparse.autotune.space import forward_candidates, wgrad_candidates
from perception_ops.sparse.backends import BACKENDS
from perception_ops.sparse.execution import DEFAULT_EXECUTION, ExecutionConfig

SHAPE = (8, 12, 12)
HAS_SPCONV = BACKENDS["spconv"].is_available()


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return SparseSequential(
        SubMConv3d(4, 8, 3, indice_key="s1"), nn.ReLU(),
        SubMConv3d(8, 8, 3, indice_key="s1"), SubMConv3d(8, 8, 3, indice_key="s1"),
        SparseConv3d(8, 16, 3, 2, 1, indice_key="d1"), SubMConv3d(16, 16, 3, indice_key="s2"),
        SparseInverseConv3d(16, 8, 3, indice_key="d1"))


def sample(seed: int, n: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    volume = SHAPE[0] * SHAPE[1] * SHAPE[2]
    flat = torch.randperm(volume, generator=g)[:n]
    zyx = torch.stack([flat // 144, (flat // 12) % 12, flat % 12], 1)
    coords = torch.cat([torch.zeros(n, 1, dtype=torch.long), zyx], 1).to(torch.int32)
    return torch.randn(n, 4, generator=g), coords


def forward(model: nn.Module, s: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return dense(model(SparseTensor(s[0], s[1], SHAPE, 1)))


WINNERS = {  # (group label prefix) -> cheapest config in the fake cost model
    "subm k3x3x3 s1x1x1 ts1x1x1 4->8": ExecutionConfig("implicit_gemm",
                                                      {"tile_rows": 256, "sorted": False}),
    "subm k3x3x3 s1x1x1 ts1x1x1 8->8": ExecutionConfig("fetch_on_demand", {"chunk_size": 4096}),
    "conv k3x3x3 s2x2x2 ts1x1x1 8->16": ExecutionConfig(
        "gather_gemm_scatter", {"epsilon": 0.25, "mm_thresh": 2048}),
}


class FakeTimer:
    """Deterministic cost model: 1.0 per group, 0.1 for its winner, spconv 0.5 (0.05 for the
    ts2 subm group); runs the model once per call so every tried config really executes."""

    def __init__(self) -> None:
        self.calls = 0

    def cost(self, key: GroupKey, config: ExecutionConfig) -> float:
        label = key.label()
        if config.backend == "spconv":
            return 0.05 if label.startswith("subm k3x3x3 s1x1x1 ts2x2x2") else 0.5
        winner = WINNERS.get(label)
        if winner is not None and config.replace(params=dict(config.params)) == winner:
            return 0.1
        if config.dgrad_dataflow == "implicit_gemm":
            return 0.9
        return 1.0

    def __call__(self, run, groups, model, training) -> Measurement:
        self.calls += 1
        run()
        convs = conv_modules(model)
        mode = "training" if training else "inference"
        per = {g.key: sum(self.cost(g.key, convs[n].execution_for(mode)) for n in g.modules)
               for g in groups}
        return Measurement(sum(per.values()), per)


class NoTimer:
    def __call__(self, *args, **kwargs):
        raise AssertionError("the cached result should have been reused")


def test_groups_by_stride_kernel_channels_and_kind():
    net = tiny_net().eval()
    groups = discover_groups(net, lambda: forward(net, sample(0)))
    labels = {g.key.label(): g for g in groups}
    assert list(labels) == ["subm k3x3x3 s1x1x1 ts1x1x1 4->8", "subm k3x3x3 s1x1x1 ts1x1x1 8->8",
                            "conv k3x3x3 s2x2x2 ts1x1x1 8->16",
                            "subm k3x3x3 s1x1x1 ts2x2x2 16->16",
                            "inverse k3x3x3 s1x1x1 ts2x2x2 16->8"]
    assert labels["subm k3x3x3 s1x1x1 ts1x1x1 8->8"].modules == ["2", "3"]
    # the conv an inverse conv undoes and the inverse itself must stay native
    assert [g.spconv_ok for g in groups] == [True, True, False, True, False]
    assert labels["subm k3x3x3 s1x1x1 ts1x1x1 4->8"].max_rows == 200


def test_tuner_picks_fastest_and_caches(tmp_path):
    net, samples = tiny_net(), [sample(1), sample(2)]
    net.eval()
    reference = forward(net, samples[0])
    timer = FakeTimer()
    result = autotune(net, samples, forward, timer=timer, cache_dir=tmp_path, progress=False)
    chosen = {k.label(): c for k, _, c in result.configs("inference")}
    for label, winner in WINNERS.items():
        assert chosen[label] == winner, label
    if HAS_SPCONV:
        assert chosen["subm k3x3x3 s1x1x1 ts2x2x2 16->16"].backend == "spconv"
    assert chosen["inverse k3x3x3 s1x1x1 ts2x2x2 16->8"] == DEFAULT_EXECUTION
    data = result.modes["inference"]
    assert data["time_default"] == pytest.approx(6.0)
    assert data["time_tuned"] <= data["time_best_fixed"] <= data["time_default"]
    expected = 0.1 + 2 * 0.1 + 0.1 + (0.05 if HAS_SPCONV else 1.0) + 1.0
    assert data["time_tuned"] == pytest.approx(expected)
    # applied to the model, and the output is unchanged
    assert net[2].execution == WINNERS["subm k3x3x3 s1x1x1 ts1x1x1 8->8"]
    assert torch.allclose(forward(net, samples[0]), reference, atol=1e-5)
    # cache file on disk, keyed by device and model
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1 and result.path == files[0]
    saved = json.loads(files[0].read_text())
    assert saved["device"]["threads"] == torch.get_num_threads()
    assert saved["device"]["engine"] == engine_key()  # a new dataflow means a new cache file
    assert saved["model"]["class"] == "SparseSequential"
    # reused next time (no timing at all), on a fresh model of the same structure
    fresh = tiny_net().eval()
    cached = autotune(fresh, samples, forward, timer=NoTimer(), cache_dir=tmp_path,
                      progress=False)
    assert cached.from_cache and fresh[2].execution == net[2].execution
    assert torch.allclose(forward(fresh, samples[0]), reference, atol=1e-5)
    # force retunes
    timer2 = FakeTimer()
    autotune(tiny_net(), samples, forward, timer=timer2, cache_dir=tmp_path, force=True,
             progress=False)
    assert timer2.calls == timer.calls > 5


def test_apply_tuned_from_file_and_wrong_model(tmp_path):
    net = tiny_net().eval()
    result = autotune(net, [sample(3)], forward, timer=FakeTimer(), cache_dir=tmp_path,
                      progress=False)
    fresh = tiny_net()
    assert fresh[0].execution == DEFAULT_EXECUTION
    assert apply_tuned(fresh, result.path) == 6  # 6 layers, inference mode only
    assert fresh[0].execution_for("inference") == WINNERS["subm k3x3x3 s1x1x1 ts1x1x1 4->8"]
    with pytest.raises(ValueError, match="no sparse conv layer"):
        apply_tuned(SparseSequential(SubMConv3d(4, 8, 3)), result)


def test_training_mode_tunes_dgrad_and_keeps_bn_state(tmp_path):
    net = SparseSequential(SubMConv3d(4, 8, 3, indice_key="s1"), nn.BatchNorm1d(8),
                           SubMConv3d(8, 8, 3, indice_key="s1"))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    space = SearchSpace(dataflows=("gather_gemm_scatter", "implicit_gemm"),
                        params={"gather_gemm_scatter": {"epsilon": (0.0,), "mm_thresh": (0,)},
                                "implicit_gemm": {"tile_rows": (1024,), "sorted": (True,)}},
                        backends=("native",), wgrad=False)
    result = autotune(net, [sample(4)], forward, modes=("training",), space=space,
                      timer=FakeTimer(), cache_dir=None, progress=False)
    configs = [c for _, _, c in result.configs("training")]
    assert all(c.dgrad_dataflow == "implicit_gemm" for c in configs)
    assert net[0].execution_for("training").dgrad_dataflow == "implicit_gemm"
    assert net[0].execution_for("inference") == DEFAULT_EXECUTION
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_execution_mode_follows_training_and_grad():
    conv = SubMConv3d(4, 8, 3)
    fast = ExecutionConfig("implicit_gemm")
    conv.set_execution(fast, "training")
    conv.train()
    assert conv.execution == fast
    with torch.no_grad():
        assert conv.execution == DEFAULT_EXECUTION
    conv.eval()
    assert conv.execution == DEFAULT_EXECUTION
    assert "training=implicit_gemm" in repr(conv)
    assert "training" not in str(conv.state_dict().keys())


def test_execution_config_validation_and_json():
    c = ExecutionConfig("fetch_on_demand", {"chunk_size": 4096}, dgrad_dataflow="implicit_gemm",
                        wgrad_params={"epsilon": 0.5, "mm_thresh": 2048})
    assert ExecutionConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    with pytest.raises(ValueError, match="unknown forward dataflow"):
        ExecutionConfig("nope")
    with pytest.raises(ValueError, match="chunk_size"):
        ExecutionConfig("implicit_gemm", {"chunk_size": 4})
    with pytest.raises(ValueError, match="backend"):
        ExecutionConfig(backend="cuda")
    with pytest.raises(ValueError, match="spconv backend takes only"):
        ExecutionConfig(backend="spconv", params={"tile_rows": 4})


def test_every_candidate_runs_and_matches_default():
    net = tiny_net().eval()
    s = sample(5)
    reference = forward(net, s)
    for config in forward_candidates(SearchSpace(), "cpu", 200, 27, HAS_SPCONV):
        for name, m in conv_modules(net).items():
            ok = config.backend != "spconv" or name not in ("4", "6")
            m.set_execution(config if ok else None)
        assert torch.allclose(forward(net, s), reference, atol=1e-5), config.describe()


def test_search_space_is_pruned():
    cands = forward_candidates(SearchSpace(backends=("native",)), "cpu", 1000, 27, False)
    assert cands[0] == DEFAULT_EXECUTION
    ggs = [dict(c.params) for c in cands if c.dataflow == "gather_gemm_scatter"]
    assert not any(p.get("mm_thresh") == 0 and p.get("epsilon", 0) > 0 for p in ggs)
    assert max(p.get("mm_thresh", 0) for p in ggs) == 2048  # first value >= 1000 rows
    tiles = {dict(c.params)["tile_rows"] for c in cands if c.dataflow == "implicit_gemm"}
    assert tiles == {256, 1024}
    assert len(cands) == len(set(cands))
    blocks = [dict(c.params)["block_rows"] for c in cands
              if c.dataflow == "native_implicit_gemm"]
    assert blocks == [64, 128, 256, 512]  # every size below 1000 rows, once
    wgrads = wgrad_candidates(SearchSpace(), 1000)
    assert wgrads[0] == {"epsilon": 0.0, "mm_thresh": 0, "native": True}
    # the native weight gradient does not group: its grouping parameters stay at 0
    assert [w for w in wgrads if w["native"]] == [wgrads[0]]
    assert {"epsilon": 0.1, "mm_thresh": 2048, "native": False} in wgrads


def test_robust_median_drops_outliers():
    assert robust_median([1.0, 1.1, 0.9, 1.0, 50.0]) == pytest.approx(1.0)
    assert robust_median([2.0]) == 2.0


def test_hook_timer_measures_groups_forward_and_backward():
    net = tiny_net()
    s = sample(6)
    groups = discover_groups(net.eval(), lambda: forward(net, s))
    timer = HookTimer(warmup=1, repeats=3)
    m = timer(lambda: forward(net, s), groups, net, False)
    assert m.total > 0 and all(v > 0 for v in m.per_group.values())
    # medians are taken per group, so their sum may exceed the median total a little
    assert sum(m.per_group.values()) <= 1.5 * m.total

    def train_step() -> None:
        forward(net, s).square().mean().backward()
    net.train()
    mt = timer(train_step, groups, net, True)
    assert all(v > 0 for v in mt.per_group.values())
    assert sum(mt.per_group.values()) <= 1.5 * mt.total
