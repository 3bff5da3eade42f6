"""Command-line flag helpers: flags from a dataclass config (one ``--field-name`` per field,
the one-line docstring under the field as its help) and a JSON-object argument type."""

from __future__ import annotations

import argparse
import ast
import inspect
import itertools
import json
import textwrap
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, Field, fields

SCALARS = (int, float, str)
"""Field types a flag parses (bools become ``--flag`` / ``--no-flag``)."""


def field_docs(cls: type) -> dict[str, str]:
    """The one-line docstring under each dataclass field, by field name."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for node, following in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
        ):
            docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def _scalar(hint: typing.Any, name: str) -> type:
    """The scalar type a flag of a field typed ``hint`` parses (``int | None`` -> ``int``)."""
    if hint in SCALARS:
        return hint
    if isinstance(hint, types.UnionType):
        found = [arg for arg in typing.get_args(hint) if arg in SCALARS]
        if len(found) == 1:
            return found[0]
    raise TypeError(f"field {name!r} has type {hint}, which no flag parses")


def dataclass_fields(cls: type, skip: Iterable[str] = ()) -> list[Field]:
    """The fields of ``cls`` that get a flag (all but ``skip``)."""
    return [field for field in fields(cls) if field.name not in set(skip)]


def add_dataclass_flags(
    group: argparse._ActionsContainer,
    cls: type,
    choices: Mapping[str, tuple[str, ...]] | None = None,
    skip: Iterable[str] = (),
    suppress_defaults: bool = False,
) -> None:
    """Add one ``--field-name`` per field of the dataclass ``cls`` to ``group``.

    Args:
        group: a parser or argument group.
        cls: the dataclass; each field's docstring is its help, with its default.
        choices: field name -> allowed values.
        skip: fields that get no flag.
        suppress_defaults: leave no attribute for a flag not given (so a caller can tell
            which were given) instead of the field's default.
    """
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    for field in dataclass_fields(cls, skip):
        flag = "--" + field.name.replace("_", "-")
        default = None if field.default is MISSING else field.default
        help_text = f"{docs[field.name]} (default: {default})".replace("%", "%%")
        value = argparse.SUPPRESS if suppress_defaults else default
        if hints[field.name] is bool:
            group.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=value, help=help_text
            )
        else:
            group.add_argument(
                flag,
                type=_scalar(hints[field.name], field.name),
                default=value,
                choices=(choices or {}).get(field.name),
                help=help_text,
            )


def json_object(text: str) -> dict:
    """An argparse ``type``: ``text`` parsed as a JSON object (a dict), else a usage error."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(
            f"expected a JSON object, got {text!r} ({error})"
        ) from error
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value
