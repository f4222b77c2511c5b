"""Targets (PASS/MISS) and the markdown report of the sparse benchmark's figures.

"native" in a target is the autotuned execution when the run has one, else the default.
"Within noise" for tuned <= best fixed: the ratio may exceed 1 by the two entries' relative
IQRs added, clamped to [5 %, 25 %] (both are medians of a few runs on a shared machine; a
larger spread is flagged NOISY rather than allowed).
"""
from __future__ import annotations

from typing import Any, Callable

MIN_NOISE, MAX_NOISE = 0.05, 0.25
Row = dict[str, Any]
Target = tuple[str, str, float, Callable[[dict[str, Any]], tuple[float | None, str, float]]]


def _ms(row: Row, phase: str) -> float:
    return row[phase]["median_ms"]


def _rel_iqr(row: Row, phase: str) -> float:
    return row[phase]["iqr_ms"] / max(row[phase]["median_ms"], 1e-12)


def native_name(enc: dict[str, Any]) -> str:
    return "tuned" if "tuned" in enc["rows"] else "default"


def _speedup(phase: str) -> Callable[[dict[str, Any]], tuple[float | None, str, float]]:
    def value(enc: dict[str, Any]) -> tuple[float | None, str, float]:
        rows, name = enc["rows"], native_name(enc)
        if "spconv" not in rows:
            return None, "no spconv in this run", 0.0
        return _ms(rows["spconv"], phase) / _ms(rows[name], phase), f"spconv / {name}", 0.0
    return value


def _tuned_vs_fixed(phase: str) -> Callable[[dict[str, Any]], tuple[float | None, str, float]]:
    def value(enc: dict[str, Any]) -> tuple[float | None, str, float]:
        rows = enc["rows"]
        best = enc["best_fixed_fwd" if phase == "fwd" else "best_fixed_fwdbwd"]
        if "tuned" not in rows or best is None:
            return None, "no tuned config or no fixed configs in this run", 0.0
        spread = _rel_iqr(rows["tuned"], phase) + _rel_iqr(rows[best], phase)
        noise = min(MAX_NOISE, max(MIN_NOISE, spread))
        detail = f"best fixed: {best}" + (f"; NOISY: the two IQRs add up to {100 * spread:.0f}%"
                                          if spread > MAX_NOISE else "")
        return _ms(rows["tuned"], phase) / _ms(rows[best], phase), detail, noise
    return value


def _default_vs_tuned(phase: str) -> Callable[[dict[str, Any]], tuple[float | None, str, float]]:
    def value(enc: dict[str, Any]) -> tuple[float | None, str, float]:
        rows = enc["rows"]
        if "tuned" not in rows:
            return None, "no tuned config in this run", 0.0
        return _ms(rows["default"], phase) / _ms(rows["tuned"], phase), "default / tuned", 0.0
    return value


def _mm_part(enc: dict[str, Any]) -> tuple[float | None, str, float]:
    row = enc["rows"][native_name(enc)]
    return row.get("mm_pct_dense"), f"{native_name(enc)}: mm part GFLOP/s / dense mm GFLOP/s", 0.0


TARGETS: tuple[Target, ...] = (
    ("encoder fwd speedup vs spconv", ">=", 3.0, _speedup("fwd")),
    ("encoder fwd+bwd speedup vs spconv", ">=", 2.0, _speedup("fwdbwd")),
    ("tuned / best fixed, fwd", "<=", 1.0, _tuned_vs_fixed("fwd")),
    ("tuned / best fixed, fwd+bwd", "<=", 1.0, _tuned_vs_fixed("fwdbwd")),
    ("default / tuned, fwd", ">=", 1.2, _default_vs_tuned("fwd")),
    ("default / tuned, fwd+bwd", ">=", 1.2, _default_vs_tuned("fwdbwd")),
    ("encoder mm part % of dense mm", ">=", 50.0, _mm_part),
)


def evaluate_targets(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per (target, input): value, PASS / MISS / N/A and what was compared."""
    out = []
    for name, op, goal, fn in TARGETS:
        for input_name, enc in figures["encoder"].items():
            value, detail, noise = fn(enc)
            if value is None:
                status = "N/A"
            elif op == ">=":
                status = "PASS" if value >= goal else "MISS"
            else:
                status = "PASS" if value <= goal * (1 + noise) else "MISS"
            out.append({"target": name, "input": input_name, "op": op, "goal": goal,
                        "value": value, "tolerance": noise, "status": status,
                        "detail": detail})
    return out


def _f(v: Any, fmt: str = ".1f") -> str:
    return "-" if v is None else format(v, fmt)


def _encoder_table(enc: dict[str, Any]) -> list[str]:
    rows, spconv = enc["rows"], enc["rows"].get("spconv")
    lines = [f"{enc['conv_layers']} conv layers, {enc['pairs']:,} kernel-map pairs, "
             f"{enc['gflop']:.2f} useful GFLOP per forward; dense mm reference "
             f"{enc['dense_gflops']:.1f} GFLOP/s; BEV {enc['bev_shape']}", "",
             "| execution | fwd ms (IQR) | fwd+bwd ms (IQR) | fwd GFLOP/s | mm part GFLOP/s "
             "| mm part % of dense | spconv/this fwd | spconv/this fwd+bwd |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        vs = [(_ms(spconv, p) / _ms(r, p)) if spconv else None for p in ("fwd", "fwdbwd")]
        mark = " (best fixed fwd)" if name == enc["best_fixed_fwd"] else ""
        mark += " (best fixed fwd+bwd)" if name == enc["best_fixed_fwdbwd"] else ""
        lines.append(f"| {name}{mark} | {_ms(r, 'fwd'):.1f} ({r['fwd']['iqr_ms']:.1f}) | "
                     f"{_ms(r, 'fwdbwd'):.1f} ({r['fwdbwd']['iqr_ms']:.1f}) | "
                     f"{_f(r['gflops'])} | {_f(r.get('mm_gflops'))} | "
                     f"{_f(r.get('mm_pct_dense'), '.0f')} | {_f(vs[0], '.2f')} | "
                     f"{_f(vs[1], '.2f')} |")
    if "equal" in enc:
        e = enc["equal"]
        lines += ["", f"native vs spconv: BEV max |diff| {e['bev_max_abs']:.2e} (relative "
                      f"{e['bev_rel']:.2e}), input-conv weight-gradient relative diff "
                      f"{e['wgrad_rel']:.2e}: {'equal within float32 tolerance' if e['ok'] else 'DIFFERENT'}"
                      f" (tolerance: BEV 1e-3, weight gradient 1e-2)"]
    return lines


def _tuning_table(tuning: dict[str, Any]) -> list[str]:
    """The tuner's choice per layer group and its own end-to-end times."""
    source = f"cache {tuning['cache']}" + (" (reused)" if tuning["from_cache"] else "")
    lines = [f"Autotuned configs ({source}):", "", "| mode | layer group | config |",
             "|---|---|---|"]
    for mode, data in tuning.items():
        if isinstance(data, dict):
            lines += [f"| {mode} | {g} | {c} |" for g, c in data["groups"].items()]
    lines += ["", "The tuner's own end-to-end times (its timer, not interleaved): " + "; ".join(
        f"{mode}: default {1e3 * d['time_default_s']:.1f} ms, best fixed "
        f"{1e3 * d['time_best_fixed_s']:.1f} ms ({d['best_fixed']}), tuned "
        f"{1e3 * d['time_tuned_s']:.1f} ms" for mode, d in tuning.items() if isinstance(d, dict))]
    return lines


def _layer_table(layers: list[dict[str, Any]]) -> list[str]:
    lines = ["| layer | voxels in -> out | pairs | map ms | native fwd ms | spconv fwd ms | "
             "native fwd+bwd ms | spconv fwd+bwd ms | best config (matmul only) | its fwd ms "
             "| its GFLOP/s | its mm % of dense | dense mm GFLOP/s | equal |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in layers:
        best = next(c for c in r["configs"] if c["label"] == r["best_config"])
        sp = r.get("spconv")
        lines.append(
            f"| {r['layer']} | {r['voxels_in']:,} -> {r['voxels_out']:,} | {r['pairs']:,} | "
            f"{r['map']['median_ms']:.1f} | {_ms(r['native'], 'fwd'):.1f} | "
            f"{_f(sp and _ms(sp, 'fwd'))} | {_ms(r['native'], 'fwdbwd'):.1f} | "
            f"{_f(sp and _ms(sp, 'fwdbwd'))} | {best['label']} | {_ms(best, 'fwd'):.2f} | "
            f"{best['gflops']:.1f} | {_f(best['mm_pct_dense'], '.0f')} | "
            f"{r['dense_gflops']:.1f} | {'yes' if r.get('equal', {}).get('ok') else '-'} |")
    return lines


def markdown(figures: dict[str, Any]) -> str:
    """The report: machine, inputs, targets, encoder and layer tables, notes."""
    m = figures["machine"]
    lines = [f"Date: {figures['date']}; machine: {m['cpu']} ({m['cpus']} CPUs), "
             f"{m['threads']} torch threads; torch {m['torch']}, spconv {m['spconv'] or '-'}; "
             f"{figures['seconds']:.0f} s.", "", "| input | points | voxels | note |",
             "|---|---|---|---|"]
    lines += [f"| {i['name']} | {i['points']:,} | {i['voxels']:,} | {i['note']} |"
              for i in figures["inputs"]]
    lines += ["", "### Targets", "", "| target | input | value | goal | status | compared |",
              "|---|---|---|---|---|---|"]
    for t in figures["targets"]:
        goal = f"{t['op']} {t['goal']:g}" + (f" (+{100 * t['tolerance']:.0f}% noise)"
                                              if t["tolerance"] else "")
        lines.append(f"| {t['target']} | {t['input']} | {_f(t['value'], '.2f')} | {goal} | "
                     f"**{t['status']}** | {t['detail']} |")
    for name, enc in figures["encoder"].items():
        lines += ["", f"### Encoder on {name}", ""] + _encoder_table(enc)
        if enc.get("tuning"):
            lines += [""] + _tuning_table(enc["tuning"])
    for name, layers in figures["layers"].items():
        lines += ["", f"### Single layers on {name}", ""] + _layer_table(layers)
    lines += ["", "### Notes", ""] + [f"- {n}" for n in figures["notes"]]
    return "\n".join(lines) + "\n"
