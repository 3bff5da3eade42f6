"""The ``trm-rl`` command line: one subcommand per module, each exposing ``add_parser``."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

from trm_rl import __version__

SUBCOMMAND_MODULES = (
    "trm_rl.demo",
    "trm_rl.agents.train_cli",
    "trm_rl.agents.evaluate_cli",
    "trm_rl.benchmarks.bench",
    "trm_rl.agents.control_cli",
)
"""Modules whose ``add_parser(subparsers)`` adds a subcommand with ``set_defaults(func=...)``."""


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand attached."""
    parser = argparse.ArgumentParser(
        prog="trm-rl",
        description="Tiny Recursive Models for reinforcement learning and control.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``trm-rl`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
