"""REINFORCE with deep supervision on mazes: TRM (K=3, K=5) against a parameter-matched MLP.

Every agent of a run is trained with the same budget, env settings and algorithm
hyperparameters (:data:`TASKS`), over several seeds, and then evaluated:

- ``per_cycle``: held-out success acting greedily from each cycle ``k``'s logits (the MLP
  has one "cycle"), to see whether later cycles are at least as good as earlier ones;
- ``sampled``: held-out success sampling from the last cycle (the policy as trained);
- ``train_success_last50``: success over the last 50 training episodes (the original
  write-up's figure).

Held-out episodes use :func:`trm_rl.agents.evaluation.evaluate`'s reset seeds; on random
mazes, layouts whose first observation also started a training episode are skipped, so
every evaluated maze is unseen. The fixed task has one layout by definition, so its
"held-out" episodes replay it (greedy play is then one deterministic episode).

The deep-supervision ablation: ``trm-k3-no-ds`` / ``trm-k5-no-ds`` (the loss only on the
acting cycle) and one agent per ``ReinforceConfig.cycle_loss`` (``-imitate``, ``-is``,
``-pos``); ``trm-k3-exp5`` / ``trm-k5-exp5`` weight the cycles exponentially (base 5) instead
of linearly, with the original "imitate" loss.

Run: ``python -m trm_rl.benchmarks.reinforce_learning --task fixed --seed 0 --n-seeds 3``
-> ``benchmarks/results/reinforce_fixed.json`` (rewritten after every run, so partial
results survive); ``--task random`` for random 5x5 mazes (300k env steps).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from trm_rl.agents.evaluation import evaluate
from trm_rl.agents.network import parameter_count
from trm_rl.agents.reinforce.trainer import ReinforceAgent, ReinforceConfig, train
from trm_rl.benchmarks.held_out import fingerprint
from trm_rl.benchmarks.stats import summarize
from trm_rl.config import TRMConfig

RESULTS = Path(__file__).resolve().parent / "results"
CORE = TRMConfig(hidden_dim=32, n_layers=1, h_cycles=3, l_cycles=2, mixer="conv", expansion=2.0)
"""The core every TRM agent uses (``h_cycles`` set per agent)."""
FOCUS_CHANNEL = 1
"""The readout pools at the agent's cell (observation channel 1)."""
TASKS: dict[str, dict[str, Any]] = {
    "fixed": {
        "env_id": "TRM-Maze-Fixed-v0",
        "n_envs": 4,
        "episodes": 500,
        "timesteps": None,
        "config": ReinforceConfig(learning_rate=2e-3),
    },
    "random": {
        "env_id": "TRM-Maze-v0",
        "n_envs": 16,
        "episodes": None,
        "timesteps": 300_000,
        "config": ReinforceConfig(learning_rate=2e-3),
    },
}
"""Env, parallel envs (= episodes per update), default budget and hyperparameters per task."""
AGENTS: dict[str, dict[str, Any]] = {
    "trm-k3": {"policy": "trm", "h_cycles": 3, "reinforce": {}},
    "trm-k5": {"policy": "trm", "h_cycles": 5, "reinforce": {}},
    "mlp": {"policy": "mlp", "h_cycles": 3, "reinforce": {}},
    "trm-k3-no-ds": {"policy": "trm", "h_cycles": 3, "reinforce": {"deep_supervision": False}},
    "trm-k5-no-ds": {"policy": "trm", "h_cycles": 5, "reinforce": {"deep_supervision": False}},
    "trm-k3-imitate": {"policy": "trm", "h_cycles": 3, "reinforce": {"cycle_loss": "imitate"}},
    "trm-k5-imitate": {"policy": "trm", "h_cycles": 5, "reinforce": {"cycle_loss": "imitate"}},
    "trm-k3-exp5": {
        "policy": "trm",
        "h_cycles": 3,
        "reinforce": {"weighting": "exponential", "cycle_loss": "imitate"},
    },
    "trm-k5-exp5": {
        "policy": "trm",
        "h_cycles": 5,
        "reinforce": {"weighting": "exponential", "cycle_loss": "imitate"},
    },
    "trm-k3-is": {"policy": "trm", "h_cycles": 3, "reinforce": {"cycle_loss": "importance"}},
    "trm-k5-is": {"policy": "trm", "h_cycles": 5, "reinforce": {"cycle_loss": "importance"}},
    "trm-k3-pos": {"policy": "trm", "h_cycles": 3, "reinforce": {"cycle_loss": "positive"}},
    "trm-k5-pos": {"policy": "trm", "h_cycles": 5, "reinforce": {"cycle_loss": "positive"}},
}
"""Agents: network, cycles and changes to the task's ``ReinforceConfig``. ``trm-k3``/``trm-k5``
take its defaults; the others name their ``cycle_loss`` (or deep supervision off), so a row
keeps meaning what it measured when a default changes (results written before
``cycle_loss`` existed, and ``trm-k3``/``trm-k5`` rows of that time, used "imitate"). The
MLP's width matches the K=3 TRM's parameter count (K does not change it)."""


class TrainingStarts(gym.Wrapper):
    """Records the fingerprint of every episode's first observation in a shared set."""

    def __init__(self, env: gym.Env, seen: set[bytes]) -> None:
        super().__init__(env)
        self.seen = seen

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.seen.add(fingerprint(obs))
        return obs, info


class CycleAgent:
    """``predict`` acting from one cycle of a :class:`ReinforceAgent`."""

    def __init__(self, agent: ReinforceAgent, cycle: int) -> None:
        self.agent, self.cycle = agent, cycle

    def predict(
        self, observation, state=None, episode_start=None, deterministic=False, action_masks=None
    ):
        return self.agent.predict(
            observation, state, episode_start, deterministic, action_masks, cycle=self.cycle
        )


def run_one(
    task: str,
    agent_name: str,
    seed: int,
    budget: dict[str, Any],
    eval_episodes: int,
    eval_seed: int,
) -> dict[str, Any]:
    """Train one agent, evaluate it per cycle on held-out episodes; its results row."""
    torch.set_num_threads(1)
    spec, settings = TASKS[task], AGENTS[agent_name]
    config = replace(spec["config"], episodes=budget["episodes"], **settings["reinforce"])
    core = replace(CORE, h_cycles=settings["h_cycles"])
    seen: set[bytes] = set()
    curve: list[tuple[int, int, float]] = []

    def record(stats: dict[str, Any]) -> None:
        curve.append((stats["episodes"], stats["env_steps"], stats["rollout/success_rate"]))

    start = time.perf_counter()
    agent = train(
        spec["env_id"],
        config,
        policy=settings["policy"],
        trm=core,
        focus_channel=FOCUS_CHANNEL if settings["policy"] == "trm" else None,
        n_envs=spec["n_envs"],
        timesteps=budget["timesteps"],
        seed=seed,
        callback=record,
        wrapper_class=lambda env: TrainingStarts(env, seen),
    )
    train_seconds = time.perf_counter() - start
    skip = None if task == "fixed" else (lambda obs: fingerprint(obs) in seen)

    def held_out(cycle: int, deterministic: bool) -> dict[str, Any]:
        return evaluate(
            CycleAgent(agent, cycle),
            spec["env_id"],
            episodes=eval_episodes,
            seed=eval_seed,
            deterministic=deterministic,
            batch=64,
            skip=skip,
        ).to_dict()

    episodes = np.array([point[0] for point in curve])
    successes = np.repeat([point[2] for point in curve], np.diff(episodes, prepend=0))
    row = {
        "agent": agent_name,
        "seed": seed,
        "params": parameter_count(agent.policy),
        "episodes": int(episodes[-1]),
        "env_steps": curve[-1][1],
        "steps_per_s": curve[-1][1] / train_seconds,
        "train_success_last50": float(successes[-50:].mean()),
        "training_layouts": len(seen),
        "per_cycle": [held_out(k, True) for k in range(agent.policy.n_cycles)],
        "sampled": held_out(-1, False),
        "curve": [
            {"episodes": e, "env_steps": s, "success_rate": r}
            for e, s, r in [*curve[: -1 : max(1, len(curve) // 20)], curve[-1]]
        ],
    }
    final = row["per_cycle"][-1]
    print(
        f"{task} {agent_name:12s} seed {seed}: held-out greedy success "
        f"{[round(c['success_rate'], 3) for c in row['per_cycle']]}, sampled "
        f"{row['sampled']['success_rate']:.3f}, last-50 training "
        f"{row['train_success_last50']:.2f}, path ratio {final['path_ratio']}, "
        f"{row['steps_per_s']:.0f} steps/s",
        flush=True,
    )
    return row


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and 95% bootstrap interval over seeds, per agent."""
    out = {}
    for agent in AGENTS:
        mine = [row for row in rows if row["agent"] == agent]
        if not mine:
            continue
        n_cycles = len(mine[0]["per_cycle"])
        out[agent] = {
            "seeds": [row["seed"] for row in mine],
            "greedy_success": vars(summarize([r["per_cycle"][-1]["success_rate"] for r in mine])),
            "sampled_success": vars(summarize([r["sampled"]["success_rate"] for r in mine])),
            "train_success_last50": vars(summarize([r["train_success_last50"] for r in mine])),
            "path_ratio": vars(summarize([r["per_cycle"][-1]["path_ratio"] for r in mine])),
            "per_cycle_greedy_success": [
                vars(summarize([r["per_cycle"][k]["success_rate"] for r in mine]))
                for k in range(n_cycles)
            ],
            "steps_per_s": vars(summarize([r["steps_per_s"] for r in mine])),
            "params": mine[0]["params"],
        }
    return out


def code_version() -> str:
    """``git describe --always --dirty`` of the checkout (the core changes between runs)."""
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return described.stdout.strip()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=tuple(TASKS), default="fixed", help="maze task")
    parser.add_argument(
        "--agents",
        nargs="+",
        choices=tuple(AGENTS),
        default=["trm-k3", "trm-k5", "mlp", "trm-k3-no-ds"],
        help="agents",
    )
    parser.add_argument("--seed", type=int, default=0, help="first training seed (default 0)")
    parser.add_argument("--n-seeds", type=int, default=3, help="seeds seed..seed+n-1 (3)")
    parser.add_argument(
        "--episodes",
        type=int,
        default=None,
        help="training episodes per agent (default: the task's)",
    )
    parser.add_argument(
        "--timesteps",
        type=int,
        default=None,
        help="training env steps per agent (default: the task's)",
    )
    parser.add_argument("--eval-episodes", type=int, default=200, help="held-out episodes")
    parser.add_argument("--eval-seed", type=int, default=0, help="evaluation seed (default 0)")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    parser.add_argument("--out", type=Path, default=None, help="results JSON path")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    spec = TASKS[args.task]
    budget = {"episodes": args.episodes, "timesteps": args.timesteps}
    if budget["episodes"] is None and budget["timesteps"] is None:
        budget = {"episodes": spec["episodes"], "timesteps": spec["timesteps"]}
    out = args.out or RESULTS / f"reinforce_{args.task}.json"
    meta = {
        "task": args.task,
        "env_id": spec["env_id"],
        "budget": budget,
        "n_envs": spec["n_envs"],
        "reinforce": spec["config"].to_dict(),
        "core": CORE.to_dict(),
        "focus_channel": FOCUS_CHANNEL,
        "agents": {name: AGENTS[name] for name in args.agents},
        "seeds": list(range(args.seed, args.seed + args.n_seeds)),
        "eval": {"episodes": args.eval_episodes, "seed": args.eval_seed},
        "code": code_version(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "command": "python -m trm_rl.benchmarks.reinforce_learning "
        + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    jobs = [
        (args.task, agent, seed, budget, args.eval_episodes, args.eval_seed)
        for seed in meta["seeds"]
        for agent in args.agents
    ]
    rows: list[dict[str, Any]] = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for future in as_completed([pool.submit(run_one, *job) for job in jobs]):
            rows.append(future.result())
            rows.sort(key=lambda row: (row["seed"], list(AGENTS).index(row["agent"])))
            out.parent.mkdir(parents=True, exist_ok=True)
            report = {"meta": meta, "summary": summary(rows), "runs": rows}
            out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        json.dumps(
            {
                agent: {k: v for k, v in s.items() if k.endswith("success")}
                for agent, s in summary(rows).items()
            },
            indent=2,
        )
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
