"""The benchmark's job list and report."""

import json

import pytest

from trm_rl.benchmarks.jobs import Job, build_jobs, read_jobs, steps_per_s, write_jobs
from trm_rl.benchmarks.report import (
    ROW_FIELDS,
    check_row,
    late_gain,
    markdown_table,
    plot_aggregate,
    plot_learning_curves,
    seconds_to_reach,
    threshold_times,
)

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
    jobs = build_jobs(
        ["trm-k5", "random"], BUDGETS, ["ppo"], [3], 7, 2, {"TRM-Maze-v0": {"n_epochs": 2}}
    )
    write_jobs(jobs, tmp_path / "jobs.json")
    assert read_jobs(tmp_path / "jobs.json") == jobs
    assert isinstance(json.loads((tmp_path / "jobs.json").read_text()), list)
    assert isinstance(jobs[0], Job)


def row(agent, seed, success, algo="ppo", speed=100.0, curve=None):
    return dict(
        agent=agent, env="TRM-Maze-v0", algo=algo, seed=seed, success=success,
        mean_return=5.0 * success, path_ratio=1.1, params=1000, steps_per_s=speed,
        train_seconds=10.0, timesteps=100,
        curve=curve or [[50, success / 2, 5.0], [100, success, 10.0]],
    )  # fmt: skip


def test_markdown_table_reports_iqm_mean_improvement_and_time_to_threshold(tmp_path):
    rows = [row("trm-k3", s, v, speed=50.0) for s, v in enumerate([0.5, 1.0, 0.75, 0.75])]
    rows += [row("mlp", s, 0.25) for s in range(4)]
    rows += [row("solver", 0, 1.0, algo="none", speed=None)]
    table = markdown_table(rows)
    assert "time to 68% |" in table  # 90% of trm-k3's mean, 0.75
    trm_line = next(line for line in table.splitlines() if line.startswith("| trm-k3"))
    # IQM of 0.5, 0.75, 0.75, 1.0 is 0.75; every run beats every MLP run (P = 1).
    assert trm_line.startswith("| trm-k3 | 4 | 75% [") and "| 75% [" in trm_line
    # Curves reach 68% at their last point (10 s) for seeds ending at 0.75 or 1.0, not 0.5;
    # each doubles its success after its point at 50 of 100 steps (median gain 0.375).
    assert trm_line.endswith("| 50 | +38 pts | 10 s (3/4) |")
    mlp_line = next(line for line in table.splitlines() if line.startswith("| mlp"))
    assert "| 25% | 25% | 1.00 [1.00, 1.00] |" in mlp_line
    assert mlp_line.endswith("| not reached (0/4) |")
    # Against the solver's 1.0 only trm-k3's 1.0 ties: 0.5 / 4 pairs.
    assert "| solver | 1 | 100% | 100% | 0.12 [" in table
    solver_line = next(line for line in table.splitlines() if line.startswith("| solver"))
    assert solver_line.endswith("| – | – |")  # a reference: no gain, no time
    paths = plot_learning_curves(rows, tmp_path)
    assert [p.name for p in paths] == ["curve_TRM-Maze-v0_ppo.png"]
    assert paths[0].stat().st_size > 1000
    assert [p.name for p in plot_aggregate(rows, tmp_path)] == ["aggregate_ppo.png"]


def test_time_to_threshold_reads_the_first_curve_point_at_the_level():
    early = row("trm-k3", 0, 1.0, curve=[[50, 0.95, 4.0], [100, 1.0, 9.0]])
    late = row("mlp", 0, 0.9, curve=[[50, 0.2, 1.0], [100, 0.9, 2.0]])
    old_style = row("cnn", 0, 0.9, curve=[[25, 0.1], [50, 0.92], [100, 0.9]])
    level, times = threshold_times({"trm-k3": [early], "mlp": [late], "cnn": [old_style]})
    assert level == pytest.approx(0.9)
    assert times == {"trm-k3": [4.0], "mlp": [2.0], "cnn": [5.0]}  # cnn: 10 s x 50 / 100
    assert seconds_to_reach(late, 0.95) is None


def test_late_gain_compares_the_final_point_with_the_one_at_two_thirds():
    curve = [[100 * i, 0.1 * i, float(i)] for i in range(1, 10)]  # 0.1 ... 0.9 at 900 steps
    assert late_gain(row("trm-k3", 0, 0.9, curve=curve) | {"timesteps": 900}) == pytest.approx(
        0.9 - 0.6
    )
    assert late_gain(row("trm-k3", 0, 0.9, curve=[[100, 0.9, 1.0]])) is None


def test_check_row_names_missing_fields():
    good = row("mlp", 0, 0.5)
    check_row(good)
    assert set(ROW_FIELDS) <= set(good)
    with pytest.raises(ValueError, match="params"):
        check_row({k: v for k, v in good.items() if k != "params"})
    with pytest.raises(ValueError, match="success"):
        check_row({**good, "success": 1.5})


def test_estimated_cost_follows_measured_speed_and_references_cost_little():
    jobs = build_jobs(["random", "mlp", "trm-k1", "trm-k3", "trm-k5"], BUDGETS, ["ppo"], [0], 10)
    costs = {job.agent: job.estimated_seconds for job in jobs if job.env_id == "TRM-Maze-v0"}
    assert costs["trm-k5"] > costs["trm-k3"] > costs["trm-k1"] > costs["mlp"] > costs["random"]
    assert costs["trm-k3"] == pytest.approx(1000 / steps_per_s("TRM-Maze-v0", "trm-k3"))


def test_agents_that_do_not_apply_are_left_out():
    budgets = {"TRM-Maze-v0": 1000, "TRM-VanDerPol-v0": 1000}
    jobs = build_jobs(["cnn", "unshared-k3", "solver"], budgets, ["ppo", "reinforce"], [0], 5)
    names = {(j.agent, j.env_id, j.algo) for j in jobs}
    assert names == {
        ("cnn", "TRM-Maze-v0", "ppo"),
        ("unshared-k3", "TRM-Maze-v0", "ppo"),
        ("unshared-k3", "TRM-VanDerPol-v0", "ppo"),
        ("solver", "TRM-Maze-v0", "none"),
        ("solver", "TRM-VanDerPol-v0", "none"),
    }
    reinforce = build_jobs(["trm-k3"], budgets, ["reinforce"], [0], 5)
    assert [(j.env_id, j.algo) for j in reinforce] == [("TRM-Maze-v0", "reinforce")]


def test_env_algo_kwargs_reach_the_ppo_jobs_of_that_env_only():
    jobs = build_jobs(
        ["trm-k3", "random"], BUDGETS, ["ppo", "reinforce"], [0], 5,
        env_algo_kwargs={"TRM-Maze-v0": {"n_epochs": 2}},
    )  # fmt: skip
    kwargs = {(j.env_id, j.algo, j.agent): j.algo_kwargs for j in jobs}
    assert kwargs[("TRM-Maze-v0", "ppo", "trm-k3")] == {"n_epochs": 2}
    assert kwargs[("TRM-Maze-v0", "reinforce", "trm-k3")] == {}
    assert kwargs[("TRM-Sudoku-v0", "maskable-ppo", "trm-k3")] == {}
    assert kwargs[("TRM-Maze-v0", "none", "random")] == {}
