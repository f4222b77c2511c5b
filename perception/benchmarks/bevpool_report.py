"""Targets (PASS/MISS) and the markdown report of the BEV pooling benchmark's figures.

The issue's targets, as ratios of interleaved medians: the native interval op at least 10x
faster than the LSS cumsum trick and at least 2x faster than ``index_add_``, in the forward,
the backward and both, for each group (given the features; given depth and context, where
the fused op is compared with lifting the outer product and then pooling); the cached-plan
forward at least 1.5x faster than recomputing the geometry, ranks and sort every frame.
"""
from __future__ import annotations

from typing import Any

Target = tuple[str, str, str, str, str, float]
"""(name, group, section, slower row, faster row, goal): value = slower / faster median;
group "" means a top-level section (the cache)."""


def _speedups(group: str, fast: str, slow_rows: dict[str, str], prefix: str) -> list[Target]:
    out = []
    for label, slow in slow_rows.items():
        goal = 10.0 if "cumsum" in slow else 2.0
        for section, phase in (("forward", "fwd"), ("backward", "bwd"), ("fwdbwd", "fwd+bwd")):
            out.append((f"{prefix}{phase} speedup vs {label}", group, section, slow, fast, goal))
    return out


TARGETS: tuple[Target, ...] = (
    *_speedups("features", "interval", {"cumsum": "cumsum", "index_add_": "index_add"}, ""),
    *_speedups("depth_context", "fused", {"lift+cumsum": "lift+cumsum", "lift+index_add_": "lift+index_add"},
               "fused: "),
    ("cached plan vs recompute, fwd", "", "cached", "recompute", "cached", 1.5),
)

SECTIONS = (("forward", "forward"), ("backward", "backward alone"), ("fwdbwd", "forward+backward"))
GROUP_TITLES = {"features": "Pooling given the (N, C) features (every method gets the plan's ranks and sort)",
                "depth_context": "Pooling given depth (B, Ncam, D, H, W) and context (B, Ncam, H, W, C): "
                                 "fused vs lifting the outer product first"}


def _ms(figures: dict[str, Any], group: str, section: str, row: str) -> float | None:
    block = figures["groups"].get(group, {}) if group else figures
    entry = block.get(section, {}).get(row)
    return None if entry is None else entry["median_ms"]


def evaluate_targets(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per target: value, PASS / MISS / N/A and what was compared."""
    out = []
    for name, group, section, slow, fast, goal in TARGETS:
        slow_ms, fast_ms = _ms(figures, group, section, slow), _ms(figures, group, section, fast)
        value = slow_ms / fast_ms if slow_ms is not None and fast_ms else None
        status = "N/A" if value is None else ("PASS" if value >= goal else "MISS")
        where = f"{group} {section}" if group else section
        out.append({"target": name, "op": ">=", "goal": goal, "value": value, "status": status,
                    "detail": f"{where}: {slow} / {fast} median"})
    return out


def _f(v: Any, fmt: str = ".1f") -> str:
    return "-" if v is None else format(v, fmt)


def _method_table(group: dict[str, Any]) -> list[str]:
    lines = ["| method | fwd ms (IQR) | bwd ms (IQR) | fwd+bwd ms (IQR) | fwd x first | fwd+bwd x first "
             "| fwd rel. error (vs fp64) | grad rel. diff vs first |", "|---|---|---|---|---|---|---|---|"]
    first = next(iter(group["forward"]))
    for name in group["forward"]:
        cells = [f"{group[s][name]['median_ms']:.1f} ({group[s][name]['iqr_ms']:.1f})" for s, _ in SECTIONS]
        ratios = [group[s][name]["median_ms"] / group[s][first]["median_ms"] for s in ("forward", "fwdbwd")]
        acc = group["accuracy"].get(name, {})
        cells += [f"{ratios[0]:.2f}", f"{ratios[1]:.2f}", _f(acc.get("fwd_rel_error"), ".1e"),
                  _f(acc.get("grad_rel_diff"), ".1e")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _cache_table(figures: dict[str, Any]) -> list[str]:
    rows = (("cached", "plan from the cache (key hash + lookup) + native forward"),
            ("recompute", "geometry + ranks + sort + intervals + native forward"),
            ("plan_cached", "plan from the cache alone"),
            ("plan_recompute", "geometry + plan build alone"),
            ("geometry", "frustum geometry alone"))
    lines = ["| path | what | ms (IQR) |", "|---|---|---|"]
    for key, what in rows:
        t = figures["cached"].get(key)
        if t is not None:
            lines.append(f"| {key} | {what} | {t['median_ms']:.2f} ({t['iqr_ms']:.2f}) |")
    return lines


def markdown(figures: dict[str, Any]) -> str:
    """The report: machine, setting, targets, the method table, the cache table, notes."""
    m, s, p = figures["machine"], figures["settings"], figures["plan"]
    lines = [f"Date: {figures['date']}; machine: {m['cpu']} ({m['cpus']} CPUs), {m['threads']} torch "
             f"threads; torch {m['torch']}; {figures['seconds']:.0f} s; rig: {figures['rig']['name']} "
             f"({len(figures['rig']['cameras'])} cameras).", "",
             f"Setting: input {s['image_size'][0]}x{s['image_size'][1]}, features "
             f"{s['feature_size'][0]}x{s['feature_size'][1]} x {s['channels']} channels, depth bins "
             f"{s['dbound']}, grid x {s['xbound']} y {s['ybound']} z {s['zbound']} "
             f"(Z, Y, X = {p['grid_zyx']}); {p['points']:,} frustum points, {p['kept']:,} inside the grid "
             f"({100 * p['kept_fraction']:.1f}%), {p['intervals']:,} non-empty cells (mean "
             f"{p['mean_interval']:.1f}, max {p['max_interval']:,} points per cell); plan indices "
             f"{p['index_mib']:.1f} MiB; {s['repeats']} interleaved rounds, medians.", "",
             "### Targets", "", "| target | value | goal | status | compared |", "|---|---|---|---|---|"]
    for t in figures["targets"]:
        lines.append(f"| {t['target']} | {_f(t['value'], '.2f')} | {t['op']} {t['goal']:g} | "
                     f"**{t['status']}** | {t['detail']} |")
    for name, group in figures["groups"].items():
        lines += ["", f"### {GROUP_TITLES.get(name, name)}", ""] + _method_table(group)
    lines += ["", "### Cached plan vs recomputing every frame (forward, no grad)", ""]
    lines += _cache_table(figures)
    lines += ["", "### Notes", ""] + [f"- {n}" for n in figures["notes"]]
    return "\n".join(lines) + "\n"
