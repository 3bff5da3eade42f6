"""Think longer, solve bigger: one trained maze policy on held-out mazes of other sizes, run
with other numbers of recursive cycles at test time.

For every maze size ``n`` and every cycle count ``K``, the policy saved in ``RUN_DIR`` (or
``pretrained:<name>``) is rebuilt for ``(3, n, n)`` observations with ``h_cycles=K`` (same
weights, through :func:`trm_rl.load_agent`; this needs a position-free grid policy,
``positions="none"``) and plays the same ``--episodes`` held-out mazes of that size with
greedy actions. Reported per (size, K): the success rate with its 95% Wilson interval, and
the path length relative to the BFS shortest path over the successful episodes.

Held-out mazes: maze ``i`` of size ``n`` is drawn by ``reset(seed=evaluation_seed(seed,
i))`` (:mod:`trm_rl.agents.evaluation`), seeds far from the small integers that training
envs use. Episodes are played in lockstep: one batched policy forward per step for every
unfinished maze of a size. An episode ends on the goal (success), as soon as the agent
stands on a cell it has stood on before (a failure), or after ``4 n^2`` steps (the env's
step limit, 4 per cell, as ``TRM-Maze-7x7-v0``; a revisit always comes first). With greedy
actions from a memoryless policy on a fixed maze the observation is a function of the
agent's cell, so a revisit (a bump into a wall included) means the agent would cycle
forever; ending there changes no outcome and keeps failed episodes short. Consequently a
successful episode is a simple path, and on perfect mazes (one path between any two cells)
its length is the BFS length: the path ratio is 1.0 there by construction.

Run::

    python -m trm_rl.benchmarks.extrapolation RUN_DIR --sizes 9 11 15 21 31 \\
        --cycles 1 2 3 4 6 8 12 16 --episodes 100 --seed 0

-> ``benchmarks/results/extrapolation/<name>/`` (``<name>`` defaults to RUN_DIR's name):
``results.json``, ``table.md`` (success and path ratio by size x cycles), ``success.png``
(heat map) and ``episode.png`` (one episode on the largest size, the path drawn over the
maze). ``results.json`` is rewritten after every (size, K) pair (``meta.seconds`` is null
until the end), so an interrupted run leaves its partial results. An existing non-empty
result directory is refused unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from scipy.stats import binomtest
from stable_baselines3.common.preprocessing import preprocess_obs
from torch import Tensor

from trm_rl.agents.evaluation import evaluation_seed
from trm_rl.agents.loading import load_agent, read_config, resolve_source
from trm_rl.config import require_bool, require_choice, require_int
from trm_rl.core import Carry
from trm_rl.envs.maze_layouts import FAMILIES, goal_distances

RESULTS = Path(__file__).resolve().parent / "results" / "extrapolation"
STEPS_PER_CELL = 4
"""The step limit of an ``n x n`` maze is ``STEPS_PER_CELL * n * n``."""
CARRIED_VISITS = 2
"""With a carried latent, an episode ends when the agent enters a cell for the third time
(a policy with memory may come back once; a loop repeats within two rounds)."""
ENV_ID = "TRM-Maze-v0"


@dataclass
class Episode:
    """One maze played by the policy."""

    shortest: int
    """BFS length of the maze (moves)."""
    path: list[tuple[int, int]]
    """Cells the agent stood on, the start first."""
    success: bool = False
    ending: str = "running"
    """``"goal"``, ``"revisit"`` (the agent came back to a cell: it would cycle forever) or
    ``"step_limit"``."""
    wrong_turn: int | None = None
    """BFS distance to the goal of the cell where the agent first made a move that did not
    bring it closer (into a wall or away); None if every move did. On a perfect maze such
    a move dooms the episode, so this is how far the goal was when the policy went wrong."""

    @property
    def steps(self) -> int:
        return len(self.path) - 1


@dataclass(frozen=True)
class CellResult:
    """The results of one (size, cycles) pair."""

    size: int
    h_cycles: int
    episodes: int
    success_rate: float
    success_ci95: tuple[float, float]
    """95% Wilson interval of the success rate."""
    path_ratio: float | None
    """Mean over successful episodes of steps / BFS length; None without a success."""
    mean_shortest: float
    """Mean BFS length of the mazes."""
    revisits: int
    """Episodes ended because the agent came back to a cell."""
    wrong_turn_median: float | None
    """Median of :attr:`Episode.wrong_turn` over the episodes with a wrong turn (None
    without one)."""
    step_limits: int
    """Episodes ended by the step limit."""
    seconds: float
    """Wall time of the (size, cycles) pair."""
    endings: list[str] = field(default_factory=list)
    """Each episode's ending, in maze order."""


def held_out_mazes(size: int, family: str, episodes: int, seed: int) -> list[dict[str, Any]]:
    """The ``episodes`` held-out mazes of ``size`` (maze ``i`` from
    ``reset(seed=evaluation_seed(seed, i))``), as ``reset(options={"maze": ...})`` dicts."""
    env = gym.make(ENV_ID, size=size, family=family)
    mazes = []
    for i in range(episodes):
        env.reset(seed=evaluation_seed(seed, i))
        mazes.append(env.unwrapped.maze)
    env.close()
    return mazes


class CarriedLatent:
    """Greedy actions of a TRM maze policy whose recursion carries on across env steps: at
    every step of an episode the core starts from the previous step's final ``z_H, z_L``
    instead of its initial states (DRC-style "thinking" that accumulates while the agent
    walks; the maze does not change, only the agent's cell does).

    Args:
        agent: an :class:`~trm_rl.agents.loading.SB3Agent` with a TRM policy.
        n_episodes: episodes played in lockstep, indexed ``0 .. n_episodes - 1``.
    """

    def __init__(self, agent: Any, n_episodes: int) -> None:
        self.policy = agent.policy
        self.network = self.policy.features_extractor.network
        self.carry: Carry | None = None
        self.n_episodes = n_episodes

    def actions(self, observations: np.ndarray, episodes: list[int]) -> np.ndarray:
        """Greedy actions for ``observations [len(episodes), 3, n, n]`` of those episodes."""
        policy, network = self.policy, self.network
        with torch.no_grad():
            obs, _ = policy.obs_to_tensor(observations)
            obs = preprocess_obs(obs, policy.observation_space, policy.normalize_images)
            x = network.tokenizer(obs)
            if self.carry is None:
                initial = network.core.initial_carry(self.n_episodes, x.shape[1])
                self.carry = Carry(*(tensor.clone() for tensor in astuple_carry(initial)))
            rows = torch.as_tensor(episodes, device=x.device)
            carry = Carry(*(tensor[rows] for tensor in astuple_carry(self.carry)))
            out = network.core(x, carry)
            for tensor, update in zip(
                astuple_carry(self.carry), astuple_carry(out.carry), strict=True
            ):
                tensor[rows] = update
            features = policy.features_extractor.features(out.states[-1], x, obs)
            latent = policy.mlp_extractor.forward_actor(features)
            chosen = policy._get_action_dist_from_latent(latent).get_actions(deterministic=True)
        return chosen.cpu().numpy()


def astuple_carry(carry: Carry) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The tensors of ``carry`` in :class:`~trm_rl.core.Carry` field order."""
    return carry.z_H, carry.z_L, carry.steps, carry.halted


def play(agent: Any, mazes: list[dict[str, Any]], size: int, carry: bool = False) -> list[Episode]:
    """Play every maze with greedy actions, all in lockstep (one batched forward per step
    for the unfinished ones); see the module docstring for how episodes end. With
    ``carry``, the policy's latent carries across steps (:class:`CarriedLatent`)."""
    limit = STEPS_PER_CELL * size * size
    carried = CarriedLatent(agent, len(mazes)) if carry else None
    envs = [gym.make(ENV_ID, size=size, max_episode_steps=limit) for _ in mazes]
    episodes, observations = [], []
    for env, maze in zip(envs, mazes, strict=True):
        obs, info = env.reset(options={"maze": maze})
        episodes.append(Episode(info["shortest_path"], [env.unwrapped.agent_pos]))
        observations.append(obs)
    visits = [Counter(episode.path) for episode in episodes]
    allowed_visits = CARRIED_VISITS if carry else 1
    active = list(range(len(mazes)))
    while active:
        batch = np.stack([observations[i] for i in active])
        if carried is None:
            actions, _ = agent.predict(batch, deterministic=True)
        else:
            actions = carried.actions(batch, active)
        still = []
        for i, action in zip(active, actions, strict=True):
            observations[i], _, terminated, truncated, info = envs[i].step(action)
            cell = envs[i].unwrapped.agent_pos
            episode = episodes[i]
            episode.path.append(cell)
            visits[i][cell] += 1
            if terminated:
                episode.success, episode.ending = bool(info["is_success"]), "goal"
            elif visits[i][cell] > allowed_visits:
                episode.ending = "revisit"
            elif truncated:
                episode.ending = "step_limit"
            else:
                still.append(i)
        active = still
    for env in envs:
        env.close()
    for episode, maze in zip(episodes, mazes, strict=True):
        episode.wrong_turn = first_wrong_turn(
            episode.path, goal_distances(maze["grid"], maze["goal"])
        )
    return episodes


def first_wrong_turn(path: list[tuple[int, int]], distances: np.ndarray) -> int | None:
    """The goal distance (``distances [n, n]``, BFS) of the first cell of ``path`` whose
    next move does not reduce it; None when every move does."""
    for cell, after in itertools.pairwise(path):
        if distances[after] >= distances[cell]:
            return int(distances[cell])
    return None


def summarize(size: int, h_cycles: int, episodes: list[Episode], seconds: float) -> CellResult:
    """A :class:`CellResult` from the episodes of one (size, cycles) pair."""
    successes = sum(episode.success for episode in episodes)
    interval = binomtest(successes, len(episodes)).proportion_ci(method="wilson")
    ratios = [episode.steps / episode.shortest for episode in episodes if episode.success]
    endings = [episode.ending for episode in episodes]
    wrong_turns = [episode.wrong_turn for episode in episodes if episode.wrong_turn is not None]
    return CellResult(
        size=size,
        h_cycles=h_cycles,
        episodes=len(episodes),
        success_rate=successes / len(episodes),
        success_ci95=(float(interval.low), float(interval.high)),
        path_ratio=float(np.mean(ratios)) if ratios else None,
        mean_shortest=float(np.mean([episode.shortest for episode in episodes])),
        revisits=endings.count("revisit"),
        wrong_turn_median=float(np.median(wrong_turns)) if wrong_turns else None,
        step_limits=endings.count("step_limit"),
        seconds=seconds,
        endings=endings,
    )


def maze_space(size: int) -> spaces.Box:
    """The observation space of an ``size x size`` maze."""
    return spaces.Box(0.0, 1.0, (3, size, size), np.float32)


def trained_setting(source: str | Path) -> dict[str, Any]:
    """The training env, its maze size and the TRM settings of an agent directory or
    ``"pretrained:<name>"``, from its ``config.json``.

    Raises:
        ValueError: the agent is not a TRM policy trained on maze observations ``(3, n, n)``.
    """
    run_dir = resolve_source(source)
    config = read_config(run_dir)
    trm = config.get("trm")
    if config.get("policy", "trm") != "trm" or not isinstance(trm, dict):
        raise ValueError(f"{run_dir} is not a TRM policy run (config.json has no 'trm' settings)")
    env = gym.make(config["env_id"], **(config.get("env_kwargs") or {}))
    shape = env.observation_space.shape
    env.close()
    if len(shape) != 3 or shape[0] != 3 or shape[1] != shape[2]:
        raise ValueError(
            f"{run_dir} was trained on {config['env_id']} with observations {shape}; the "
            "extrapolation benchmark needs a maze policy ((3, n, n) observations)"
        )
    return {
        "env_id": config["env_id"],
        "env_kwargs": config.get("env_kwargs") or {},
        "size": int(shape[1]),
        "h_cycles": trm["h_cycles"],
        "l_cycles": trm["l_cycles"],
        "positions": (config.get("policy_kwargs") or {}).get("positions", "learned"),
        "command": config.get("command"),
    }


def check_arguments(
    sizes: list[int], cycles: list[int], episodes: int, seed: int, family: str
) -> None:
    """Raise naming the argument unless the arguments of :func:`run` are valid."""
    require_choice("family", family, FAMILIES)
    for size in sizes:
        require_int("sizes", size, 3)
        if family == "perfect" and size % 2 == 0:
            raise ValueError(f'family="perfect" needs odd sizes, got {size}; use "open" or "mixed"')
    for count in cycles:
        require_int("cycles", count, 1)
    require_int("episodes", episodes, 1)
    require_int("seed", seed, 0)


def run(
    source: str | Path,
    sizes: list[int],
    cycles: list[int],
    episodes: int = 100,
    seed: int = 0,
    family: str = "perfect",
    device: str = "cpu",
    on_result: Callable[[list[CellResult]], None] | None = None,
    carry: bool = False,
) -> tuple[list[CellResult], dict[int, tuple[list[dict[str, Any]], dict[int, list[Episode]]]]]:
    """Play every (size, cycles) pair.

    Args:
        source: an agent directory (``config.json`` + weights) or ``"pretrained:<name>"``
            holding a TRM maze policy.
        sizes: maze sides (ints >= 3; odd for ``family="perfect"``).
        cycles: test-time ``h_cycles`` (ints >= 1); ``l_cycles`` stays as trained.
        episodes: held-out mazes per size (the same mazes for every cycle count).
        seed: evaluation seed (:func:`~trm_rl.agents.evaluation.evaluation_seed`).
        family: maze family of the held-out mazes (``"perfect"``, ``"open"``, ``"mixed"``).
        device: torch device of the policy (``"cpu"``, ``"cuda"``, ``"auto"``).
        on_result: called with the results so far after every (size, cycles) pair.
        carry: carry the policy's latent across the steps of an episode
            (:class:`CarriedLatent`); an episode then ends at the third entry of a cell.

    Returns:
        The results in (size, cycles) order, and per size its mazes and each cycle count's
        episodes (for pictures).

    Raises:
        ValueError/TypeError: a bad size (< 3, or even with ``family="perfect"``), cycle
            count (< 1), ``episodes`` (< 1), ``seed`` (< 0) or ``family``; a run that is not
            a maze TRM policy, or whose parameters depend on the grid size (learned
            positions: the error names them).
    """
    check_arguments(sizes, cycles, episodes, seed, family)
    require_bool("carry", carry)
    trained_setting(source)
    results, played = [], {}
    for size in sizes:
        mazes = held_out_mazes(size, family, episodes, seed)
        by_cycles = {}
        for count in cycles:
            start = time.perf_counter()
            agent = load_agent(
                source, h_cycles=count, observation_space=maze_space(size), device=device
            )
            by_cycles[count] = play(agent, mazes, size, carry)
            results.append(summarize(size, count, by_cycles[count], time.perf_counter() - start))
            if on_result is not None:
                on_result(results)
        played[size] = (mazes, by_cycles)
    return results, played


def markdown_table(results: list[CellResult], trained_cycles: int) -> str:
    """Two markdown tables, sizes x cycles: success (%) and path length / BFS."""
    sizes = sorted({r.size for r in results})
    cycles = sorted({r.h_cycles for r in results})
    cell = {(r.size, r.h_cycles): r for r in results}
    header = "| size | " + " | ".join(
        f"K={k}" + (" (trained)" if k == trained_cycles else "") for k in cycles
    )
    rule = "|---|" + "---|" * len(cycles)

    def table(value) -> list[str]:
        rows = [
            f"| {n}x{n} | " + " | ".join(value(cell[n, k]) for k in cycles) + " |" for n in sizes
        ]
        return [header + " |", rule, *rows]

    success = table(lambda r: f"{100 * r.success_rate:.0f}%")
    ratio = table(lambda r: "-" if r.path_ratio is None else f"{r.path_ratio:.2f}")
    wrong = table(lambda r: "-" if r.wrong_turn_median is None else f"{r.wrong_turn_median:.0f}")
    return "\n".join(
        [
            "Success rate (greedy actions) by maze size x test-time cycles K:",
            "",
            *success,
            "",
            "Path length / BFS shortest path over the successful episodes:",
            "",
            *ratio,
            "",
            "Where the policy goes wrong: median BFS distance to the goal at the first move "
            "that does not bring the agent closer (over the episodes with one); mean shortest "
            "path per size: "
            + ", ".join(f"{n}x{n} {cell[n, cycles[0]].mean_shortest:.0f}" for n in sizes),
            "",
            *wrong,
            "",
        ]
    )


def heat_map(results: list[CellResult], path: Path, title: str) -> None:
    """Success by size (rows) x cycles (columns) as an annotated heat map PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({r.size for r in results})
    cycles = sorted({r.h_cycles for r in results})
    grid = np.zeros((len(sizes), len(cycles)))
    for r in results:
        grid[sizes.index(r.size), cycles.index(r.h_cycles)] = 100 * r.success_rate
    fig, ax = plt.subplots(figsize=(max(5.5, 1.5 + 0.8 * len(cycles)), 2.0 + 0.6 * len(sizes)))
    image = ax.imshow(grid, vmin=0, vmax=100, cmap="viridis", aspect="auto")
    for (row, col), value in np.ndenumerate(grid):
        ax.text(
            col,
            row,
            f"{value:.0f}",
            ha="center",
            va="center",
            color="black" if value > 60 else "white",
            fontsize=9,
        )
    ax.set_xticks(range(len(cycles)), [str(k) for k in cycles])
    ax.set_yticks(range(len(sizes)), [f"{n}x{n}" for n in sizes])
    ax.set_xlabel("test-time cycles K (h_cycles)")
    ax.set_ylabel("maze size")
    ax.set_title(textwrap.fill(title, 70), fontsize=9)
    fig.colorbar(image, ax=ax, label="success (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def episode_picture(maze: dict[str, Any], episode: Episode, path: Path, title: str) -> None:
    """The maze (walls dark) with the agent's path drawn over it, start and goal marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.asarray(maze["grid"])
    side = grid.shape[0]
    fig, ax = plt.subplots(figsize=(2 + 0.18 * side, 2 + 0.18 * side))
    ax.imshow(grid, cmap="Greys", vmin=0, vmax=1.4)
    rows, cols = zip(*episode.path, strict=True)
    ax.plot(cols, rows, color="tab:blue", linewidth=2)
    ax.plot(*maze["start"][::-1], "o", color="tab:green", markersize=8, label="start")
    ax.plot(*maze["goal"][::-1], "*", color="tab:red", markersize=12, label="goal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(textwrap.fill(title, 60), fontsize=9)
    ax.legend(loc="upper right", fontsize=7, bbox_to_anchor=(1.0, -0.01), ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def git_commit() -> str | None:
    """The repository's HEAD commit, or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "run_dir", help="agent directory (config.json, model.zip) or pretrained:NAME"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[9, 11, 15, 21, 31])
    parser.add_argument("--cycles", type=int, nargs="+", default=[1, 2, 3, 4, 6, 8, 12, 16])
    parser.add_argument("--episodes", type=int, default=100, help="held-out mazes per size")
    parser.add_argument("--seed", type=int, default=0, help="evaluation seed (default 0)")
    parser.add_argument("--family", choices=FAMILIES, default="perfect", help="maze family")
    parser.add_argument("--name", default=None, help="result directory name (RUN_DIR's name)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="parent of the results")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing result")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument(
        "--carry",
        action="store_true",
        help="carry the policy's latent across the steps of an episode (ends at a cell's "
        "third entry)",
    )
    args = parser.parse_args(argv)
    args.command = "python -m trm_rl.benchmarks.extrapolation " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    require_int("threads", args.threads, 1)
    name = args.name or resolve_source(args.run_dir).resolve().name
    out = args.results / name
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise FileExistsError(f"{out} already holds a result; pass --overwrite to replace it")
    check_arguments(args.sizes, args.cycles, args.episodes, args.seed, args.family)
    setting = trained_setting(args.run_dir)
    torch.set_num_threads(args.threads)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "run_dir": args.run_dir,
        "trained": setting,
        "sizes": args.sizes,
        "cycles": args.cycles,
        "episodes": args.episodes,
        "seed": args.seed,
        "family": args.family,
        "step_limit": f"{STEPS_PER_CELL} * size**2",
        "carry": args.carry,
        "episode_end": "goal, step limit, or a cell entered a third time (carried latent)"
        if args.carry
        else "goal, step limit, or a revisited cell (greedy memoryless policy)",
        "threads": args.threads,
        "device": args.device,
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "commit": git_commit(),
        "command": args.command,
    }

    def write(results: list[CellResult], seconds: float | None = None) -> None:
        report = {"meta": {**meta, "seconds": seconds}, "results": [asdict(r) for r in results]}
        (out / "results.json").write_text(json.dumps(report, indent=2) + "\n")

    start = time.perf_counter()
    results, played = run(
        args.run_dir,
        args.sizes,
        args.cycles,
        args.episodes,
        args.seed,
        args.family,
        args.device,
        on_result=write,
        carry=args.carry,
    )
    seconds = time.perf_counter() - start
    write(results, seconds)
    trained = setting["h_cycles"]
    title = (
        f"{name}: trained on {setting['env_id']} ({setting['size']}x{setting['size']}, "
        f"K={trained}); {args.episodes} held-out {args.family} mazes per size"
    )
    (out / "table.md").write_text(
        f"# {title}\n\n`{args.command}`\n\n" + markdown_table(results, trained)
    )
    heat_map(results, out / "success.png", title)
    largest = max(args.sizes)
    best = max(
        (r for r in results if r.size == largest), key=lambda r: (r.success_rate, -r.h_cycles)
    )
    mazes, by_cycles = played[largest]
    episodes = by_cycles[best.h_cycles]
    index = next((i for i, e in enumerate(episodes) if e.success), 0)
    episode = episodes[index]
    outcome = "reached the goal" if episode.success else f"failed ({episode.ending})"
    episode_picture(
        mazes[index],
        episode,
        out / "episode.png",
        f"{largest}x{largest} {args.family} maze {index}, K={best.h_cycles}: {outcome} after "
        f"{episode.steps} steps (BFS path {episode.shortest})",
    )
    print(markdown_table(results, trained))
    print(f"wrote {out} ({seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
