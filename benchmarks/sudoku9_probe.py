"""Can the 9x9 Sudoku policy network learn to place a *single*? A supervised probe.

Reinforcement learning tells whether a policy learns; this probe tells whether its network
can represent and fit the move a solver makes, without the noise of RL. The network of
``MaskablePPO(MaskableTRMPolicy)`` with the ``TRM-Sudoku-9x9-v0`` recipe's core and one
logit per (cell, digit) (:data:`PROBE_HEAD`; ``--trm-kwargs`` override both) is trained by
cross-entropy to put its masked action probability on the
*singles* of a position: the placements that the rules force (a naked single: a blank with
one legal digit; a hidden single: a digit legal in only one blank of a row, column or box).
Every single is a right digit, so a policy whose greedy action is always a single solves
every puzzle that singles solve.

Positions: puzzles from ``TRM-Sudoku-9x9-v0`` (``--difficulty``) with ``max_blanks`` drawn
from 1..81, so every stage of solving appears; held-out positions are the start positions
of full puzzles from evaluation seeds. Reported before training and every ``--eval-every``
steps: the fraction of held-out positions whose greedy (masked argmax) action is a single
(and the scores of :func:`single_scores`); ``--steps 0`` scores the untrained network, e.g.
the recipe's own head with ``--trm-kwargs``.

With ``--agent DIR`` nothing is trained: the held-out scores of a trained agent's policy
(how often its greedy action is a single, and the probability it puts on singles) show how
far RL has taken it toward that move.

::

    python -m trm_rl.benchmarks.sudoku9_probe --steps 3000 --seed 0 \\
        --trm-kwargs '{"h_cycles": 1}' --out benchmarks/results/sudoku9/probe-h1.json
    python -m trm_rl.benchmarks.sudoku9_probe --agent RUN_DIR --out scores.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trm_rl.agents.evaluation import evaluation_seed
from trm_rl.agents.loading import load_agent, read_config, resolve_source
from trm_rl.agents.sb3.hyperparams import MASKABLE_ALGOS
from trm_rl.agents.sb3.training import TrainConfig, make_model
from trm_rl.atomic import atomic_write_text
from trm_rl.cli.dataclass_flags import json_object
from trm_rl.config import require_int, require_number
from trm_rl.envs.sudoku9 import OBSERVATIONS, Sudoku9Env
from trm_rl.envs.sudoku9_puzzles import SIZE, UNITS

ENV_ID = "TRM-Sudoku-9x9-v0"
_UNITS = np.array(UNITS)
"""The 27 units of :data:`~trm_rl.envs.sudoku9_puzzles.UNITS` as ``[27, 9]`` cell indices."""


def singles(mask: np.ndarray) -> np.ndarray:
    """The forced placements of a position: bool ``[729]`` from its legal-action mask.

    Naked singles: a blank cell with one legal digit. Hidden singles: a digit legal in
    exactly one blank of a unit (row, column or box), at that blank.
    """
    legal = mask.reshape(SIZE * SIZE, SIZE)
    forced = legal & (legal.sum(1) == 1)[:, None]
    per_unit = legal[_UNITS]  # [27, 9 cells, 9 digits]
    only = per_unit & (per_unit.sum(1, keepdims=True) == 1)
    for unit, cells in enumerate(_UNITS):
        forced[cells] |= only[unit]
    return forced.reshape(-1)


PROBE_HEAD = {"factored_actions": False, "token_selection": "learned", "confidence_power": 1.0}
"""The probe's action head: one logit per (cell, digit), every probability trained (pinned,
whatever the recipe's head; a confidence-selection head trains only the digits)."""


def positions(env: Sudoku9Env, n: int, seeds: list[int] | None = None) -> tuple[np.ndarray, ...]:
    """``n`` positions ``(observations, masks, singles)`` from ``env`` (reset with ``seeds``
    when given, else continuing its stream)."""
    observations, masks, targets = [], [], []
    for i in range(n):
        obs, info = env.reset(seed=None if seeds is None else seeds[i])
        observations.append(obs)
        masks.append(info["action_mask"])
        targets.append(singles(info["action_mask"]))
    return np.stack(observations), np.stack(masks), np.stack(targets)


def masked_log_probs(policy: Any, observations: np.ndarray, masks: np.ndarray) -> torch.Tensor:
    """The policy's masked action log-probabilities ``[B, 729]`` (its own masked
    distribution: illegal actions get about -1e8)."""
    obs, _ = policy.obs_to_tensor(observations)
    return policy.get_distribution(obs, action_masks=masks).distribution.logits


def guess_certainty(probs: torch.Tensor, masks: np.ndarray, targets: np.ndarray) -> float:
    """Mean over *undecided* cells (at least two legal digits, none of them a single) of
    the policy's largest digit probability given the cell, ``max_j pi(j | cell)``.

    No rule decides such a cell yet, so a calibrated policy stays near ``1 / k`` there;
    values near 1 mean it is as sure of a guess as of a single. ``probs``: ``[B, 729]``
    action probabilities; ``masks``, ``targets``: ``[B, 729]`` bools. NaN without an
    undecided cell.
    """
    legal = torch.as_tensor(masks).reshape(len(masks), SIZE * SIZE, SIZE)
    forced = torch.as_tensor(targets).reshape(legal.shape)
    undecided = (legal.sum(-1) >= 2) & ~forced.any(-1)
    per_cell = probs.reshape(legal.shape)
    given_cell = per_cell / per_cell.sum(-1, keepdim=True).clamp_min(1e-30)
    best = given_cell.masked_fill(~legal, 0.0).amax(-1)
    return float(best[undecided].mean()) if undecided.any() else float("nan")


def single_scores(policy: Any, held_out: tuple[np.ndarray, ...]) -> dict[str, float]:
    """On held-out positions: the fraction whose greedy action is a single
    (``greedy_single_rate``), the mean probability the policy puts on singles
    (``single_mass``) and its certainty in undecided cells (:func:`guess_certainty`)."""
    observations, masks, targets = held_out
    with torch.no_grad():
        log_probs = masked_log_probs(policy, observations, masks)
    chosen = log_probs.argmax(-1).numpy()
    probs = log_probs.exp()
    mass = (probs * torch.as_tensor(targets)).sum(-1)
    return {
        "greedy_single_rate": float(targets[np.arange(len(targets)), chosen].mean()),
        "single_mass": float(mass.mean()),
        "guess_certainty": guess_certainty(probs, masks, targets),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trm-kwargs", type=json_object, default={}, help="JSON TRM overrides")
    parser.add_argument(
        "--difficulty", choices=("naked", "hidden"), default="naked", help="puzzle grade"
    )
    parser.add_argument(
        "--observation",
        choices=OBSERVATIONS,
        default=None,
        help="the env's observation (digits, or digit and candidate planes; default: the "
        "agent's with --agent, else digits)",
    )
    parser.add_argument(
        "--agent",
        default=None,
        help="score this trained 9x9 agent (a directory or pretrained:<name>) on the held-out "
        "positions instead of training a network",
    )
    parser.add_argument(
        "--steps", type=int, default=3000, help="gradient steps (3000; 0 scores the untrained net)"
    )
    parser.add_argument("--batch", type=int, default=128, help="positions per step (128)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (1e-3)")
    parser.add_argument("--eval-every", type=int, default=250, help="steps between evaluations")
    parser.add_argument("--eval-positions", type=int, default=256, help="held-out positions")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--out", type=Path, required=True, help="results JSON")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    require_int("--steps", args.steps, 0)
    for name in ("batch", "eval_every", "eval_positions"):
        require_int(f"--{name.replace('_', '-')}", getattr(args, name), 1)
    require_int("--seed", args.seed, 0)
    require_number("--lr", args.lr, 0.0, low_open=True)
    if args.out.exists() and not args.overwrite:
        parser.error(f"{args.out} exists; pass --overwrite to replace it")
    return args


def held_out_positions(args: argparse.Namespace, observation: str) -> tuple[np.ndarray, ...]:
    """The start positions of ``--eval-positions`` full puzzles from evaluation seeds."""
    return positions(
        Sudoku9Env(args.difficulty, variants=1, observation=observation),
        args.eval_positions,
        [evaluation_seed(0, i) for i in range(args.eval_positions)],
    )


def command(argv: list[str] | None) -> str:
    return "python -m trm_rl.benchmarks.sudoku9_probe " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )


def score_agent(args: argparse.Namespace, argv: list[str] | None) -> int:
    """``--agent``: the trained policy's single scores on the held-out positions."""
    directory = resolve_source(args.agent)
    config = read_config(directory)
    if config.get("env_id") != ENV_ID or config.get("algo") not in MASKABLE_ALGOS:
        raise ValueError(
            f"--agent must be a {' or '.join(MASKABLE_ALGOS)} agent of {ENV_ID}, got "
            f"{config.get('algo')!r} on "
            f"{config.get('env_id')!r}"
        )
    trained = (config.get("env_kwargs") or {}).get("observation", "digits")
    if args.observation not in (None, trained):
        raise ValueError(f"--observation {args.observation} differs from the agent's ({trained!r})")
    policy = load_agent(directory, device="cpu").policy
    scores = single_scores(policy, held_out_positions(args, trained))
    record = {
        "meta": {
            "command": command(argv),
            "agent": str(args.agent),
            "difficulty": args.difficulty,
            "observation": trained,
            "held_out": f"start positions of {args.eval_positions} full puzzles",
        },
        "scores": scores,
    }
    atomic_write_text(args.out, json.dumps(record, indent=2) + "\n")
    print(
        f"{args.agent}: greedy action a single on {scores['greedy_single_rate']:.1%} of "
        f"held-out {args.difficulty} starts, probability on singles {scores['single_mass']:.3f}, "
        f"largest digit probability in undecided cells {scores['guess_certainty']:.3f}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    if args.agent is not None:
        return score_agent(args, argv)
    args.observation = args.observation or "digits"
    config = TrainConfig(
        ENV_ID,
        algo="maskable-ppo",
        seed=args.seed,
        n_envs=1,
        env_kwargs={"difficulty": args.difficulty, "observation": args.observation},
        policy_kwargs={**PROBE_HEAD, **args.trm_kwargs},
    )
    policy = make_model(config).policy
    optimizer = torch.optim.Adam(policy.parameters(), lr=args.lr)
    train_env = Sudoku9Env(
        args.difficulty, max_blanks=(1, SIZE * SIZE), observation=args.observation
    )
    train_env.reset(seed=args.seed)
    held_out = held_out_positions(args, args.observation)
    record: dict[str, Any] = {
        "meta": {
            "command": command(argv),
            "trm": policy.trm_config.to_dict(),
            "difficulty": args.difficulty,
            "observation": args.observation,
            "batch": args.batch,
            "lr": args.lr,
            "seed": args.seed,
            "held_out": f"start positions of {args.eval_positions} full puzzles",
        },
        "curve": [],
    }
    start = time.process_time()

    def add_point(step: int, loss: float | None) -> None:
        point = {
            "step": step,
            "loss": loss,
            **single_scores(policy, held_out),
            "cpu_seconds": time.process_time() - start,
        }
        record["curve"].append(point)
        atomic_write_text(args.out, json.dumps(record, indent=2) + "\n")
        print(
            f"step {step:5d}  held-out greedy single {point['greedy_single_rate']:.1%}  "
            f"certainty in undecided cells {point['guess_certainty']:.3f}  "
            f"({point['cpu_seconds']:.0f} CPU-s)",
            flush=True,
        )

    add_point(0, None)
    for step in range(1, args.steps + 1):
        observations, masks, targets = positions(train_env, args.batch)
        log_probs = masked_log_probs(policy, observations, masks)
        on_singles = log_probs.masked_fill(~torch.as_tensor(targets), float("-inf"))
        loss = -torch.logsumexp(on_singles, -1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % args.eval_every == 0 or step == args.steps:
            add_point(step, loss.item())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
