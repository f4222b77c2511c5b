"""Write info files (or whole generated datasets) that the stack's datasets read quickly.

    python tools/create_data.py nuscenes  --root data/nuscenes --version v1.0-mini
    python tools/create_data.py av2       --root data/av2 --split val
    python tools/create_data.py synthetic --out data/synthetic --scenes 4 --seed 0

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and ``run(args)``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS: dict[str, str] = {
    "nuscenes": "perception.datasets.nuscenes.create_infos",
    "av2": "perception.datasets.av2.create_infos",
    "synthetic": "perception.datasets.synthetic.create",
}
"""Subcommand name -> module with ``add_arguments`` and ``run``."""


def build_parser() -> argparse.ArgumentParser:
    """One sub-parser per converter module."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="dataset", required=True)
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"create_data {args.dataset}: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
