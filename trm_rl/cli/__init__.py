"""The ``trm-rl`` command line: one module per subcommand, imported only when it runs.

Each subcommand module exposes ``add_parser(subparsers)``, which adds its parser with
``set_defaults(func=...)``. ``trm-rl --help`` lists the subcommands from :data:`COMMANDS`
without importing any of them (nor torch). Errors the library raises for bad input
(:data:`USER_ERRORS`) are printed as one line, ``trm-rl: error: <message>``, with exit status
2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from trm_rl.optional import MissingExtraError

COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "trm_rl.cli.demo",
        "build a recursive core, run a forward pass, print its size and speed",
    ),
    "train": (
        "trm_rl.cli.train",
        "train an agent (PPO/A2C/MaskablePPO with TRMPolicy or MlpPolicy, or REINFORCE)",
    ),
    "evaluate": (
        "trm_rl.cli.evaluate",
        "evaluate a saved or pretrained agent on held-out episodes",
    ),
    "bench": ("trm_rl.benchmarks.bench", "run the benchmark: agents x envs x seeds, one table"),
    "control": ("trm_rl.cli.control", "supervised recursive control: generate, train, analyze"),
}
"""Subcommand name -> (module with ``add_parser``, one-line help)."""

USER_ERRORS = (
    ValueError,
    TypeError,
    FileNotFoundError,
    FileExistsError,
    PermissionError,
    MissingExtraError,
)
"""Exceptions that mean bad input, a bad path or a missing extra: one line, exit status 2."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only ``command``'s module is imported and attaches its full
    parser (the others are listed by name and help)."""
    from trm_rl import __version__

    parser = argparse.ArgumentParser(
        prog="trm-rl",
        description="Tiny Recursive Models for reinforcement learning and control.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        if name == command:
            importlib.import_module(module_name).add_parser(subparsers)
        else:
            subparsers.add_parser(name, help=help_text)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (the first argument that is not an option)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``trm-rl`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(_command(argv)).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as error:
        if args.debug:
            raise
        message = str(error) if str(error) else type(error).__name__
        print(f"trm-rl: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("trm-rl: interrupted", file=sys.stderr)
        return 130
