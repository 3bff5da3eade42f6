"""The benchmark's job list and report."""

import json

import pytest

from trm_rl.benchmarks.jobs import Job, build_jobs, read_jobs, write_jobs
from trm_rl.benchmarks.report import ROW_FIELDS, check_row, markdown_table, plot_learning_curves

BUDGETS = {"TRM-Maze-v0": 1000, "TRM-Sudoku-v0": 2000}


def test_learners_cross_envs_algos_seeds_and_references_once_per_env_seed():
    jobs = build_jobs(["trm-k3", "mlp", "solver"], BUDGETS, ["ppo", "reinforce"], [0, 1], 10)
    learners = [j for j in jobs if j.agent != "solver"]
    references = [j for j in jobs if j.agent == "solver"]
    assert len(learners) == 2 * 2 * 2 * 2
    assert len(references) == 2 * 2
    assert len({j.name for j in jobs}) == len(jobs)
    assert {j.algo for j in learners if j.env_id == "TRM-Sudoku-v0"} == {
        "maskable-ppo",
        "reinforce",
    }
    assert {j.algo for j in learners if j.env_id == "TRM-Maze-v0"} == {"ppo", "reinforce"}
    assert all(j.timesteps == BUDGETS[j.env_id] for j in learners)
    assert all(j.timesteps == 0 and j.algo == "none" for j in references)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(agents=["gpt"]), "agents"),
        (dict(algos=["dqn"]), "algos"),
        (dict(seeds=[]), "seeds"),
    ],
)
def test_bad_job_list_arguments_raise(kwargs, match):
    args = dict(agents=["mlp"], env_budgets=BUDGETS, algos=["ppo"], seeds=[0], eval_episodes=5)
    with pytest.raises(ValueError, match=match):
        build_jobs(**{**args, **kwargs})


def test_job_list_json_round_trip(tmp_path):
    jobs = build_jobs(["trm-k5", "random"], BUDGETS, ["ppo"], [3], 7)
    write_jobs(jobs, tmp_path / "jobs.json")
    assert read_jobs(tmp_path / "jobs.json") == jobs
    assert isinstance(json.loads((tmp_path / "jobs.json").read_text()), list)
    assert isinstance(jobs[0], Job)


def row(agent, seed, success, algo="ppo", speed=100.0):
    return dict(
        agent=agent, env="TRM-Maze-v0", algo=algo, seed=seed, success=success,
        mean_return=5.0 * success, path_ratio=1.1, params=1000, steps_per_s=speed,
        train_seconds=1.0, timesteps=100, curve=[[50, success / 2], [100, success]],
    )  # fmt: skip


def test_markdown_table_reports_mean_interval_iqm_and_speed_ratio(tmp_path):
    rows = [row("trm-k3", s, v, speed=50.0) for s, v in enumerate([0.5, 1.0, 0.75, 0.75])]
    rows += [row("mlp", s, 0.25) for s in range(4)]
    rows += [row("solver", 0, 1.0, algo="none", speed=None)]
    table = markdown_table(rows)
    trm_line = next(line for line in table.splitlines() if line.startswith("| trm-k3"))
    assert "| 4 | 75% [" in trm_line and "| 75% |" in trm_line
    assert "0.50x" in trm_line
    mlp_line = next(line for line in table.splitlines() if line.startswith("| mlp"))
    assert "| 25% |" in mlp_line and "1.00x" in mlp_line
    assert "| solver | 1 | 100% |" in table
    paths = plot_learning_curves(rows, tmp_path)
    assert [p.name for p in paths] == ["curve_TRM-Maze-v0_ppo.png"]
    assert paths[0].stat().st_size > 1000


def test_check_row_names_missing_fields():
    good = row("mlp", 0, 0.5)
    check_row(good)
    assert set(ROW_FIELDS) <= set(good)
    with pytest.raises(ValueError, match="params"):
        check_row({k: v for k, v in good.items() if k != "params"})
    with pytest.raises(ValueError, match="success"):
        check_row({**good, "success": 1.5})


def test_relative_cost_orders_trm_by_cycles_above_mlp_and_references():
    jobs = build_jobs(["random", "mlp", "trm-k3", "trm-k5"], BUDGETS, ["ppo"], [0], 10)
    maze = [job for job in jobs if job.env_id == "TRM-Maze-v0"]
    costs = {job.agent: job.relative_cost for job in maze}
    assert costs["trm-k5"] > costs["trm-k3"] > costs["mlp"] > costs["random"] == 0.0
