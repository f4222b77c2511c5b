"""Group-wise search of execution configs (TorchSparse++ style, plus the backend choice).

For one mode ('inference': forward without grad; 'training': forward + backward):

1. *fixed configs*: every forward candidate applied to all groups (spconv only where the
   group allows it); one timed run each gives the model time of that fixed config and,
   from hooks, every group's time under it.
2. per group, the fastest forward candidate; in training then the fastest dgrad dataflow
   and wgrad grouping on top of it (same hooked runs, one stage at a time).
3. the combined assignment is timed end to end; if it is not faster than the best fixed
   config, the best fixed config is taken instead.
4. greedy: per group, its next ``greedy_top_k - 1`` forward candidates are timed end to end
   with the other groups held fixed, and kept when faster.

So the result is never slower (as measured) than any fixed config, the default included.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from torch import nn

from ..execution import DEFAULT_EXECUTION, ExecutionConfig
from .groups import Group, GroupKey, conv_modules
from .space import SearchSpace, dgrad_candidates, forward_candidates, wgrad_candidates
from .timing import Measurement, Timer

Assignment = dict[GroupKey, ExecutionConfig]


@dataclass
class ModeResult:
    """Outcome of one mode: chosen config and times (seconds per run of all samples)."""

    assignment: Assignment
    time_default: float
    time_best_fixed: float
    best_fixed: ExecutionConfig
    time_tuned: float
    group_default: dict[GroupKey, float] = field(default_factory=dict)
    group_tuned: dict[GroupKey, float] = field(default_factory=dict)
    measurements: int = 0


def apply_assignment(model: nn.Module, groups: Sequence[Group], assignment: Assignment,
                     mode: str) -> None:
    """Set every grouped layer's ``mode`` config from ``assignment``."""
    convs = conv_modules(model)
    for g in groups:
        for name in g.modules:
            if name not in convs:
                raise ValueError(f"autotune: model has no sparse conv layer {name!r}")
            convs[name].set_execution(assignment.get(g.key, DEFAULT_EXECUTION), mode)


class _Search:
    """State of one mode's search (see module doc)."""

    def __init__(self, model: nn.Module, groups: Sequence[Group], run: Callable[[], Any],
                 timer: Timer, mode: str, progress: Callable[[str], None]) -> None:
        self.model, self.groups, self.run, self.timer = model, groups, run, timer
        self.mode, self.progress, self.count = mode, progress, 0

    def measure(self, assignment: Assignment, what: str) -> Measurement:
        apply_assignment(self.model, self.groups, assignment, self.mode)
        self.count += 1
        self.progress(what)
        return self.timer(self.run, self.groups, self.model, self.mode == "training")

    def allowed(self, g: Group, c: ExecutionConfig) -> ExecutionConfig:
        return c if c.backend != "spconv" or g.spconv_ok else DEFAULT_EXECUTION

    def stage(self, variations: Sequence[Callable[[Group], ExecutionConfig]], label: str
              ) -> tuple[list[Measurement], dict[GroupKey, list[tuple[float, ExecutionConfig]]]]:
        """Time each variation on all groups; per group its (time, config) list, best first."""
        results, ranked = [], {g.key: [] for g in self.groups}
        for i, make in enumerate(variations):
            assignment = {g.key: make(g) for g in self.groups}
            m = self.measure(assignment, f"{label} {i + 1}/{len(variations)}")
            results.append(m)
            for g in self.groups:
                entry = (m.per_group[g.key], assignment[g.key])
                if entry[1] not in [c for _, c in ranked[g.key]]:
                    ranked[g.key].append(entry)
        for key in ranked:
            ranked[key].sort(key=lambda e: e[0])
        return results, ranked


def search_mode(model: nn.Module, groups: Sequence[Group], run: Callable[[], Any],
                timer: Timer, mode: str, space: SearchSpace, device_type: str,
                spconv_available: bool,
                progress: Callable[[str], None] = lambda _s: None) -> ModeResult:
    """Tune one mode (module doc); leaves the model's ``mode`` configs at the result."""
    s = _Search(model, groups, run, timer, mode, progress)
    max_rows = max((g.max_rows for g in groups), default=1)
    max_k = max((g.key.kernel_size[0] * g.key.kernel_size[1] * g.key.kernel_size[2]
                 for g in groups), default=1)
    fixed = forward_candidates(space, device_type, max_rows, max_k, spconv_available)
    results, ranked = s.stage([lambda g, c=c: s.allowed(g, c) for c in fixed], "fixed")
    best_i = min(range(len(fixed)), key=lambda i: results[i].total)
    group_default = dict(results[0].per_group)
    best = {g.key: ranked[g.key][0] for g in groups}
    if mode == "training":
        for stage_name, options in (
                ("dgrad", [dict(dgrad_dataflow=d) for d in dgrad_candidates(space, device_type)]),
                ("wgrad", [dict(wgrad_params=w) for w in wgrad_candidates(space, max_rows)])):
            if len(options) < 2:
                continue
            variations = [lambda g, o=o: _patch(best[g.key][1], o) for o in options]
            _, staged = s.stage(variations, stage_name)
            best = {g.key: min(best[g.key], staged[g.key][0], key=lambda e: e[0])
                    for g in groups}
    combined = {k: c for k, (_, c) in best.items()}
    fixed_best = {g.key: s.allowed(g, fixed[best_i]) for g in groups}
    current, current_time = fixed_best, results[best_i].total
    if combined != fixed_best:
        m = s.measure(combined, "combined")
        if m.total < current_time:
            current, current_time = combined, m.total
    for g in groups:
        for _, alt in ranked[g.key][:max(space.greedy_top_k, 1)]:
            if alt == current[g.key]:
                continue
            trial = {**current, g.key: alt}
            m = s.measure(trial, f"greedy {g.key.label()}")
            if m.total < current_time:
                current, current_time = trial, m.total
    apply_assignment(model, groups, current, mode)
    group_tuned = {g.key: next((t for t, c in ranked[g.key] if c == current[g.key]),
                               best[g.key][0]) for g in groups}
    return ModeResult(current, results[0].total, results[best_i].total, fixed[best_i],
                      current_time, group_default, group_tuned, s.count)


def _patch(config: ExecutionConfig, change: dict[str, Any]) -> ExecutionConfig:
    """``config`` with a dgrad / wgrad change (spconv layers have their own backward)."""
    if config.backend == "spconv":
        return config
    return config.replace(**change)
