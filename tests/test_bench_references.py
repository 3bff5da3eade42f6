"""The benchmark's floor and ceiling agents."""

import numpy as np
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


@pytest.mark.slow
def test_van_der_pol_solver_plays_the_optimal_plan_open_loop():
    import gymnasium as gym

    from trm_rl.agents.control.data import lqr_controls, optimal_controls, problem_costs
    from trm_rl.agents.evaluation import evaluate, evaluation_seed
    from trm_rl.benchmarks.references import OPTIMIZER_ITERATIONS, VanDerPolOptimal

    agent = VanDerPolOptimal()
    result = evaluate(agent, "TRM-VanDerPol-v0", episodes=3, seed=0)
    env = gym.make("TRM-VanDerPol-v0")
    states = [env.reset(seed=evaluation_seed(0, i))[0][:2] for i in range(3)]
    states = np.asarray(states, dtype=np.float64)
    planned = optimal_controls(states, max_iterations=OPTIMIZER_ITERATIONS)
    assert result.mean_return == pytest.approx(-problem_costs(states, planned).mean(), rel=1e-4)
    assert result.mean_return > -problem_costs(states, lqr_controls(states)).mean()
    assert result.success_rate == 1.0
    assert len(agent.plans) == 100  # one plan step per time step: never replanned
