"""``trm-rl evaluate DIR``: held-out success rate, mean return and maze path ratio."""

from __future__ import annotations

import argparse
import json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Attach the ``evaluate`` subcommand."""
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a saved agent on held-out episodes",
        description="Play held-out episodes (reset seeds disjoint from training) with the "
        "agent in DIR (written by `trm-rl train --out DIR`) and print its success rate, "
        "mean return and, for mazes, path length / BFS shortest path.",
    )
    parser.add_argument("directory", metavar="DIR", help="agent directory")
    parser.add_argument("--episodes", type=int, default=100, help="episodes (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="evaluation seed (default 0)")
    parser.add_argument(
        "--stochastic", action="store_true", help="sample actions instead of greedy ones"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate and print; returns the exit status."""
    from trm_rl.agents.evaluation import evaluate
    from trm_rl.agents.loading import load_agent

    agent = load_agent(args.directory)
    env_id = agent.config["env_id"]
    result = evaluate(
        agent,
        env_id,
        episodes=args.episodes,
        seed=args.seed,
        env_kwargs=agent.config.get("env_kwargs") or {},
        deterministic=not args.stochastic,
    )
    if args.json:
        print(json.dumps({"env_id": env_id, **result.to_dict()}))
        return 0
    print(f"{env_id}: {result.episodes} held-out episodes (seed {args.seed})")
    print(f"  success rate  {100 * result.success_rate:.1f}%")
    print(f"  mean return   {result.mean_return:.3f}")
    print(f"  mean length   {result.mean_length:.1f}")
    if result.path_ratio is not None:
        print(f"  path / BFS    {result.path_ratio:.3f} (successful episodes)")
    return 0
