"""Benchmarks of the stack, each printing a markdown report and optionally saving figures.

    python tools/benchmark.py sparse [--json PATH] [--markdown PATH] [options]
    python tools/benchmark.py sparse --quick --input random --voxels 2000   # smoke test

Each benchmark lives in its own module exposing ``add_arguments(parser)``, ``run(args) ->
dict`` (every figure) and ``markdown(figures) -> str``.  ``--json`` writes the figures as
strict JSON (atomically), ``--markdown`` writes the printed report.  A benchmark reports; it
does not fail on a missed target (exit status 0), only on bad input (1).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

BENCHMARKS: dict[str, str] = {
    "sparse": "perception.benchmarks.sparse",
    "detector": "perception.benchmarks.detector",
    "flatformer": "perception.benchmarks.flatformer",
    "bevpool": "perception.benchmarks.bevpool",
    "bevfusion": "perception.benchmarks.bevfusion",
    "maphead": "perception.benchmarks.maphead",
    "planner": "perception.benchmarks.planner",
}
"""Benchmark name -> module with ``add_arguments``, ``run`` and ``markdown``."""


def build_parser() -> argparse.ArgumentParser:
    """One sub-parser per available benchmark module, each with --json / --markdown."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="benchmark", required=True)
    for name, module_name in BENCHMARKS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name and module_name.startswith(error.name):
                continue  # that benchmark has not landed yet
            raise
        sub = subparsers.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        sub.add_argument("--json", type=Path, default=None, help="write every figure as JSON")
        sub.add_argument("--markdown", type=Path, default=None, help="write the report")
        module.add_arguments(sub)
        sub.set_defaults(module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    from perception.benchmarks import write_atomic, write_json

    args = build_parser().parse_args(argv)
    try:
        figures = args.module.run(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"benchmark {args.benchmark}: error: {error}", file=sys.stderr)
        return 1
    report = args.module.markdown(figures)
    print(report)
    if args.json is not None:
        print(f"wrote {write_json(args.json, figures)}")
    if args.markdown is not None:
        print(f"wrote {write_atomic(args.markdown, report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
