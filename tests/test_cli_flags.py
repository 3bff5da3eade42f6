"""Flags built from dataclass configs."""

import argparse
from dataclasses import dataclass

import pytest

from trm_rl.cli.dataclass_flags import add_dataclass_flags


@dataclass
class Example:
    steps: int = 3
    """Steps to take."""
    limit: int | None = None
    """An optional limit."""
    mode: str = "a"
    """Which mode."""
    fast: bool = False
    """Go fast."""


@dataclass
class Unparsable:
    pair: tuple = (1, 2)
    """A pair."""


def test_one_flag_per_field_with_types_choices_and_defaults():
    parser = argparse.ArgumentParser()
    add_dataclass_flags(parser, Example, {"mode": ("a", "b")}, skip=("steps",))
    args = parser.parse_args(["--limit", "7", "--mode", "b", "--fast"])
    assert vars(args) == {"limit": 7, "mode": "b", "fast": True}
    assert parser.parse_args([]).limit is None
    assert "Which mode. (default: a)" in parser.format_help()
    with pytest.raises(SystemExit):
        parser.parse_args(["--mode", "c"])


def test_suppressed_defaults_leave_only_the_given_flags():
    parser = argparse.ArgumentParser()
    add_dataclass_flags(parser, Example, suppress_defaults=True)
    assert vars(parser.parse_args(["--steps", "5"])) == {"steps": 5}


def test_a_field_no_flag_can_parse_is_refused():
    with pytest.raises(TypeError, match="'pair'"):
        add_dataclass_flags(argparse.ArgumentParser(), Unparsable)
