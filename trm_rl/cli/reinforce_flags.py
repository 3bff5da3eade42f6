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

import gymnasium as gym

from trm_rl.agents.reinforce.config import BASELINES, CYCLE_LOSSES, WEIGHTINGS, ReinforceConfig
from trm_rl.agents.reinforce.trainer import TRM_DEFAULTS, resume, train
from trm_rl.agents.sb3.hyperparams import recipe
from trm_rl.agents.sb3.policy import TRM_FIELDS, resolve_mixer
from trm_rl.config import TRMConfig

TRM_FLAGS = ("h_cycles", "l_cycles", "hidden_dim", "n_layers", "mixer", "grad_mode")
"""The core's common ``trm-rl train`` flags (``--h-cycles`` ...)."""
DEFAULT_TIMESTEPS = 100_000
"""Budget when neither ``--timesteps`` nor ``--episodes`` is given (as ``trm-rl train``)."""

CHOICES = {"baseline": BASELINES, "weighting": WEIGHTINGS, "cycle_loss": CYCLE_LOSSES}


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


def run(args: argparse.Namespace) -> int:
    """Train (or with ``--resume``, continue) and write the agent directory ``--out``.

    Unset flags take the env's recipe (:mod:`trm_rl.agents.sb3.hyperparams`: parallel envs, core
    size, ``focus_channel``), then ``trm_rl.agents.reinforce.TRM_DEFAULTS``; the REINFORCE
    hyperparameters are the flags of :func:`add_arguments` (``ReinforceConfig``'s defaults).
    """
    progress_bar = not getattr(args, "no_progress", False)
    if args.resume is not None:
        resume(
            args.resume, timesteps=args.timesteps, episodes=args.episodes, progress_bar=progress_bar
        )
        return 0
    config = ReinforceConfig(**{f.name: getattr(args, f.name) for f in fields(ReinforceConfig)})
    env_kwargs = args.env_kwargs or {}
    if isinstance(env_kwargs, str):
        env_kwargs = json.loads(env_kwargs)
    env_recipe = recipe(args.env)
    core = {**TRM_DEFAULTS, **env_recipe.trm}
    core.update(
        {name: getattr(args, name) for name in TRM_FLAGS if getattr(args, name) is not None}
    )
    probe = gym.make(args.env, **env_kwargs)
    core["mixer"] = resolve_mixer(probe.observation_space, core["mixer"], "single")
    probe.close()
    focus_channel = (
        args.focus_channel if args.focus_channel is not None else core.get("focus_channel")
    )
    timesteps = args.timesteps
    if timesteps is None and config.episodes is None:
        timesteps = DEFAULT_TIMESTEPS
    train(
        args.env,
        config,
        env_kwargs=env_kwargs,
        policy=args.policy,
        trm=TRMConfig(**{name: core[name] for name in TRM_FIELDS}),
        focus_channel=focus_channel,
        n_envs=args.n_envs or env_recipe.n_envs,
        timesteps=timesteps,
        seed=args.seed,
        out_dir=args.out,
        tensorboard_dir=args.tensorboard,
        progress_bar=progress_bar,
    )
    print(f"saved {args.out}/model.pt and {args.out}/config.json")
    return 0
