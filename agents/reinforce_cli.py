"""``trm-rl train --algo reinforce``: the REINFORCE-only flags and the training entry point.

``agents/train_cli.py`` owns the common flags (``--env --policy --timesteps --seed --out
--env-kwargs --n-envs --tensorboard`` and the core's ``--h-cycles --l-cycles --hidden-dim
--n-layers --mixer --grad-mode``); it calls :func:`add_arguments` when it builds the parser
and :func:`run` to train.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import itertools
import json
import textwrap
import typing
from dataclasses import MISSING, fields
from typing import Any

import gymnasium as gym
from gymnasium import spaces

from trm_rl.agents.reinforce import resume, train
from trm_rl.agents.reinforce_config import BASELINES, WEIGHTINGS, ReinforceConfig
from trm_rl.config import TRMConfig

TRM_DEFAULTS: dict[str, Any] = {
    "hidden_dim": 32,
    "n_layers": 1,
    "h_cycles": 3,
    "l_cycles": 2,
    "expansion": 2.0,
    "grad_mode": "full",
}
"""The core REINFORCE trains when a common flag is left unset (None). ``grad_mode="full"``:
deep supervision needs every cycle's gradient."""

CHOICES = {"baseline": BASELINES, "weighting": WEIGHTINGS}


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add a "REINFORCE" group: one ``--field-name`` per :class:`ReinforceConfig` field,
    plus ``--focus-channel`` and ``--resume DIR``."""
    group = parser.add_argument_group("REINFORCE (--algo reinforce)")
    docs = field_docs(ReinforceConfig)
    hints = typing.get_type_hints(ReinforceConfig)
    for field in fields(ReinforceConfig):
        flag = "--" + field.name.replace("_", "-")
        default = field.default if field.default is not MISSING else None
        help_text = f"{docs[field.name]} (default: {default})".replace("%", "%%")
        if hints[field.name] is bool:
            group.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=default, help=help_text
            )
        else:
            kind = {int: int, float: float, str: str}.get(hints[field.name], int)
            group.add_argument(
                flag, type=kind, default=default, choices=CHOICES.get(field.name), help=help_text
            )
    group.add_argument(
        "--focus-channel",
        type=int,
        default=None,
        help="grid channel the TRM readout pools at (1: the agent's cell in a maze); "
        "default: a learned pool",
    )
    group.add_argument(
        "--resume",
        metavar="DIR",
        default=None,
        help="continue the run in DIR from its checkpoint; --timesteps/--episodes set the new "
        "totals, every other setting comes from DIR/config.json",
    )


def _mixer(env_id: str, env_kwargs: dict[str, Any]) -> str:
    """Token mixing for the env's observations: "conv" on grids, "mlp" on several
    categorical tokens, "none" on a single vector token."""
    env = gym.make(env_id, **env_kwargs)
    space = env.observation_space
    env.close()
    if isinstance(space, spaces.Box) and len(space.shape) in (2, 3):
        return "conv"
    if isinstance(space, spaces.MultiDiscrete) and space.nvec.size > 1:
        return "mlp"
    return "none"


def run(args: argparse.Namespace) -> int:
    """Train (or with ``--resume``, continue) and write the agent directory ``--out``."""
    if args.resume is not None:
        resume(args.resume, timesteps=args.timesteps, episodes=args.episodes, progress_bar=True)
        return 0
    config = ReinforceConfig(
        **{field.name: getattr(args, field.name) for field in fields(ReinforceConfig)}
    )
    env_kwargs = args.env_kwargs or {}
    if isinstance(env_kwargs, str):
        env_kwargs = json.loads(env_kwargs)
    trm_fields = {field.name for field in fields(TRMConfig)}
    given = {
        name: value
        for name in trm_fields
        if (value := getattr(args, name, None)) is not None and value != "auto"
    }
    trm = {**TRM_DEFAULTS, **given}
    trm.setdefault("mixer", _mixer(args.env, env_kwargs))
    train(
        args.env,
        config,
        env_kwargs=env_kwargs,
        policy=args.policy,
        trm=TRMConfig(**trm),
        focus_channel=args.focus_channel,
        n_envs=args.n_envs or 8,
        timesteps=args.timesteps,
        seed=args.seed,
        out_dir=args.out,
        tensorboard_dir=args.tensorboard,
        progress_bar=True,
    )
    return 0
