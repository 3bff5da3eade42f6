"""benchmarks/sudoku9_probe.py: the singles of a position, and a tiny probe run."""

import json

import numpy as np
import pytest
import torch

from trm_rl.agents.sb3.training import TrainConfig, train
from trm_rl.benchmarks import sudoku9_probe
from trm_rl.envs.sudoku9 import Sudoku9Env


def parse(text: str) -> np.ndarray:
    return np.array([int(ch) for ch in text], dtype=np.int64)


# Wikipedia's example (naked singles solve it) and Project Euler 96 grid 02 (they do not).
WIKIPEDIA = parse(
    "530070000600195000098000060800060003400803001700020006060000280000419005000080079"
)
EULER_02 = parse(
    "200080300060070084030500209000105408000000000402706000301007040720040060004010003"
)


def reference_singles(grid: np.ndarray) -> tuple[set, set]:
    """(naked, hidden) singles as sets of (cell, digit), by plain set logic."""
    rows = [set(grid[9 * r : 9 * r + 9]) for r in range(9)]
    cols = [set(grid[c::9]) for c in range(9)]
    boxes = [
        {grid[9 * (3 * (b // 3) + i) + 3 * (b % 3) + j] for i in range(3) for j in range(3)}
        for b in range(9)
    ]
    candidates = {
        cell: set(range(1, 10))
        - rows[cell // 9]
        - cols[cell % 9]
        - boxes[cell // 27 * 3 + cell % 9 // 3]
        for cell in range(81)
        if grid[cell] == 0
    }
    naked = {(cell, next(iter(c))) for cell, c in candidates.items() if len(c) == 1}
    units = [[9 * r + c for c in range(9)] for r in range(9)]
    units += [[9 * r + c for r in range(9)] for c in range(9)]
    units += [
        [9 * (3 * (b // 3) + i) + 3 * (b % 3) + j for i in range(3) for j in range(3)]
        for b in range(9)
    ]
    hidden = set()
    for unit in units:
        for digit in range(1, 10):
            places = [cell for cell in unit if digit in candidates.get(cell, ())]
            if len(places) == 1:
                hidden.add((places[0], digit))
    return naked, hidden


def test_singles_are_the_naked_and_hidden_singles():
    env = Sudoku9Env()
    for grid in (WIKIPEDIA, EULER_02):
        _, info = env.reset(options={"puzzle": grid})
        found = sudoku9_probe.singles(info["action_mask"])
        naked, hidden = reference_singles(grid)
        expected = {9 * cell + digit - 1 for cell, digit in naked | hidden}
        assert set(np.flatnonzero(found).tolist()) == expected
    naked, hidden = reference_singles(EULER_02)
    assert naked and hidden - naked  # both kinds occur, so both are checked


def test_a_tiny_probe_writes_its_curve(tmp_path):
    out = tmp_path / "probe.json"
    argv = ["--steps", "2", "--eval-every", "1", "--batch", "4", "--eval-positions", "4"]
    assert sudoku9_probe.main([*argv, "--trm-kwargs", '{"hidden_dim": 8}', "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert [p["step"] for p in record["curve"]] == [0, 1, 2]
    assert record["curve"][0]["loss"] is None
    assert 0.0 <= record["curve"][-1]["greedy_single_rate"] <= 1.0
    assert record["meta"]["trm"]["hidden_dim"] == 8


@pytest.fixture(scope="module")
def candidates_agent(tmp_path_factory):
    """A tiny factored-action 9x9 agent trained for 32 steps on candidate observations."""
    out = tmp_path_factory.mktemp("agents") / "sudoku9"
    config = TrainConfig(
        "TRM-Sudoku-9x9-v0",
        algo="maskable-ppo",
        timesteps=32,
        n_envs=1,
        env_kwargs={"observation": "candidates"},
        policy_kwargs={"hidden_dim": 8, "h_cycles": 1, "factored_actions": True},
        algo_kwargs={"n_steps": 32, "batch_size": 32, "n_epochs": 1},
    )
    train(config, out=out, tensorboard=None)
    return out


def test_an_agent_is_scored_on_held_out_starts(candidates_agent, tmp_path, capsys):
    out = tmp_path / "scores.json"
    argv = ["--agent", str(candidates_agent), "--eval-positions", "4", "--out", str(out)]
    assert sudoku9_probe.main(argv) == 0
    record = json.loads(out.read_text())
    assert record["meta"]["observation"] == "candidates"
    scores = record["scores"]
    assert 0.0 <= scores["greedy_single_rate"] <= 1.0 and 0.0 < scores["single_mass"] < 1.0
    assert 1 / 9 <= scores["guess_certainty"] <= 1.0
    assert "greedy action a single" in capsys.readouterr().out


def test_an_agents_observation_cannot_be_changed(candidates_agent, tmp_path):
    argv = ["--agent", str(candidates_agent), "--observation", "digits"]
    with pytest.raises(ValueError, match="differs from the agent's"):
        sudoku9_probe.main([*argv, "--out", str(tmp_path / "x.json")])


def test_guess_certainty_reads_only_undecided_cells():
    masks = np.zeros((1, 729), dtype=bool)
    targets = np.zeros((1, 729), dtype=bool)
    probs = torch.zeros(1, 729)
    masks[0, [0, 1]] = True  # cell 0: digits 1-2, undecided
    probs[0, [0, 1]] = torch.tensor([0.3, 0.1])  # 0.75 given the cell
    masks[0, [9, 10, 11]] = True  # cell 1: digits 1-3, undecided
    probs[0, [9, 10, 11]] = torch.tensor([0.05, 0.05, 0.1])  # 0.5 given the cell
    masks[0, [18, 19]] = targets[0, 19] = True  # cell 2: a hidden single, not undecided
    probs[0, [18, 19]] = torch.tensor([0.39, 0.01])
    masks[0, 27] = targets[0, 27] = True  # cell 3: a naked single
    assert sudoku9_probe.guess_certainty(probs, masks, targets) == pytest.approx(0.625)
    targets[0, [0, 9]] = True
    assert np.isnan(sudoku9_probe.guess_certainty(probs, masks, targets))
