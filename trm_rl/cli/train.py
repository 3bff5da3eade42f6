"""``trm-rl train``: train an agent with the env's recommended settings, save it to a dir.

Writes ``DIR/model.zip`` (``DIR/model.pt`` for REINFORCE), ``DIR/config.json`` and
TensorBoard logs (``DIR/tb`` unless ``--tensorboard``); ``trm_rl.load_agent(DIR)`` and
``trm-rl evaluate DIR`` read it back. Unset flags take the env's recommended value from
:mod:`trm_rl.agents.sb3.hyperparams`.

Nothing is lost: a DIR that holds files is refused unless --resume (continue that run: repeat
its command and add --resume) or --overwrite (delete it first). Checkpoints are written every
--checkpoint-every steps and on Ctrl-C/SIGTERM, atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trm_rl.agents.network import POSITIONS
from trm_rl.agents.sb3.hyperparams import ALGOS
from trm_rl.cli.dataclass_flags import json_object
from trm_rl.config import GRAD_MODES, MIXERS, require_int

DEFAULT_TIMESTEPS = 100_000
TRM_FLAGS = ("h_cycles", "l_cycles", "hidden_dim", "n_layers", "mixer", "grad_mode")
"""Core settings with a flag of their own (``--h-cycles`` ...)."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Attach the ``train`` subcommand."""
    from trm_rl.cli import reinforce_flags as reinforce_cli

    parser = subparsers.add_parser(
        "train",
        help="train an agent (PPO/A2C/MaskablePPO with TRMPolicy or MlpPolicy, or REINFORCE)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--env", required=True, help="environment id, e.g. TRM-Maze-v0")
    parser.add_argument(
        "--algo",
        choices=(*ALGOS, "reinforce"),
        default=None,
        help="algorithm (default: the env's recommended one)",
    )
    parser.add_argument("--policy", choices=("trm", "mlp"), default="trm", help="network")
    parser.add_argument(
        "--timesteps", type=int, default=None, help=f"env steps (default {DEFAULT_TIMESTEPS})"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--out", metavar="DIR", help="agent directory to write (required)")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="",
        default=None,
        metavar="DIR",
        help="continue the run in --out (or DIR) from its checkpoint: repeat the run's "
        "settings; --timesteps (--episodes) are the new totals",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="delete the run already in --out, then train"
    )
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        metavar="N",
        help="checkpoint every N env steps for PPO/A2C/MaskablePPO (default "
        "25000), every N updates for REINFORCE (default 50)",
    )
    parser.add_argument(
        "--device", default="auto", help='torch device: "auto" (CUDA if available), "cpu", ...'
    )
    parser.add_argument(
        "--env-kwargs", type=json_object, default={}, help="JSON object for gym.make"
    )
    parser.add_argument(
        "--algo-kwargs",
        type=json_object,
        default={},
        help="JSON object of PPO/A2C/MaskablePPO overrides, e.g. '{\"n_epochs\": 2}'; "
        'learning_rate and clip_range also take "lin_<start>" (linear decay to 0)',
    )
    parser.add_argument("--n-envs", type=int, default=None, help="parallel envs")
    parser.add_argument(
        "--init-from",
        metavar="AGENT",
        default=None,
        help="start from this trained agent's policy weights (a directory or "
        "pretrained:<name>; same network settings; PPO/A2C/MaskablePPO)",
    )
    parser.add_argument("--tensorboard", default=None, help="TensorBoard dir (default DIR/tb)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    core = parser.add_argument_group("recursive core (default: the env's recommended values)")
    core.add_argument("--h-cycles", type=int, default=None, help="outer cycles H")
    core.add_argument("--l-cycles", type=int, default=None, help="inner z_L updates per cycle")
    core.add_argument("--hidden-dim", type=int, default=None, help="width D")
    core.add_argument("--n-layers", type=int, default=None, help="blocks in the shared stack")
    core.add_argument("--mixer", choices=(*MIXERS, "auto"), default=None, help="token mixing")
    core.add_argument("--grad-mode", choices=GRAD_MODES, default=None, help="gradient mode")
    core.add_argument(
        "--focus-channel",
        type=int,
        default=None,
        help="grid channel the TRM readout pools at (1: the agent's cell in a maze)",
    )
    core.add_argument(
        "--positions",
        choices=POSITIONS,
        default=None,
        help='token positions: "learned" (tied to the grid size) or "none" (any grid size; '
        "PPO/A2C/MaskablePPO)",
    )
    core.add_argument(
        "--random-h-cycles",
        type=int,
        nargs=2,
        metavar=("LOW", "HIGH"),
        default=None,
        help="draw H from LOW..HIGH for every rollout and its update (PPO/A2C/MaskablePPO; "
        "the saved policy keeps --h-cycles)",
    )
    reinforce_cli.add_arguments(parser)
    parser.set_defaults(func=run)


def run_dir(args: argparse.Namespace) -> str:
    """The run directory: ``--out``, or the DIR of ``--resume DIR`` (they must agree)."""
    if args.resume:
        if args.out is not None and Path(args.out) != Path(args.resume):
            raise ValueError(
                f"--resume {args.resume} and --out {args.out} name different directories; "
                "give the run directory once"
            )
        return args.resume
    if args.out is None:
        raise ValueError("--out DIR is required: the agent directory to write")
    return args.out


def run(args: argparse.Namespace) -> int:
    """Train and save; returns the exit status (``128 + signal`` after SIGINT/SIGTERM)."""
    from trm_rl.cli import reinforce_flags as reinforce_cli

    out = run_dir(args)
    require_int("--timesteps", args.timesteps, 1, allow_none=True)
    require_int("--seed", args.seed, 0)
    require_int("--n-envs", args.n_envs, 1, allow_none=True)
    require_int("--checkpoint-every", args.checkpoint_every, 1, allow_none=True)
    if args.algo == "reinforce":
        for flag in ("random_h_cycles", "positions", "init_from"):
            if getattr(args, flag) is not None:
                name = "--" + flag.replace("_", "-")
                raise ValueError(f"{name} applies to {', '.join(ALGOS)}, not reinforce")
        if args.algo_kwargs:
            raise ValueError(
                f"--algo-kwargs applies to {', '.join(ALGOS)}; REINFORCE takes its own flags"
            )
        return reinforce_cli.run(args, out)
    given = reinforce_cli.given_flags(args)
    if given:
        raise ValueError(
            f"{', '.join(given)} {'apply' if len(given) > 1 else 'applies'} to --algo "
            "reinforce only; the SB3 algorithms "
            "take their settings through --algo-kwargs, e.g. '{\"gamma\": 0.95}'"
        )
    policy_flags = (*TRM_FLAGS, "focus_channel", "positions")
    core_flags = [name for name in policy_flags if getattr(args, name) is not None]
    if args.policy == "mlp" and core_flags:
        flags = ", ".join("--" + name.replace("_", "-") for name in core_flags)
        verb = "apply" if len(core_flags) > 1 else "applies"
        raise ValueError(f"{flags} {verb} to --policy trm; --policy mlp is SB3's MlpPolicy")
    from trm_rl.agents.sb3.training import (
        DEFAULT_CHECKPOINT_EVERY,
        TrainConfig,
        TrainingInterrupted,
        train,
    )

    config = TrainConfig(
        env_id=args.env,
        algo=args.algo,
        policy=args.policy,
        timesteps=DEFAULT_TIMESTEPS if args.timesteps is None else args.timesteps,
        seed=args.seed,
        env_kwargs=args.env_kwargs,
        n_envs=args.n_envs,
        policy_kwargs={name: getattr(args, name) for name in core_flags},
        algo_kwargs=args.algo_kwargs,
        device=args.device,
        random_h_cycles=args.random_h_cycles,
        init_from=args.init_from,
    )
    every = DEFAULT_CHECKPOINT_EVERY if args.checkpoint_every is None else args.checkpoint_every
    try:
        model = train(
            config,
            out=out,
            tensorboard=args.tensorboard,
            progress_bar=not args.no_progress,
            resume=args.resume is not None,
            overwrite=args.overwrite,
            checkpoint_every=every,
        )
    except TrainingInterrupted as stop:
        print(f"trm-rl: stopped by {stop}; {RESUME_HINT}", file=sys.stderr)
        return 128 + stop.signal_number
    print(f"saved {out}/model.zip and {out}/config.json ({model.num_timesteps} env steps)")
    return 0


RESUME_HINT = "to continue, run the same command with --resume"
