"""Turn an agent directory into a pretrained policy shipped with the package.

Usage::

    python -m trm_rl.pretrained.package RUN_DIR NAME --commit SHA [--command "..."]
        [--evaluate EPISODES] [--eval-env-kwargs JSON] [--root DIR] [--overwrite]

``RUN_DIR`` is a directory written by ``trm-rl train`` (SB3 or REINFORCE), by
``python -m trm_rl.benchmarks.policy_learning --save-models DIR`` or by ``trm-rl control
train``. The agent is loaded safely (tensors only), and ``ROOT/NAME/`` receives
``config.json`` (the run's config plus ``"command"``, ``"commit"``, ``"weights"`` and, with
``--evaluate``, ``"held_out"``: the packaged copy's result on held-out episodes, seed 0, of
the run's env settings or ``--eval-env-kwargs``, e.g. full puzzles after a curriculum) and
``policy.pt`` (the policy's state dict). ``ROOT`` defaults to this package's folder.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from trm_rl import pretrained
from trm_rl.agents.loading import agent_kind, load_agent, read_config

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]*")
COMMIT_PATTERN = re.compile(r"[0-9a-f]{7,40}")
EVAL_SEED = 0


def package(
    run_dir: str | Path,
    name: str,
    commit: str,
    command: str | None = None,
    evaluate_episodes: int | None = None,
    root: str | Path | None = None,
    overwrite: bool = False,
    eval_env_kwargs: dict[str, Any] | None = None,
) -> Path:
    """Write ``root/name/`` (``config.json`` + ``policy.pt``) from the agent in ``run_dir``.

    Args:
        run_dir: an agent directory (see the module docstring).
        name: the pretrained name: lowercase letters, digits and hyphens, e.g. ``maze-7x7``.
        commit: the git commit (7 to 40 hex digits) of the code that trained it.
        command: the command that trained it; defaults to ``config.json``'s ``"command"``.
        evaluate_episodes: evaluate the packaged copy on this many held-out episodes
            (seed 0) and record the result; RL agents only.
        root: where pretrained folders live (default: :data:`trm_rl.pretrained.ROOT`).
        overwrite: replace an existing ``root/name``.
        eval_env_kwargs: ``gym.make`` keyword arguments of the evaluation (default: the
            run's ``env_kwargs``); recorded with the result.

    Returns:
        The written folder.

    Raises:
        ValueError: a bad name or commit, no command, or ``evaluate_episodes`` for a
            controller, or ``eval_env_kwargs`` without ``evaluate_episodes``.
        FileExistsError: ``root/name`` exists and ``overwrite`` is False.
    """
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"name must be lowercase letters, digits and hyphens, got {name!r}")
    if not isinstance(commit, str) or not COMMIT_PATTERN.fullmatch(commit):
        raise ValueError(f"commit must be 7 to 40 lowercase hex digits, got {commit!r}")
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    kind = agent_kind(config, run_dir / pretrained.CONFIG_FILE)
    command = command or config.get("command")
    if not command:
        raise ValueError(f"{run_dir / pretrained.CONFIG_FILE} has no 'command': pass --command")
    if evaluate_episodes is not None and kind == "control":
        raise ValueError("--evaluate applies to RL agents; use `trm-rl control analyze`")
    if eval_env_kwargs is not None and evaluate_episodes is None:
        raise ValueError("eval_env_kwargs (--eval-env-kwargs) needs evaluate_episodes (--evaluate)")
    target = Path(root if root is not None else pretrained.ROOT) / name
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass --overwrite to replace it")

    agent = load_agent(run_dir, device="cpu")
    module = agent.model if kind == "control" else agent.policy
    state_dict = {key: value.detach().cpu() for key, value in module.state_dict().items()}
    record: dict[str, Any] = {
        **config,
        "command": command,
        "commit": commit,
        "weights": pretrained.WEIGHTS_FILE,
    }
    staging = target.with_name(f".{name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    torch.save(state_dict, staging / pretrained.WEIGHTS_FILE)
    _write_config(staging, record)
    if evaluate_episodes is not None:
        from trm_rl.agents.evaluation import evaluate

        env_kwargs = eval_env_kwargs
        if env_kwargs is None:
            env_kwargs = config.get("env_kwargs") or {}
        result = evaluate(
            load_agent(staging, device="cpu"),
            config["env_id"],
            episodes=evaluate_episodes,
            seed=EVAL_SEED,
            env_kwargs=env_kwargs,
        )
        record["held_out"] = {"seed": EVAL_SEED, "env_kwargs": env_kwargs, **result.to_dict()}
        _write_config(staging, record)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return target


def _write_config(directory: Path, record: dict[str, Any]) -> None:
    (directory / pretrained.CONFIG_FILE).write_text(json.dumps(record, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 with one line on bad input)."""
    from trm_rl.cli import USER_ERRORS
    from trm_rl.cli.dataclass_flags import json_object

    parser = argparse.ArgumentParser(
        prog="python -m trm_rl.pretrained.package",
        description="Package an agent directory as pretrained policy NAME "
        "(load_agent('pretrained:NAME')).",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="agent directory")
    parser.add_argument("name", metavar="NAME", help="pretrained name, e.g. maze-7x7")
    parser.add_argument("--commit", required=True, help="git commit that trained it")
    parser.add_argument(
        "--command", default=None, help="command that trained it (default: config.json's)"
    )
    parser.add_argument(
        "--evaluate",
        type=int,
        default=None,
        metavar="EPISODES",
        help="record the packaged copy's success on this many held-out episodes (seed 0)",
    )
    parser.add_argument(
        "--eval-env-kwargs",
        type=json_object,
        default=None,
        metavar="JSON",
        help="gym.make kwargs of the --evaluate episodes (default: the run's)",
    )
    parser.add_argument(
        "--root", default=None, help=f"pretrained folder (default: {pretrained.ROOT})"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing NAME")
    args = parser.parse_args(argv)
    try:
        target = package(
            args.run_dir,
            args.name,
            args.commit,
            args.command,
            args.evaluate,
            args.root,
            args.overwrite,
            args.eval_env_kwargs,
        )
    except USER_ERRORS as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    record = json.loads((target / pretrained.CONFIG_FILE).read_text())
    held_out = record.get("held_out")
    summary = f", held-out success {held_out['success_rate']:.3f}" if held_out else ""
    print(f"wrote {target}{summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
