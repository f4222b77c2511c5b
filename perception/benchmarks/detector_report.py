"""Markdown report of the detector benchmark's figures (:mod:`.detector`)."""
from __future__ import annotations

from typing import Any


def _cell(timing: dict[str, Any] | None) -> str:
    if timing is None:
        return "-"
    return f"{timing['median_ms']:.1f} ({timing['iqr_ms']:.1f})"


def _results_table(figures: dict[str, Any]) -> list[str]:
    stages = figures["stages"]
    lines = ["| backend | frame ms (IQR) | FPS | boxes | " + " | ".join(stages) + " |",
             "|---" * (4 + len(stages)) + "|"]
    for name, r in figures["results"].items():
        lines.append(f"| {name} | {_cell(r['total'])} | {r['fps']:.3f} | {r['boxes']} | "
                     + " | ".join(_cell(r["stages"].get(s)) for s in stages) + " |")
    ratios = figures.get("ratios") or {}
    if ratios:
        lines.append("| spconv / native | " + f"{ratios['total']:.2f}x | | | " + " | ".join(
            f"{ratios[s]:.2f}x" if s in ratios else "-" for s in stages) + " |")
    return lines


def _check_line(check: dict[str, Any] | None) -> list[str]:
    if not check:
        return ["Backend cross-check: off (--no-check)."]
    lines = [f"{check['points']:,} points after the test pipeline -> {check['voxels']:,} voxels."]
    for name, pair in check["pairs"].items():
        verdict = "equal within float32 tolerance" if pair["ok"] else "DIFFERENT"
        lines.append(f"Head outputs {name} vs {check['reference']} (same weights, same voxels): "
                     f"max |diff| {pair['max_abs']:.2e}, relative to the largest output "
                     f"{pair['relative']:.2e}: {verdict} (tolerance {check['tolerance']:g}).")
    return lines


def markdown(figures: dict[str, Any]) -> str:
    """The report: machine, model, input, results table with the stage breakdown, notes."""
    m, s, model, inp = figures["machine"], figures["settings"], figures["model"], figures["input"]
    threads = m.get("torch_threads") or {}
    lines = [f"Date: {figures['date']}; machine: {m['cpu']} ({m['cpus']} CPUs), torch threads "
             f"{threads.get('intra_op', m['threads'])} (inter-op {threads.get('inter_op', '-')}); "
             f"torch {m['torch']}, spconv {m.get('spconv') or '-'}; device {s['device']}; "
             f"{figures['seconds']:.0f} s.", "",
             f"Config `{s['config']}`" + (f" with {s['cfg_options']}" if s["cfg_options"] else "")
             + f": {model['type']}, {model['params'] / 1e6:.2f} M parameters (random weights, "
             f"seed {s['seed']}, eval mode, no_grad), voxel {model['voxel_size']}, sparse shape "
             f"{model['sparse_shape']}.",
             f"Input {inp['name']}: {inp['points']:,} points ({inp['note']}).", ""]
    lines += _check_line(figures.get("check")) + [""]
    lines += [f"{s['warmup']} warm-up + {s['rounds']} timed rounds, interleaved (each round "
              f"runs every backend once); median (IQR) in ms after Tukey outlier rejection; "
              f"FPS = 1000 / median frame ms.  Stage medians are taken separately, so they need "
              f"not add up to the frame median exactly.", ""]
    lines += _results_table(figures)
    lines += ["", "### Notes", ""] + [f"- {n}" for n in figures["notes"]]
    return "\n".join(lines) + "\n"
