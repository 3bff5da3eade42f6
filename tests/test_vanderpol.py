"""Van der Pol dynamics (float and torch paths) and TRM-VanDerPol-v0 behaviour."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch

import trm_rl  # noqa: F401  (registers the environments)
from trm_rl.envs import dynamics, vanderpol
from trm_rl.envs.dynamics import rollout, simulate, trajectory_cost
from trm_rl.envs.vanderpol import VanDerPolEnv, max_horizon, state_bound


def play(env: VanDerPolEnv, controls: np.ndarray, **reset_kwargs):
    """Reset, apply every control; return (states [T+1, 2], rewards [T], last info)."""
    obs, _ = env.reset(**reset_kwargs)
    states, rewards, info = [obs[:2]], [], {}
    for u in controls:
        obs, reward, terminated, truncated, info = env.step(np.array([u], np.float32))
        assert not terminated
        states.append(obs[:2])
        rewards.append(reward)
    assert truncated
    return np.array(states), np.array(rewards), info


def test_float_and_torch_paths_agree_in_float64():
    rng = np.random.default_rng(0)
    starts = rng.uniform(-2, 2, (8, 2))
    controls = rng.uniform(-2, 2, (8, 100))
    batched = rollout(torch.tensor(starts), torch.tensor(controls)).numpy()
    for start, sequence, expected in zip(starts, controls, batched, strict=True):
        np.testing.assert_allclose(simulate(start, sequence), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_untracked_rollout_equals_the_tracked_one_exactly(dtype):
    generator = torch.Generator().manual_seed(3)
    states = torch.rand(5, 2, dtype=dtype, generator=generator) * 4 - 2
    controls = (torch.rand(5, 100, dtype=dtype, generator=generator) * 4 - 2).requires_grad_()
    tracked = rollout(states, controls)
    assert tracked.requires_grad
    with torch.no_grad():
        untracked = rollout(states, controls)
    assert not untracked.requires_grad and untracked.dtype == dtype
    assert torch.equal(untracked, tracked.detach())
    strided = rollout(states, controls.detach().t().contiguous().t())
    assert torch.equal(strided, untracked)


def test_env_follows_the_simulator():
    env = VanDerPolEnv()
    controls = np.random.default_rng(1).uniform(-2, 2, 100).astype(np.float32)
    observed, _, _ = play(env, controls, options={"state": [1.5, -0.5]})
    np.testing.assert_allclose(observed, simulate((1.5, -0.5), controls), atol=1e-5)


def test_rollout_and_cost_gradients_match_finite_differences():
    generator = torch.Generator().manual_seed(0)
    states = torch.rand(2, 2, dtype=torch.float64, generator=generator) * 4 - 2
    controls = torch.rand(2, 8, dtype=torch.float64, generator=generator) * 4 - 2
    targets = torch.rand(2, 2, dtype=torch.float64, generator=generator) - 0.5
    for tensor in (states, controls, targets):
        tensor.requires_grad_(True)

    def cost(states, controls, targets):
        return trajectory_cost(rollout(states, controls), controls, targets)

    assert torch.autograd.gradcheck(cost, (states, controls, targets))
    assert torch.autograd.gradcheck(lambda s, u: rollout(s, u), (states, controls))


def test_rollout_keeps_dtype_and_rejects_bad_shapes():
    assert rollout(torch.zeros(3, 2), torch.zeros(3, 5)).shape == (3, 6, 2)
    assert (
        rollout(
            torch.zeros(1, 2, dtype=torch.float64), torch.zeros(1, 4, dtype=torch.float64)
        ).dtype
        == torch.float64
    )
    with pytest.raises(ValueError, match="states"):
        rollout(torch.zeros(3, 3), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="controls"):
        rollout(torch.zeros(3, 2), torch.zeros(2, 5))
    with pytest.raises(ValueError, match="targets"):
        trajectory_cost(torch.zeros(3, 6, 2), torch.zeros(3, 5), torch.zeros(3, 3))


@pytest.mark.parametrize(
    "weights",
    [{}, {"Q": [[4.0, 1.0], [1.0, 2.0]], "R": 0.1, "Q_final": [30.0, 10.0]}],
    ids=["default", "custom"],
)
def test_episode_return_is_minus_the_trajectory_cost(weights):
    start, target = [1.3, -0.7], [0.4, -0.2]
    controls = np.random.default_rng(2).uniform(-2, 2, 100).astype(np.float32)
    _, rewards, _ = play(
        VanDerPolEnv(**weights), controls, options={"state": start, "target": target}
    )
    u = torch.tensor(controls[None], dtype=torch.float64)
    trajectory = rollout(torch.tensor([start], dtype=torch.float64), u)
    expected = trajectory_cost(
        trajectory, u, torch.tensor([target], dtype=torch.float64), **weights
    )
    assert rewards.sum() == pytest.approx(-expected.item(), rel=1e-9)
    assert np.all(rewards[:-1] <= 0)


def test_default_weights_are_the_original_problem():
    trajectory = torch.tensor([[[1.0, 2.0], [0.5, -1.0]]], dtype=torch.float64)
    cost = trajectory_cost(trajectory, torch.tensor([[2.0]], dtype=torch.float64))
    assert cost.item() == pytest.approx(10 * 1 + 5 * 4 + 0.5 * 4 + 20 * (10 * 0.25 + 5 * 1))


def test_success_only_on_the_final_step():
    env = VanDerPolEnv()
    env.reset(options={"state": [0.0, 0.0]})
    for _ in range(99):
        assert "is_success" not in env.step(np.zeros(1, np.float32))[4]
    *_, truncated, info = env.step(np.zeros(1, np.float32))
    assert truncated and info["is_success"] and info["final_distance"] == 0.0

    _, _, info = play(env, np.zeros(100), options={"state": [2.0, 0.0]})
    assert not info["is_success"] and info["final_distance"] > 1.0
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(1, np.float32))


def test_success_tolerance_is_respected():
    _, _, info = play(VanDerPolEnv(success_tolerance=10.0), np.zeros(100), seed=0)
    assert info["is_success"]


def test_uncontrolled_trajectory_settles_on_the_limit_cycle():
    trajectory = simulate((2.0, 0.0), np.zeros(2000))
    late = trajectory[1000:]
    assert np.abs(late[:, 0]).max() == pytest.approx(2.009, abs=0.01)
    assert np.abs(late[:, 1]).max() == pytest.approx(2.67, abs=0.02)


def test_seeding_and_random_targets():
    env = VanDerPolEnv(target_range=0.5)
    first, _ = env.reset(seed=7)
    again, _ = env.reset(seed=7)
    np.testing.assert_array_equal(first, again)
    observations = np.array([env.reset()[0] for _ in range(200)])
    assert np.all(np.abs(observations[:, :2]) <= 2) and np.abs(observations[:, :2]).max() > 1.9
    assert np.all(np.abs(observations[:, 2:4]) <= 0.5) and np.abs(observations[:, 2:4]).max() > 0.4
    np.testing.assert_allclose(observations[:, 4], 5.0)
    assert np.all(VanDerPolEnv().reset(seed=0)[0][2:4] == 0.0)


def test_reset_options_set_state_and_target():
    obs, _ = VanDerPolEnv().reset(options={"state": [3.5, -1.0], "target": np.array([0.5, 0.0])})
    np.testing.assert_allclose(obs, [3.5, -1.0, 0.5, 0.0, 5.0])


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"start": [0, 0]}, ValueError),
        ({"state": [0.0]}, ValueError),
        ({"state": [[0.0, 0.0]]}, ValueError),
        ({"state": [np.nan, 0.0]}, ValueError),
        ({"state": [4.5, 0.0]}, ValueError),
        ({"target": [0.0, -3.5]}, ValueError),
        ({"target": ["a", 0.0]}, TypeError),
        ([0.0, 0.0], TypeError),
    ],
)
def test_bad_reset_options_raise(options, error):
    with pytest.raises(error, match="options"):
        VanDerPolEnv().reset(options=options)


@pytest.mark.parametrize(
    "action",
    [
        np.array([2.01], np.float32),
        np.array([np.nan]),
        np.array([-np.inf]),
        np.zeros(2),
        np.zeros((1, 1)),
        0.5,
    ],
)
def test_bad_actions_raise_and_are_not_clipped(action):
    env = VanDerPolEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(action)


def test_bound_actions_are_accepted():
    env = VanDerPolEnv()
    env.reset(seed=0)
    env.step(np.array([2.0], np.float32))
    env.step(np.array([-2.0]))
    env.step([1.0])


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"mu": 2.5}, ValueError),
        ({"mu": "1"}, TypeError),
        ({"dt": 0.0}, ValueError),
        ({"mu": 2.0, "dt": 0.1}, ValueError),
        ({"horizon": 0}, ValueError),
        ({"horizon": 10.0}, TypeError),
        ({"Q": [[1.0, 2.0], [2.0, 1.0]]}, ValueError),
        ({"Q": [1.0, 2.0, 3.0]}, ValueError),
        ({"R": -1.0}, ValueError),
        ({"Q_final": [[1.0, 0.5], [0.0, 1.0]]}, ValueError),
        ({"target_range": 3.5}, ValueError),
        ({"success_tolerance": 0.0}, ValueError),
        ({"success_tolerance": float("inf")}, ValueError),
        ({"mu": float("nan")}, ValueError),
        ({"horizon": True}, TypeError),
        ({"render_mode": "human"}, ValueError),
    ],
)
def test_bad_arguments_raise(kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs)).split("_")[0]):
        VanDerPolEnv(**kwargs)


def test_observations_stay_in_the_space_under_bang_bang_control():
    env = VanDerPolEnv()
    for corner in ([4, 4], [4, -4], [-4, 4], [-4, -4]):
        obs, _ = env.reset(options={"state": corner})
        for t in range(100):
            obs, *_ = env.step(np.array([2.0 if (t // 15) % 2 else -2.0], np.float32))
            assert env.observation_space.contains(obs)
            assert abs(obs[0]) < 5 and abs(obs[1]) < 8


def test_horizon_sets_the_episode_length_and_time_feature():
    env = VanDerPolEnv(horizon=10, dt=0.1)
    obs, _ = env.reset(seed=0)
    assert obs[4] == pytest.approx(1.0)
    for t in range(10):
        obs, _, _, truncated, _ = env.step(np.zeros(1, np.float32))
        assert truncated == (t == 9)
    assert obs[4] == 0.0


def test_render_modes():
    env = gym.make("trm_rl:TRM-VanDerPol-v0", render_mode="rgb_array")
    env.reset(seed=0)
    first = env.render()
    for _ in range(30):
        env.step(np.array([1.0], np.float32))
    later = env.render()
    assert first.shape == later.shape == (256, 256, 3) and later.dtype == np.uint8
    assert (later != first).any()

    text = gym.make("trm_rl:TRM-VanDerPol-v0", render_mode="ansi")
    text.reset(options={"state": [1.0, 0.0]})
    text.step(np.array([0.25], np.float32))
    line = text.render()
    assert isinstance(line, str) and "\n" not in line and "u=+0.250" in line
    with pytest.warns(UserWarning, match="render_mode"):
        assert VanDerPolEnv().render() is None


def test_env_steps_on_python_floats(monkeypatch):
    """The env's fast path: ``step`` integrates Python floats, never arrays or tensors (its
    throughput next to CartPole is measured by ``trm_rl.benchmarks.env_throughput``)."""
    seen = []

    def recording_step(x, v, u, dt, mu):
        seen.append(tuple(type(value) for value in (x, v, u)))
        return dynamics.rk4_step(x, v, u, dt, mu)

    monkeypatch.setattr(vanderpol, "rk4_step", recording_step)
    env = VanDerPolEnv(horizon=3)
    env.reset(seed=0)
    for action in (np.zeros(1, np.float32), np.array([1.5]), [-2.0]):
        env.step(action)
    assert seen == [(float, float, float)] * 3


@pytest.mark.parametrize("horizon", [15000, 1734])
def test_horizon_beyond_the_float32_observation_bound_is_refused(horizon):
    with pytest.raises(ValueError, match=r"horizon must be in \[1, 1733\] for mu=1.0, dt=0.05"):
        VanDerPolEnv(horizon=horizon)


def test_longest_horizon_has_finite_observation_bounds():
    env = VanDerPolEnv(horizon=np.int64(1733))
    assert env.horizon == 1733 and type(env.horizon) is int
    assert np.all(np.isfinite(env.observation_space.high))


@pytest.mark.parametrize(("mu", "dt"), [(1.0, 0.05), (2.0, 0.05), (1.0, 0.1), (0.01, 0.1)])
def test_max_horizon_is_the_last_finite_float32_bound(mu, dt):
    longest = max_horizon(mu, dt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert np.isfinite(np.float32(state_bound(mu, longest * dt)))
        assert not np.isfinite(np.float32(state_bound(mu, (longest + 3) * dt)))
    VanDerPolEnv(mu=mu, dt=dt, horizon=longest)


def test_step_and_render_before_reset_raise():
    with pytest.raises(gym.error.ResetNeeded, match="call reset"):
        VanDerPolEnv().step(np.zeros(1, np.float32))
    for render_mode in ("ansi", "rgb_array"):
        with pytest.raises(gym.error.ResetNeeded, match=r"reset\(\) before render"):
            VanDerPolEnv(render_mode=render_mode).render()


def test_step_past_the_horizon_raises():
    env = VanDerPolEnv(horizon=2)
    env.reset(seed=0)
    env.step(np.zeros(1, np.float32))
    assert env.step(np.zeros(1, np.float32))[3]
    with pytest.raises(RuntimeError, match="horizon=2 steps"):
        env.step(np.zeros(1, np.float32))
