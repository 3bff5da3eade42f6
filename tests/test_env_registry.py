"""Contracts every registered ``TRM-*`` environment must meet (the registry is read, so a
newly registered id is tested automatically)."""

import pickle
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import trm_rl  # noqa: F401  (registers the ids)

TRM_IDS = sorted(env_id for env_id in gym.registry if env_id.startswith("TRM-"))


def sample_action(env: gym.Env) -> np.ndarray | int:
    """A valid action: from the action mask when the env has one."""
    if hasattr(env.unwrapped, "action_masks"):
        valid = np.flatnonzero(env.unwrapped.action_masks())
        return int(env.unwrapped.np_random.choice(valid))
    return env.action_space.sample()


def rollout(env: gym.Env, seed: int, steps: int = 30) -> list:
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    trace = [np.asarray(obs).copy()]
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(sample_action(env))
        trace.append((np.asarray(obs).copy(), reward, terminated, truncated))
        if terminated or truncated:
            obs, _ = env.reset()
            trace.append(np.asarray(obs).copy())
    return trace


def test_the_registry_has_every_contracted_id():
    assert {"TRM-Maze-v0", "TRM-Sudoku-v0", "TRM-VanDerPol-v0"} <= set(TRM_IDS)


@pytest.mark.parametrize("env_id", TRM_IDS)
def test_gymnasium_check_env(env_id):
    env = gym.make(env_id)
    gym_check_env(env.unwrapped, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("env_id", TRM_IDS)
def test_sb3_check_env(env_id):
    env = gym.make(env_id)
    sb3_check_env(env, warn=False)
    env.close()


@pytest.mark.parametrize("env_id", TRM_IDS)
def test_same_seed_same_trajectory(env_id):
    first, second = rollout(gym.make(env_id), 7), rollout(gym.make(env_id), 7)
    for a, b in zip(first, second, strict=True):
        if isinstance(a, tuple):
            np.testing.assert_array_equal(a[0], b[0])
            assert a[1:] == b[1:]
        else:
            np.testing.assert_array_equal(a, b)
    other = rollout(gym.make(env_id), 8)
    observations = [np.asarray(t[0] if isinstance(t, tuple) else t) for t in first]
    other_observations = [np.asarray(t[0] if isinstance(t, tuple) else t) for t in other]
    assert any(
        a.shape != b.shape or not np.array_equal(a, b)
        for a, b in zip(observations, other_observations, strict=False)
    ), "another seed must give another trajectory"


@pytest.mark.parametrize("env_id", TRM_IDS)
def test_step_types_and_success_flag(env_id):
    env = gym.make(env_id)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    for _ in range(env.spec.max_episode_steps or 200):
        obs, reward, terminated, truncated, info = env.step(sample_action(env))
        assert type(reward) is float
        assert type(terminated) is bool and type(truncated) is bool
        assert env.observation_space.contains(obs)
        if terminated or truncated:
            break
    assert terminated or truncated
    assert type(info["is_success"]) is bool


@pytest.mark.parametrize("env_id", TRM_IDS)
def test_pickle_round_trip_continues_identically(env_id):
    env = gym.make(env_id)
    env.reset(seed=3)
    clone = pickle.loads(pickle.dumps(env))
    action = sample_action(env)
    a, b = env.step(action), clone.step(action)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1:4] == b[1:4]


@pytest.mark.parametrize("env_id", TRM_IDS)
def test_render_modes(env_id):
    text_env = gym.make(env_id, render_mode="ansi")
    text_env.reset(seed=0)
    text = text_env.render()
    assert isinstance(text, str) and text.strip()
    image_env = gym.make(env_id, render_mode="rgb_array")
    image_env.reset(seed=0)
    image = image_env.render()
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert image.shape[0] >= 32 and image.shape[1] >= 32
    assert image.std() > 0, "the picture must not be blank"


@pytest.mark.parametrize("env_id", TRM_IDS)
def test_unknown_reset_option_raises(env_id):
    env = gym.make(env_id)
    with pytest.raises(ValueError, match="no_such_option"):
        env.reset(seed=0, options={"no_such_option": 1})


@pytest.mark.parametrize("env_id", TRM_IDS)
def test_out_of_space_action_raises(env_id):
    env = gym.make(env_id)
    env.reset(seed=0)
    space = env.action_space
    if isinstance(space, gym.spaces.Discrete):
        bad = space.start + space.n
    else:
        bad = np.full(space.shape, space.high.max() + 1.0, dtype=space.dtype)
    with pytest.raises(ValueError, match="action"):
        env.step(bad)


def test_make_with_module_prefix_in_a_fresh_interpreter():
    code = 'import gymnasium as gym; env = gym.make("trm_rl:TRM-Maze-v0"); env.reset(seed=0)'
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
