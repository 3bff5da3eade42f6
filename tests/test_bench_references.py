"""The benchmark's floor and ceiling agents."""

import pytest

from trm_rl.benchmarks.jobs import build_jobs
from trm_rl.benchmarks.runner import run_job


@pytest.mark.parametrize("env_id", ["TRM-Maze-7x7-v0", "TRM-Sudoku-v0"])
def test_solver_always_succeeds_and_random_does_not(env_id):
    jobs = build_jobs(["random", "solver"], {env_id: 0}, ["ppo"], [0], eval_episodes=40)
    rows = {job.agent: run_job(job) for job in jobs}
    assert rows["solver"]["success"] == 1.0
    assert rows["random"]["success"] < 0.9
    if "Maze" in env_id:
        assert rows["solver"]["path_ratio"] == 1.0
    assert rows["solver"]["mean_return"] > rows["random"]["mean_return"]
