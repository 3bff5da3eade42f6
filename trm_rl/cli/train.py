"""``trm-rl train``: train an agent with the env's recommended settings, save it to a dir.

Writes ``DIR/model.zip`` (``DIR/model.pt`` for REINFORCE), ``DIR/config.json`` and
TensorBoard logs (``DIR/tb`` unless ``--tensorboard``); ``trm_rl.load_agent(DIR)`` and
``trm-rl evaluate DIR`` read it back. Unset flags take the env's recommended value from
:mod:`trm_rl.agents.sb3.hyperparams`.
"""

from __future__ import annotations

import argparse
import json

from trm_rl.config import GRAD_MODES, MIXERS

DEFAULT_TIMESTEPS = 100_000
TRM_FLAGS = ("h_cycles", "l_cycles", "hidden_dim", "n_layers", "mixer", "grad_mode")
"""Core settings with a flag of their own (``--h-cycles`` ...)."""


def _json_object(text: str) -> dict:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


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
        choices=("ppo", "a2c", "maskable-ppo", "reinforce"),
        default=None,
        help="algorithm (default: the env's recommended one)",
    )
    parser.add_argument("--policy", choices=("trm", "mlp"), default="trm", help="network")
    parser.add_argument(
        "--timesteps", type=int, default=None, help=f"env steps (default {DEFAULT_TIMESTEPS})"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--out", required=True, help="agent directory to write")
    parser.add_argument(
        "--env-kwargs", type=_json_object, default={}, help="JSON object for gym.make"
    )
    parser.add_argument(
        "--algo-kwargs",
        type=_json_object,
        default={},
        help="JSON object of PPO/A2C/MaskablePPO overrides, e.g. '{\"n_epochs\": 2}'; "
        'learning_rate and clip_range also take "lin_<start>" (linear decay to 0)',
    )
    parser.add_argument("--n-envs", type=int, default=None, help="parallel envs")
    parser.add_argument("--tensorboard", default=None, help="TensorBoard dir (default DIR/tb)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    core = parser.add_argument_group("recursive core (default: the env's recommended values)")
    core.add_argument("--h-cycles", type=int, default=None, help="outer cycles H")
    core.add_argument("--l-cycles", type=int, default=None, help="inner z_L updates per cycle")
    core.add_argument("--hidden-dim", type=int, default=None, help="width D")
    core.add_argument("--n-layers", type=int, default=None, help="blocks in the shared stack")
    core.add_argument("--mixer", choices=(*MIXERS, "auto"), default=None, help="token mixing")
    core.add_argument("--grad-mode", choices=GRAD_MODES, default=None, help="gradient mode")
    reinforce_cli.add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train and save; returns the exit status."""
    if args.algo == "reinforce":
        from trm_rl.cli import reinforce_flags as reinforce_cli

        if args.algo_kwargs:
            raise ValueError(
                "--algo-kwargs applies to ppo, a2c and maskable-ppo; REINFORCE takes its own flags"
            )

        return int(reinforce_cli.run(args) or 0)
    from trm_rl.agents.sb3.training import TrainConfig, train

    policy_kwargs = {
        name: getattr(args, name) for name in TRM_FLAGS if getattr(args, name) is not None
    }
    if args.focus_channel is not None:
        policy_kwargs["focus_channel"] = args.focus_channel
    config = TrainConfig(
        env_id=args.env,
        algo=args.algo,
        policy=args.policy,
        timesteps=args.timesteps or DEFAULT_TIMESTEPS,
        seed=args.seed,
        env_kwargs=args.env_kwargs,
        n_envs=args.n_envs,
        policy_kwargs=policy_kwargs if args.policy == "trm" else {},
        algo_kwargs=args.algo_kwargs,
        device=args.device,
    )
    train(config, out=args.out, tensorboard=args.tensorboard, progress_bar=not args.no_progress)
    print(f"saved {args.out}/model.zip and {args.out}/config.json")
    return 0
