"""``trm-rl demo``: build a recursive core and time a forward pass."""

from __future__ import annotations

import argparse

from trm_rl.benchmarks.core_speed import add_arguments, run


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Attach the ``demo`` subcommand."""
    parser = subparsers.add_parser(
        "demo", help="build a recursive core, run a forward pass, print its size and speed"
    )
    add_arguments(parser)
    parser.set_defaults(func=run)
