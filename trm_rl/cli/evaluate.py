"""``trm-rl evaluate SOURCE``: held-out success rate, mean return and maze path ratio, and
optionally a picture of one episode (``--render``)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from trm_rl.cli.dataclass_flags import json_object

RENDER_SUFFIXES = (".gif", ".png")
STRIP_MAX_FRAMES = 40
"""A PNG strip shows at most this many frames (evenly spaced, first and last included)."""
STRIP_COLUMNS = 10
STRIP_GAP = 4
"""White pixels between the frames of a PNG strip."""
GIF_FRAME_MS = 200


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
    from trm_rl import pretrained

    installed = ", ".join(pretrained.available()) or "none installed"
    parser.add_argument(
        "source",
        metavar="SOURCE",
        help=f"agent directory or pretrained:<name> (names: {installed})",
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
        "--symmetry-views",
        type=int,
        default=1,
        metavar="V",
        help="9x9 Sudoku agents: play through V symmetric images of each board and take the "
        "action most likely under all of them (V forward passes per step; default 1, the "
        "agent alone)",
    )
    parser.add_argument(
        "--env-kwargs",
        type=json_object,
        default={},
        help="JSON object updating the saved gym.make arguments, e.g. "
        '\'{"size": 15, "family": "perfect"}\'; a policy whose parameters do not depend on '
        "the grid size is rebuilt for the new observation space",
    )
    parser.add_argument(
        "--stochastic", action="store_true", help="sample actions instead of greedy ones"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--render",
        metavar="PATH",
        type=Path,
        default=None,
        help="also save the first held-out episode as an animation (PATH.gif) or a strip of "
        f"frames (PATH.png, at most {STRIP_MAX_FRAMES}, {STRIP_COLUMNS} per row)",
    )
    parser.set_defaults(func=run)


def _check_render_path(path: Path) -> None:
    if path.suffix.lower() not in RENDER_SUFFIXES:
        raise ValueError(f"--render must end in {' or '.join(RENDER_SUFFIXES)}, got {path}")
    if not path.parent.resolve().is_dir():
        raise FileNotFoundError(f"--render: folder {path.parent} does not exist")


def render_episode(
    agent: Any,
    env_id: str,
    env_kwargs: dict[str, Any],
    seed: int,
    path: Path,
    deterministic: bool = True,
) -> int:
    """Play the first held-out episode of an evaluation with ``seed`` (the same maze or
    puzzle as :func:`~trm_rl.agents.evaluation.evaluate`'s first) with
    ``render_mode="rgb_array"`` and save its frames to ``path``: a GIF animation, or a PNG
    strip. Returns the number of steps."""
    import gymnasium as gym
    from PIL import Image

    from trm_rl.agents.evaluation import evaluation_seed

    env = gym.make(env_id, render_mode="rgb_array", **env_kwargs)
    obs, _ = env.reset(seed=evaluation_seed(seed, 0))
    masked = hasattr(env.unwrapped, "action_masks")
    frames = [env.render()]
    done = False
    while not done:
        masks = env.unwrapped.action_masks() if masked else None
        action, _ = agent.predict(obs, deterministic=deterministic, action_masks=masks)
        obs, _, terminated, truncated, _ = env.step(action)
        frames.append(env.render())
        done = terminated or truncated
    env.close()
    if path.suffix.lower() == ".gif":
        images = [Image.fromarray(frame) for frame in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=GIF_FRAME_MS, loop=0)
    else:
        picked = np.unique(np.linspace(0, len(frames) - 1, STRIP_MAX_FRAMES).round().astype(int))
        shown = [frames[i] for i in picked]
        columns = min(STRIP_COLUMNS, len(shown))
        rows = math.ceil(len(shown) / columns)
        height, width = shown[0].shape[:2]
        step_y, step_x = height + STRIP_GAP, width + STRIP_GAP
        strip = np.full((rows * step_y - STRIP_GAP, columns * step_x - STRIP_GAP, 3), 255, np.uint8)
        for index, frame in enumerate(shown):
            row, column = divmod(index, columns)
            top, left = row * step_y, column * step_x
            strip[top : top + height, left : left + width] = frame
        Image.fromarray(strip).save(path)
    return len(frames) - 1


def run(args: argparse.Namespace) -> int:
    """Evaluate and print; returns the exit status."""
    import gymnasium as gym

    from trm_rl.agents.evaluation import evaluate
    from trm_rl.agents.loading import load_agent
    from trm_rl.agents.symmetry import SymmetryEnsemble
    from trm_rl.config import require_int

    if args.render is not None:
        _check_render_path(args.render)
    require_int("--symmetry-views", args.symmetry_views, 1)
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
    if args.symmetry_views > 1:
        agent = SymmetryEnsemble(agent, args.symmetry_views)
    result = evaluate(
        agent,
        env_id,
        episodes=args.episodes,
        seed=args.seed,
        env_kwargs=env_kwargs,
        deterministic=not args.stochastic,
    )
    rendered = None
    if args.render is not None:
        steps = render_episode(
            agent, env_id, env_kwargs, args.seed, args.render, not args.stochastic
        )
        rendered = f"saved {args.render} (first held-out episode, {steps} steps)"
    if args.json:
        trained = agent.config.get("trm") or {}
        record = {
            "source": args.source,
            "env_id": env_id,
            "env_kwargs": env_kwargs,
            "seed": args.seed,
            "deterministic": not args.stochastic,
            "symmetry_views": args.symmetry_views,
            **{name: value or trained.get(name) for name, value in cycles.items()},
            **result.to_dict(),
        }
        if args.render is not None:
            record["render"] = str(args.render)
        print(json.dumps(record))
        return 0
    views = f", {args.symmetry_views} symmetry views" if args.symmetry_views > 1 else ""
    print(
        f"{env_id} {json.dumps(env_kwargs)}: {result.episodes} held-out episodes "
        f"(seed {args.seed}{views})"
    )
    print(f"  success rate  {100 * result.success_rate:.1f}%")
    print(f"  mean return   {result.mean_return:.3f}")
    print(f"  mean length   {result.mean_length:.1f}")
    if result.path_ratio is not None:
        print(f"  path / BFS    {result.path_ratio:.3f} (successful episodes)")
    if rendered is not None:
        print(rendered)
    return 0
