"""``python -m trm_rl.benchmarks.sudoku9``: the 9x9 agents' pinned runs and their report."""

import json
import re
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from trm_rl.agents.evaluation import evaluation_seed
from trm_rl.benchmarks import long_run, sudoku9

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "sudoku9"
K1_RUN = RESULTS / "outcome-hindsight-k1-hidden-seed0"


@pytest.mark.parametrize("agent", ["trm-k1", "trm-k2", "trm-k3", "mlp"])
def test_the_benchmark_repeats_the_settings_of_the_committed_runs(agent):
    argv = sudoku9.long_run_argv(agent, 0, 500_000, RESULTS)
    wanted = long_run.settings(long_run.parse_args(argv))
    committed = json.loads((sudoku9.run_dir(RESULTS, agent, 0) / "curve.json").read_text())
    assert {**committed["settings"], "timesteps": 500_000} == wanted


def test_agents_differ_only_in_the_network():
    k1, k6 = (
        long_run.settings(long_run.parse_args(sudoku9.long_run_argv(agent, 0, 10, Path("r"))))
        for agent in ("trm-k1", "trm-k6")
    )
    assert k6["trm_kwargs"]["h_cycles"] == 6
    assert {**k1, "trm_kwargs": None} == {**k6, "trm_kwargs": None}
    resumed = sudoku9.long_run_argv("trm-k6", 1, 10, Path("r"), resume=True)
    assert resumed[-1] == "--resume" and "outcome-hindsight-k6-hidden-seed1" in resumed[-2]


def copy_k1_run(root: Path, seed: int) -> Path:
    """The committed K=1 run's curve and best checkpoint as ``seed``'s run under ``root``."""
    target = sudoku9.run_dir(root, "trm-k1", seed)
    shutil.copytree(K1_RUN / "best", target / "best")
    shutil.copy(K1_RUN / "curve.json", target / "curve.json")
    return target


def test_report_evaluates_each_best_checkpoint_once_on_every_bucket(tmp_path, capsys, monkeypatch):
    runs = [copy_k1_run(tmp_path, seed) for seed in (0, 1)]
    (tmp_path / "outcome-hindsight-k9-hidden-seed0").mkdir()
    argv = ["--root", str(tmp_path), "report", "--episodes", "2"]
    assert sudoku9.main(argv) == 0
    table = capsys.readouterr().out
    assert table == (tmp_path / "report.md").read_text()
    first = table.splitlines()[2].split(" | ")
    assert first[:6] == ["| trm-k1", runs[0].name, first[2], "1", "502k", "451k"]
    assert all(re.fullmatch(r"\d+% \[\d+%, \d+%\]", cell.strip(" |")) for cell in first[7:])
    assert "| trm-k1 | mean of 2 seeds |" in table
    k1_curve = json.loads((K1_RUN / "curve.json").read_text())["points"]
    at_300k = next(p for p in k1_curve if p["timesteps"] == 301056)["evals"]["hidden"]
    equal_steps = next(line for line in table.splitlines()[8:] if line.startswith("| trm-k1"))
    assert f"| {at_300k['success_rate']:.0%} [" in equal_steps and equal_steps.endswith("(2) |")
    cached = json.loads((runs[0] / "evals" / "best-450560.json").read_text())
    assert set(cached) == {"naked-seed1", "hidden-seed1", "hard-seed1"}
    assert {result["episodes"] for result in cached.values()} == {2}
    assert cached["hard-seed1"]["env_kwargs"]["difficulty"] == "hard"
    record = json.loads((tmp_path / "report.json").read_text())
    assert record["eval_seed"] == 1
    assert [row["run"] for row in record["rows"]["trm-k1"]] == [run.name for run in runs]

    def no_evaluation(*args, **kwargs):
        raise AssertionError("the cached results should be read")

    monkeypatch.setattr(sudoku9, "evaluate", no_evaluation)
    assert sudoku9.main(argv) == 0


def test_wilson_interval():
    assert sudoku9.wilson(0, 100)[0] == 0.0
    low, high = sudoku9.wilson(50, 100)
    assert low == pytest.approx(0.404, abs=1e-3) and high == pytest.approx(0.596, abs=1e-3)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["report", "--episodes", "0"], "--episodes must be"),
        (["report", "--eval-seed", "-1"], "--eval-seed must be"),
        (["report"], "no benchmark runs with a best checkpoint under"),
        (["diagnose", "pretrained:sudoku-9x9", "--episodes", "0", "--out", "x"], "--episodes"),
        (["compare", "pretrained:sudoku-9x9", "--out", "x"], "at least 2 agents"),
        (["compare", "a", "a", "--out", "x"], "the same agent twice"),
        (["compare", "a", "b", "--seed", "-1", "--out", "x"], "--seed must be"),
    ],
)
def test_bad_report_input_is_one_line(flags, message, tmp_path, capsys):
    assert sudoku9.main(["--root", str(tmp_path), *flags]) == 2
    error = capsys.readouterr().err
    assert error.startswith("sudoku9: error: ") and message in error
    assert error.count("\n") == 1


def test_missing_root_and_unknown_agent_are_refused(tmp_path, capsys):
    assert sudoku9.main(["--root", str(tmp_path / "none"), "report"]) == 2
    assert "is not a directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        sudoku9.main(["train", "--agent", "trm-k4", "--timesteps", "10"])
    assert stop.value.code == 2


def test_position_kind_names_what_the_rules_force():
    pairs = np.zeros((81, 9), dtype=bool)
    pairs[:, [0, 1]] = True
    assert sudoku9.position_kind(pairs.reshape(-1)) == "none"
    hidden = pairs.copy()
    hidden[0] = False
    hidden[0, [0, 2]] = True
    assert sudoku9.position_kind(hidden.reshape(-1)) == "hidden"
    naked = hidden.copy()
    naked[40, 1] = False
    assert sudoku9.position_kind(naked.reshape(-1)) == "naked"


def test_diagnose_counts_every_position_and_episode(tmp_path, capsys):
    out = tmp_path / "diagnosis.json"
    argv = ["diagnose", str(K1_RUN / "best"), "--bucket", "hidden", "--episodes", "3"]
    assert sudoku9.main([*argv, "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    kinds = record["kinds"]
    assert set(kinds) == {"naked", "hidden", "none"}
    failures = sum(row["failures"] for row in kinds.values())
    assert failures == round(3 * (1 - record["success_rate"]))
    positions = sum(row["positions"] for row in kinds.values())
    right = sum(row["right"] for row in kinds.values())
    assert positions == right + failures and kinds["naked"]["positions"] > 0
    assert all(row["singles"] <= row["positions"] for row in kinds.values())
    assert "| naked |" in capsys.readouterr().out
    assert sudoku9.main([*argv, "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err


def test_diagnose_plays_through_symmetry_views(tmp_path, capsys):
    out = tmp_path / "diagnosis.json"
    argv = ["diagnose", "pretrained:sudoku-9x9", "--bucket", "naked", "--episodes", "2"]
    assert sudoku9.main([*argv, "--symmetry-views", "2", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["agent"] == "pretrained:sudoku-9x9 (2 views)"
    assert record["symmetry_views"] == 2
    assert sum(row["positions"] for row in record["kinds"].values()) > 0
    capsys.readouterr()
    other = tmp_path / "other.json"
    assert sudoku9.main([*argv, "--symmetry-views", "0", "--out", str(other)]) == 2
    assert "--symmetry-views must be >= 1" in capsys.readouterr().err
    assert not other.exists()


def test_compare_plays_the_same_puzzles_with_every_agent(tmp_path, capsys):
    out = tmp_path / "comparison.json"
    agents = [str(K1_RUN / "best"), "pretrained:sudoku-9x9"]
    argv = ["compare", *agents, "--bucket", "naked", "--episodes", "4", "--out", str(out)]
    assert sudoku9.main(argv) == 0
    record = json.loads(out.read_text())
    solved = {agent: record["agents"][agent]["per_puzzle"] for agent in agents}
    assert all(len(per_puzzle) == 4 for per_puzzle in solved.values())
    for agent in agents:
        assert record["agents"][agent]["success"] == solved[agent].count("1") / 4
    (pair,) = record["pairs"]
    first_only = sum(a == "1" and b == "0" for a, b in zip(*solved.values(), strict=True))
    assert pair["first_only"] == first_only
    failed_by_all = sum(a == b == "0" for a, b in zip(*solved.values(), strict=True))
    assert record["failed_by_all"] == failed_by_all
    assert record["hidden_only_positions"] == [0, 0, 0, 0]  # naked puzzles
    assert record["fewest_singles"] == [0, 0, 0, 0]
    printed = capsys.readouterr().out
    assert "| first | second |" in printed and "| 0 | 4 |" in printed
    assert sudoku9.main(argv) == 2
    assert "exists" in capsys.readouterr().err


def test_hidden_puzzles_have_hidden_only_positions_on_a_naked_first_solve():
    env = gym.make(sudoku9.ENV_ID, **sudoku9.BUCKETS["hidden"])
    for episode in range(3):
        hidden_only, fewest = sudoku9.singles_path(env, evaluation_seed(5, episode))
        assert hidden_only >= 1 and 1 <= fewest <= hidden_only * 81
    naked = gym.make(sudoku9.ENV_ID, **sudoku9.BUCKETS["naked"])
    assert sudoku9.singles_path(naked, evaluation_seed(5, 0)) == (0, 0)


def test_compare_plays_one_agent_alone_and_through_symmetry_views(tmp_path, capsys):
    out = tmp_path / "views.json"
    argv = ["compare", "pretrained:sudoku-9x9", "pretrained:sudoku-9x9", "--episodes", "3"]
    assert sudoku9.main([*argv, "--symmetry-views", "1", "2", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    labels = ["pretrained:sudoku-9x9", "pretrained:sudoku-9x9 (2 views)"]
    assert list(record["agents"]) == labels
    (pair,) = record["pairs"]
    assert [pair["first"], pair["second"]] == labels
    capsys.readouterr()
    for views, message in ((["1", "1"], "same agent twice"), (["2"], "one count per agent")):
        other = tmp_path / f"other-{len(views)}.json"
        assert sudoku9.main([*argv, "--symmetry-views", *views, "--out", str(other)]) == 2
        assert message in capsys.readouterr().err
        assert not other.exists()
    assert sudoku9.main([*argv, "--symmetry-views", "1", "0", "--out", str(tmp_path / "z")]) == 2
    assert "--symmetry-views must be >= 1" in capsys.readouterr().err
