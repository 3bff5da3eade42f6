"""``trm-rl evaluate SOURCE``: held-out success rate, mean return and maze path ratio."""

from __future__ import annotations

import argparse
import json


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(
            f"expected a JSON object, got {text!r} ({error})"
        ) from error
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Attach the ``evaluate`` subcommand."""
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a saved or pretrained agent on held-out episodes",
        description="Play held-out episodes (reset seeds disjoint from training) with the "
        "agent in SOURCE (a directory written by `trm-rl train --out DIR`, or "
        "pretrained:<name>) and print its success rate, mean return and, for mazes, path "
        "length / BFS shortest path. The weights are read as tensors only.",
    )
    parser.add_argument(
        "source", metavar="SOURCE", help="agent directory or pretrained:<name> (e.g. maze-7x7)"
    )
    parser.add_argument("--episodes", type=int, default=100, help="episodes (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="evaluation seed (default 0)")
    parser.add_argument(
        "--h-cycles",
        type=int,
        default=None,
        help="run the core with this many outer cycles (default: as trained)",
    )
    parser.add_argument(
        "--l-cycles",
        type=int,
        default=None,
        help="run the core with this many inner cycles (default: as trained)",
    )
    parser.add_argument(
        "--env-kwargs",
        type=_json_object,
        default={},
        help="JSON object updating the saved gym.make arguments, e.g. "
        '\'{"size": 15, "family": "perfect"}\'; a policy whose parameters do not depend on '
        "the grid size is rebuilt for the new observation space",
    )
    parser.add_argument(
        "--stochastic", action="store_true", help="sample actions instead of greedy ones"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate and print; returns the exit status."""
    import gymnasium as gym

    from trm_rl.agents.evaluation import evaluate
    from trm_rl.agents.loading import load_agent

    cycles = {"h_cycles": args.h_cycles, "l_cycles": args.l_cycles}
    agent = load_agent(args.source, **cycles)
    if not hasattr(agent, "predict"):
        raise ValueError(
            f"{args.source} is a recursive controller (it plans whole control sequences); "
            "evaluate it with `trm-rl control analyze` or RecursiveController.plan"
        )
    env_id = agent.config["env_id"]
    env_kwargs = {**(agent.config.get("env_kwargs") or {}), **args.env_kwargs}
    env = gym.make(env_id, **env_kwargs)
    observation_space = env.observation_space
    env.close()
    if observation_space != agent.observation_space:
        agent = load_agent(args.source, **cycles, observation_space=observation_space)
    result = evaluate(
        agent,
        env_id,
        episodes=args.episodes,
        seed=args.seed,
        env_kwargs=env_kwargs,
        deterministic=not args.stochastic,
    )
    if args.json:
        print(json.dumps({"env_id": env_id, "env_kwargs": env_kwargs, **result.to_dict()}))
        return 0
    print(
        f"{env_id} {json.dumps(env_kwargs)}: {result.episodes} held-out episodes (seed {args.seed})"
    )
    print(f"  success rate  {100 * result.success_rate:.1f}%")
    print(f"  mean return   {result.mean_return:.3f}")
    print(f"  mean length   {result.mean_length:.1f}")
    if result.path_ratio is not None:
        print(f"  path / BFS    {result.path_ratio:.3f} (successful episodes)")
    return 0
