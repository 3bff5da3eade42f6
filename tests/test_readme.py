"""The README's examples keep working."""

import importlib
import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import PPO

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_block_after(heading: str) -> str:
    """The first ```python block after ``heading`` in the README."""
    text = README.read_text()
    start = text.index(heading)
    return re.search(r"```python\n(.*?)```", text[start:], re.S).group(1)


@pytest.mark.slow
def test_the_own_env_example_trains_a_trm_policy():
    code = _python_block_after("## Use TRMPolicy on your own env")
    assert "model.learn(5_000)" in code
    namespace: dict = {}
    exec(code.replace("model.learn(5_000)", "model.learn(1)"), namespace)
    model, env = namespace["model"], namespace["env"]
    assert type(model.policy).__name__ == "TRMPolicy"
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs)
    assert env.action_space.contains(int(action))


def test_rl_zoo_builds_the_policy_from_its_dotted_name():
    # RL Zoo's get_class_by_name: import the module part, take the attribute.
    name = "trm_rl.TRMPolicy"
    module, attribute = name.rsplit(".", 1)
    policy_class = getattr(importlib.import_module(module), attribute)
    model = PPO(
        policy_class,
        gym.make("TRM-Maze-v0"),
        n_steps=64,
        batch_size=64,
        policy_kwargs={"h_cycles": 3, "mixer": "conv"},
    )
    assert model.policy.trm_config.h_cycles == 3
    assert model.policy.trm_config.mixer == "conv"
    action, _ = model.predict(np.zeros((3, 5, 5), np.float32))
    assert 0 <= int(action) < 4


def test_the_symmetry_views_example_plays_a_9x9_puzzle(capsys):
    code = _python_block_after("### 9x9 Sudoku: several views of each board")
    namespace: dict = {}
    exec(code, namespace)
    assert namespace["agent"].views == 8
    assert namespace["env"].unwrapped.action_masks().shape == (729,)
    assert capsys.readouterr().out.strip() in ("True", "False")
