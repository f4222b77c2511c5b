"""Write info files (or whole generated datasets) that the stack's datasets read quickly.

    python tools/create_data.py nuscenes  --root data/nuscenes --version v1.0-mini
    python tools/create_data.py av2       --root data/av2 --split val
    python tools/create_data.py synthetic --out data/synthetic --scenes 4 --seed 0
    python tools/create_data.py gt-database --infos data/nuscenes/nuscenes_infos_train.pkl \
        --data-root data/nuscenes --load-sweeps 9

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and ``run(args)``.
A follow-up module (``add_follow_up_arguments``, ``run_follow_up``) runs after a subcommand:
``synthetic`` builds the ground-truth database of its training infos unless ``--no-gt-database``.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

SUBCOMMANDS: dict[str, str] = {
    "nuscenes": "perception.datasets.nuscenes.create_infos",
    "av2": "perception.datasets.av2.create_infos",
    "synthetic": "perception.datasets.synthetic.create",
    "gt-database": "perception.datasets.gt_database",
}
"""Subcommand name -> module with ``add_arguments`` and ``run``."""

FOLLOW_UPS: dict[str, str] = {
    "synthetic": "perception.datasets.gt_database",
}
"""Subcommand name -> module whose ``run_follow_up`` runs after it (with its own options)."""


def _chain(*steps: Callable[[argparse.Namespace], object]) -> Callable[[argparse.Namespace], None]:
    """Run ``steps`` in order on the same arguments."""
    def run(args: argparse.Namespace) -> None:
        for step in steps:
            step(args)
    return run


def build_parser() -> argparse.ArgumentParser:
    """One sub-parser per converter module."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="dataset", required=True)
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        module.add_arguments(sub)
        steps = [module.run]
        if name in FOLLOW_UPS:
            follow_up = importlib.import_module(FOLLOW_UPS[name])
            follow_up.add_follow_up_arguments(sub)
            steps.append(follow_up.run_follow_up)
        sub.set_defaults(run=_chain(*steps))
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
