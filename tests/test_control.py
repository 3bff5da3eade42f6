"""Supervised recursive control: teachers, model, controller, trainer, analysis, CLI."""

import importlib.util
import json
import sys

import numpy as np
import pytest
import torch

from trm_rl.agents.control.analysis import plot_refinement, refinement_metrics
from trm_rl.agents.control.controller import RecursiveController
from trm_rl.agents.control.data import (
    ControlDataset,
    generate_dataset,
    lqr_controls,
    lqr_gains,
    optimal_controls,
    problem_costs,
)
from trm_rl.agents.control.model import ControlModelConfig, RecursiveControlModel
from trm_rl.agents.control.train import ControlTrainConfig, evaluate, train
from trm_rl.cli import main
from trm_rl.envs.dynamics import rollout, trajectory_cost

TINY = {"hidden_dim": 16, "n_layers": 1, "iterations": 2, "l_cycles": 1}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """Small LQR-teacher train and validation sets (fast to solve)."""
    folder = tmp_path_factory.mktemp("control")
    train_path = generate_dataset(96, "lqr", seed=0, progress=False).save(folder / "train.npz")
    val_path = generate_dataset(32, "lqr", seed=1, progress=False).save(folder / "val.npz")
    return train_path, val_path


def test_simulated_cost_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    states = torch.tensor(rng.uniform(-2, 2, (3, 2)))
    controls = torch.tensor(rng.uniform(-1, 1, (3, 100)), requires_grad=True)
    direction = torch.tensor(rng.normal(size=(3, 100)))

    def cost(u):
        return trajectory_cost(rollout(states, u), u).sum()

    cost(controls).backward()
    epsilon = 1e-6
    with torch.no_grad():
        numeric = (cost(controls + epsilon * direction) - cost(controls - epsilon * direction)) / (
            2 * epsilon
        )
    analytic = (controls.grad * direction).sum()
    assert analytic.item() == pytest.approx(numeric.item(), rel=1e-6)


def test_lqr_gains_match_the_closed_form_least_squares_solution():
    rng = np.random.default_rng(1)
    A = np.eye(2) + 0.1 * rng.normal(size=(2, 2))
    B = rng.normal(size=(2, 1))
    Q, R, Q_final, horizon = np.diag([2.0, 1.0]), np.array([[0.3]]), np.diag([5.0, 4.0]), 12
    gains = lqr_gains(A, B, Q, R, Q_final, horizon)
    state = np.array([1.0, -0.5])
    s, closed_loop = state, []
    for K in gains:
        u = -K @ s
        closed_loop.append(u[0])
        s = A @ s + B @ u
    # Stack s_t = A^t s_0 + sum_j A^(t-1-j) B u_j and minimise the quadratic in u directly.
    Phi = np.vstack([np.linalg.matrix_power(A, t) for t in range(1, horizon + 1)])
    Gamma = np.zeros((2 * horizon, horizon))
    for t in range(1, horizon + 1):
        for j in range(t):
            Gamma[2 * (t - 1) : 2 * t, j] = (np.linalg.matrix_power(A, t - 1 - j) @ B)[:, 0]
    weights = np.kron(np.eye(horizon), Q)
    weights[-2:, -2:] = Q_final
    hessian = Gamma.T @ weights @ Gamma + R[0, 0] * np.eye(horizon)
    open_loop = -np.linalg.solve(hessian, Gamma.T @ weights @ Phi @ state)
    np.testing.assert_allclose(closed_loop, open_loop, atol=1e-10)


def test_lqr_teacher_is_bounded_and_reaches_the_origin():
    states = np.random.default_rng(2).uniform(-2, 2, (64, 2))
    controls = lqr_controls(states)
    final = rollout(torch.tensor(states), torch.tensor(controls))[:, -1]
    assert controls.shape == (64, 100) and np.abs(controls).max() <= 2.0
    assert final.norm(dim=1).max() < 0.1


def test_optimizer_beats_lqr_where_lqr_is_suboptimal():
    state = np.array([[2.0, -2.0]])
    lqr_cost = problem_costs(state, lqr_controls(state))
    controls = optimal_controls(state, max_iterations=10)
    assert np.abs(controls).max() <= 2.0
    assert problem_costs(state, controls)[0] < 0.97 * lqr_cost[0]


def test_dataset_round_trip_and_determinism(datasets, tmp_path):
    train_path, _ = datasets
    dataset = ControlDataset.load(train_path)
    again = generate_dataset(96, "lqr", seed=0, progress=False)
    np.testing.assert_array_equal(dataset.controls, again.controls)
    assert dataset.teacher == "lqr" and dataset.seed == 0 and len(dataset) == 96
    np.testing.assert_allclose(dataset.costs, dataset.lqr_costs)
    with pytest.raises(ValueError, match="teacher"):
        generate_dataset(4, "mpc")
    np.savez(tmp_path / "other.npz", states=np.zeros((1, 2)))
    with pytest.raises(ValueError, match="missing"):
        ControlDataset.load(tmp_path / "other.npz")


@pytest.mark.parametrize(
    "config",
    [
        ControlModelConfig(**TINY, mode="two_level", safeguard=False),
        ControlModelConfig(**TINY, value_head=True, safeguard=False),
        ControlModelConfig(**TINY, tokens=4, mixer="mlp", safeguard=False),
    ],
    ids=["two_level", "single_latent", "tokens"],
)
def test_plan_shapes_bounds_and_load_round_trip(config, tmp_path):
    torch.manual_seed(0)
    model = RecursiveControlModel(config)
    torch.nn.init.normal_(model.decoder.weight, std=3.0)
    controller = RecursiveController(model)
    states = np.random.default_rng(3).uniform(-2, 2, (5, 2))
    every = controller.plan(states, return_all=True)
    assert every.shape == (3, 5, 100) and every.dtype == np.float32
    assert np.abs(every).max() <= 2.0 and np.abs(every).max() > 1.5
    np.testing.assert_array_equal(controller.plan(states), every[-1])
    loaded = RecursiveController.load(controller.save(tmp_path / "model"))
    np.testing.assert_array_equal(loaded.plan(states, np.zeros((5, 2))), every[-1])
    assert loaded.config == config


def test_safeguard_keeps_the_plan_when_a_refinement_costs_more():
    torch.manual_seed(0)
    guarded = RecursiveControlModel(ControlModelConfig(**{**TINY, "iterations": 4}))
    torch.nn.init.normal_(guarded.decoder.weight, std=1.0)
    unguarded = RecursiveControlModel(
        ControlModelConfig(**{**TINY, "iterations": 4}, safeguard=False)
    )
    unguarded.load_state_dict(guarded.state_dict())
    states = np.random.default_rng(4).uniform(-2, 2, (32, 2))

    def costs(model):
        plans = RecursiveController(model).plan(states, return_all=True)
        return problem_costs(np.tile(states, (5, 1)), plans.reshape(-1, 100)).reshape(5, 32)

    raw, safe = costs(unguarded), costs(guarded)
    assert (raw[1:] > raw[:-1]).any()
    assert (safe[1:] <= safe[:-1] * (1 + 1e-6)).all()
    assert safe[-1].mean() < raw[-1].mean()


@pytest.mark.parametrize(
    ("states", "targets", "error"),
    [
        (np.zeros((3, 3)), None, ValueError),
        (np.zeros((0, 2)), None, ValueError),
        ([[np.nan, 0.0]], None, ValueError),
        (np.zeros((3, 2)), np.zeros((2, 2)), ValueError),
        ([["a", 0.0]], None, TypeError),
    ],
)
def test_plan_rejects_bad_problems(states, targets, error):
    controller = RecursiveController(RecursiveControlModel(ControlModelConfig(**TINY)))
    with pytest.raises(error, match=r"states|targets"):
        controller.plan(states, targets)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"mode": "deep"}, ValueError),
        ({"tokens": 3}, ValueError),
        ({"iterations": -1}, ValueError),
        ({"l_cycles": 1.5}, TypeError),
        ({"value_head": 1}, TypeError),
        ({"hidden_dim": 0}, ValueError),
    ],
)
def test_model_config_validation(kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs))):
        ControlModelConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"objective": "rl"}, ValueError),
        ({"batches": 0}, ValueError),
        ({"learning_rate": 0.0}, ValueError),
        ({"ema_decay": 1.0}, ValueError),
        ({"data": ""}, ValueError),
        ({"warmup_updates": 1.5}, TypeError),
        ({"learning_rate": "1e-3"}, TypeError),
        ({"max_grad_norm": -1.0}, ValueError),
        ({"tensorboard": "yes"}, TypeError),
    ],
)
def test_train_config_validation(kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs))):
        ControlTrainConfig(**{"data": "train.npz", **kwargs})


def test_a_tiny_training_run_reduces_cost(datasets, tmp_path):
    from trm_rl.agents.control.train import Batch

    train_path, val_path = datasets
    val = Batch.from_dataset(ControlDataset.load(val_path))
    torch.manual_seed(0)
    before = evaluate(RecursiveControlModel(ControlModelConfig(**TINY)), val)["gap"]
    config = ControlTrainConfig(
        data=str(train_path),
        val_data=str(val_path),
        out=str(tmp_path / "run"),
        batches=4,
        batch_size=32,
        learning_rate=1e-2,
        warmup_updates=2,
        ema_decay=0.0,
        eval_every=4,
        progress=False,
        tensorboard=False,
    )
    controller = train(ControlModelConfig(**TINY), config)
    after = evaluate(controller.model, val)["gap"]
    assert after < 0.7 * before
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["val"][-1]["gap"] == pytest.approx(after, rel=1e-4)
    assert metrics["parameters"] == sum(p.numel() for p in controller.model.parameters())


def test_refinement_metrics_and_plot(datasets, tmp_path):
    _, val_path = datasets
    dataset = ControlDataset.load(val_path)
    controller = RecursiveController(RecursiveControlModel(ControlModelConfig(**TINY)))
    metrics = refinement_metrics(controller, dataset)
    assert len(metrics["mean_cost"]) == len(metrics["control_mse"]) == 3
    assert len(metrics["mean_improvement"]) == 2 and metrics["problems"] == 32
    assert metrics["lqr_gap"] == pytest.approx(0.0, abs=1e-12)
    # An untrained model (zero decoder) plans u = 0 at every iteration: no refinement.
    assert metrics["monotone_fraction"] == 1.0 and metrics["gap"] > 1.0
    assert plot_refinement(metrics, tmp_path / "plot.png").stat().st_size > 10_000


def test_cli_generate_train_analyze(tmp_path, capsys):
    data = tmp_path / "d.npz"
    assert (
        main(
            [
                "control",
                "generate",
                "--n",
                "16",
                "--teacher",
                "lqr",
                "--out",
                str(data),
                "--no-progress",
            ]
        )
        == 0
    )
    run = tmp_path / "run"
    flags = ["--hidden-dim", "16", "--n-layers", "1", "--iterations", "1", "--l-cycles", "1"]
    args = ["control", "train", "--data", str(data), "--out", str(run), "--batches", "1"]
    assert main([*args, "--batch-size", "8", "--no-progress", "--no-tensorboard", *flags]) == 0
    assert main(["control", "analyze", str(run), "--data", str(data)]) == 0
    assert (run / "analysis" / "refinement.png").is_file()
    assert "success" in capsys.readouterr().out


def test_control_benchmark_without_casadi_names_the_extra(monkeypatch, capsys, tmp_path):
    from trm_rl.benchmarks import control_benchmark

    monkeypatch.setitem(sys.modules, "casadi", None)
    with pytest.raises(SystemExit) as refused:
        control_benchmark.main([str(tmp_path), "--ipopt", "--out", str(tmp_path / "out")])
    assert refused.value.code == 2
    assert 'pip install "trm-rl[ipopt]"' in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_ipopt_reaches_the_lbfgsb_optimum_from_the_lqr_warm_start():
    pytest.importorskip("casadi")
    from trm_rl.benchmarks.control_ipopt import IpoptSolver

    states = np.array([[1.5, -0.5], [-1.0, 1.8]])
    targets = np.array([[0.0, 0.0], [0.5, 0.0]])
    solved = IpoptSolver().solve(states, targets)
    assert solved.converged.all() and (np.abs(solved.controls) <= 2.0).all()
    assert solved.seconds_per_problem > 0 and (solved.iterations > 0).all()
    costs = problem_costs(states, solved.controls, targets)
    optimum = problem_costs(states, optimal_controls(states, targets), targets)
    np.testing.assert_allclose(costs, optimum, rtol=1e-6)
    assert (costs < problem_costs(states, lqr_controls(states, targets), targets)).all()


@pytest.mark.slow
def test_control_benchmark_reports_every_run(datasets, tmp_path):
    from trm_rl.benchmarks import control_benchmark

    train_path, _ = datasets
    config = ControlTrainConfig(
        data=str(train_path),
        out=str(tmp_path / "tiny"),
        batches=1,
        batch_size=8,
        progress=False,
        tensorboard=False,
    )
    train(ControlModelConfig(**TINY), config)
    ipopt = ["--ipopt"] if importlib.util.find_spec("casadi") else []
    batches = ["--plan-batches", "1", "3"]
    result = control_benchmark.main(
        [str(tmp_path / "tiny"), "--n", "4", "--out", str(tmp_path), *batches, *ipopt]
    )
    (row,) = result["controllers"]
    assert row["run"] == "tiny" and row["train_batches"] == 1 and row["speedup_vs_optimizer"] > 0
    assert set(row["plan_seconds_per_problem_by_batch"]) == {1, 3}
    if ipopt:
        assert result["ipopt"]["converged"] == 1.0 and abs(result["ipopt"]["gap"]) < 1e-6
        assert set(row["speedup_vs_ipopt_by_batch"]) == {1, 3}
        assert "vs IPOPT, batch 3" in (tmp_path / "control.md").read_text()
    assert 0.0 <= row["success_rate"] <= 1.0 and len(row["mean_cost_per_iteration"]) == 3
    assert result["lqr"]["success_rate"] == 1.0
    assert "--batches 1" in (tmp_path / "control.md").read_text()
    assert (tmp_path / "control_refinement.png").is_file()
    before = (tmp_path / "control.json").read_bytes()
    with pytest.raises(SystemExit) as refused:
        control_benchmark.main([str(tmp_path / "tiny"), "--n", "4", "--out", str(tmp_path)])
    assert refused.value.code == 2 and (tmp_path / "control.json").read_bytes() == before
    with pytest.raises(SystemExit):
        control_benchmark.main([str(tmp_path / "missing"), "--out", str(tmp_path / "new")])
    assert not (tmp_path / "new").exists()
