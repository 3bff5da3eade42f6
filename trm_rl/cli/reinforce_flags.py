"""``trm-rl train --algo reinforce``: the REINFORCE-only flags and the training entry point.

:mod:`trm_rl.cli.train` owns the common flags (``--env --policy --timesteps --seed --out
--resume --overwrite --checkpoint-every --device --env-kwargs --n-envs --tensorboard`` and the
core's ``--h-cycles --l-cycles --hidden-dim --n-layers --mixer --grad-mode --focus-channel``);
it calls :func:`add_arguments` when it builds the parser, :func:`given_flags` to refuse
REINFORCE-only flags given to another algorithm, and :func:`run` to train.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

import gymnasium as gym

from trm_rl.agents.reinforce.agent import build_policy
from trm_rl.agents.reinforce.config import BASELINES, CYCLE_LOSSES, WEIGHTINGS, ReinforceConfig
from trm_rl.agents.reinforce.trainer import TRM_DEFAULTS, resume, train
from trm_rl.agents.sb3.hyperparams import recipe
from trm_rl.agents.sb3.policy import TRM_FIELDS, resolve_mixer
from trm_rl.agents.sb3.training import (
    check_same_run,
    prepare_run_dir,
    read_run_config,
    stop_on_signals,
)
from trm_rl.cli.dataclass_flags import add_dataclass_flags, dataclass_fields
from trm_rl.config import TRMConfig

TRM_FLAGS = ("h_cycles", "l_cycles", "hidden_dim", "n_layers", "mixer", "grad_mode")
"""The core's common ``trm-rl train`` flags (``--h-cycles`` ...)."""
DEFAULT_TIMESTEPS = 100_000
"""Budget when neither ``--timesteps`` nor ``--episodes`` is given (as ``trm-rl train``)."""

CHOICES = {"baseline": BASELINES, "weighting": WEIGHTINGS, "cycle_loss": CYCLE_LOSSES}
COMMON_FIELDS = ("device", "checkpoint_every")
"""ReinforceConfig fields set by common ``trm-rl train`` flags (``--device``,
``--checkpoint-every``), not by the REINFORCE group."""
RESUME_HINT = "to continue, run the same command with --resume"


def _only_fields() -> list:
    """The ReinforceConfig fields with a REINFORCE-only flag."""
    return dataclass_fields(ReinforceConfig, skip=COMMON_FIELDS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add a "REINFORCE" group: one ``--field-name`` per :class:`ReinforceConfig` field but
    :data:`COMMON_FIELDS`. Their defaults are suppressed (an unset flag leaves no attribute),
    so :func:`given_flags` knows which were given."""
    group = parser.add_argument_group("REINFORCE only (--algo reinforce)")
    add_dataclass_flags(group, ReinforceConfig, CHOICES, skip=COMMON_FIELDS, suppress_defaults=True)


def given_flags(args: argparse.Namespace) -> list[str]:
    """The REINFORCE-only flags present on the command line, as ``--flag-name``."""
    return ["--" + f.name.replace("_", "-") for f in _only_fields() if hasattr(args, f.name)]


def reinforce_config(args: argparse.Namespace) -> ReinforceConfig:
    """The :class:`ReinforceConfig` of the flags (its defaults for the flags not given)."""
    values = {f.name: getattr(args, f.name) for f in _only_fields() if hasattr(args, f.name)}
    values["device"] = args.device
    if args.checkpoint_every is not None:
        values["checkpoint_every"] = args.checkpoint_every
    return ReinforceConfig(**values)


def run(args: argparse.Namespace, out: str | None = None) -> int:
    """Train (or with ``--resume``, continue) and write the agent directory ``out``
    (default: ``--out``, or ``--resume DIR``).

    Unset flags take the env's recipe (:mod:`trm_rl.agents.sb3.hyperparams`: parallel envs, core
    size, ``focus_channel``), then ``trm_rl.agents.reinforce.TRM_DEFAULTS``; the REINFORCE
    hyperparameters are the flags of :func:`add_arguments` (``ReinforceConfig``'s defaults).
    ``out`` follows :func:`~trm_rl.agents.sb3.training.prepare_run_dir`'s rules; a resumed
    run must have the same settings but the budgets (``--timesteps``, ``--episodes``).
    SIGINT/SIGTERM stop training after a checkpoint; returns ``128 + signal`` then.
    """
    from trm_rl.cli.train import run_dir

    out = run_dir(args) if out is None else out
    progress_bar = not getattr(args, "no_progress", False)
    resuming = args.resume is not None
    config = reinforce_config(args)
    env_kwargs = args.env_kwargs or {}
    if isinstance(env_kwargs, str):
        env_kwargs = json.loads(env_kwargs)
    env_recipe = recipe(args.env)
    core = {**TRM_DEFAULTS, **env_recipe.trm}
    core.update(
        {name: getattr(args, name) for name in TRM_FLAGS if getattr(args, name) is not None}
    )
    probe = gym.make(args.env, **env_kwargs)
    spaces = (probe.observation_space, probe.action_space)
    probe.close()
    core["mixer"] = resolve_mixer(spaces[0], core["mixer"], "single")
    trm = TRMConfig(**{name: core[name] for name in TRM_FIELDS})
    focus_channel = (
        args.focus_channel if args.focus_channel is not None else core.get("focus_channel")
    )
    n_envs = env_recipe.n_envs if args.n_envs is None else args.n_envs
    timesteps = args.timesteps
    if timesteps is None and config.episodes is None and not resuming:
        timesteps = DEFAULT_TIMESTEPS
    prepare_run_dir(out, resume=resuming, overwrite=args.overwrite)
    stop = {"signal": None}
    updates = []

    def on_update(stats: dict) -> bool:
        updates.append(stats["update"])
        return stop["signal"] is None

    def request_stop(signal_number: int) -> None:
        stop["signal"] = signal_number

    with stop_on_signals(request_stop):
        if resuming:
            _check_resumable(args, out, config, trm, focus_channel, n_envs, env_kwargs, spaces)
            episodes = getattr(args, "episodes", None)
            resume(
                out,
                timesteps=timesteps,
                episodes=episodes,
                progress_bar=progress_bar,
                callback=on_update,
            )
            if not updates:
                raise ValueError(
                    f"the run in {out} has already reached its budget; pass a larger "
                    "--timesteps or --episodes to continue it"
                )
        else:
            train(
                args.env,
                config,
                env_kwargs=env_kwargs,
                policy=args.policy,
                trm=trm,
                focus_channel=focus_channel,
                n_envs=n_envs,
                timesteps=timesteps,
                seed=args.seed,
                out_dir=out,
                tensorboard_dir=args.tensorboard,
                progress_bar=progress_bar,
                callback=on_update,
            )
    if stop["signal"] is not None:
        name = signal.Signals(stop["signal"]).name
        print(
            f"trm-rl: stopped by {name} after {len(updates)} updates; checkpoint saved in "
            f"{out}/checkpoint.pt; {RESUME_HINT}",
            file=sys.stderr,
        )
        return 128 + stop["signal"]
    print(f"saved {out}/model.pt and {out}/config.json")
    return 0


def _check_resumable(
    args: argparse.Namespace,
    out: str,
    config: ReinforceConfig,
    trm: TRMConfig,
    focus_channel: int | None,
    n_envs: int,
    env_kwargs: dict,
    spaces: tuple,
) -> None:
    """Refuse to resume the run in ``out`` with settings other than its own (budgets
    aside), naming each difference."""
    saved = read_run_config(out)
    mlp_hidden = None
    if args.policy == "mlp":
        mlp_hidden = build_policy(*spaces, "mlp", trm, None, focus_channel).features_dim
    saved_episodes = (saved.get("reinforce") or {}).get("episodes")
    requested = {
        "algo": "reinforce",
        "env_id": args.env,
        "policy": args.policy,
        "env_kwargs": env_kwargs,
        "seed": args.seed,
        "n_envs": n_envs,
        "trm": trm.to_dict() if args.policy == "trm" else None,
        "mlp_hidden": mlp_hidden,
        "focus_channel": focus_channel,
        "reinforce": {**config.to_dict(), "episodes": saved_episodes},
    }
    if args.tensorboard is not None:
        requested["tensorboard"] = str(Path(args.tensorboard))
    check_same_run(out, json.loads(json.dumps(requested)))
