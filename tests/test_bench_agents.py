"""The benchmark's learners build with the parameter counts the design claims."""

from dataclasses import replace

import pytest
import torch

from trm_rl.agents.network import parameter_count
from trm_rl.agents.sb3.cnn import GridResNet, grid_image_shape
from trm_rl.agents.sb3.training import make_model
from trm_rl.benchmarks.jobs import LEARNERS
from trm_rl.benchmarks.runner import learner_config


def build(agent: str, env_id: str):
    config = replace(learner_config(agent, env_id, 1000, 0), n_envs=1)
    return make_model(config).policy


@pytest.mark.parametrize("env_id", ["TRM-Maze-v0", "TRM-Sudoku-v0"])
@pytest.mark.slow
def test_learners_build_with_the_claimed_parameter_counts(env_id):
    policies = {agent: build(agent, env_id) for agent in LEARNERS}
    counts = {agent: parameter_count(policy) for agent, policy in policies.items()}
    assert counts["trm-k1"] == counts["trm-k3"] == counts["trm-k5"]
    assert counts["cnn"] >= counts["trm-k3"]
    assert counts["mlp"] >= counts["trm-k3"]
    configs = {a: p.trm_config for a, p in policies.items() if hasattr(p, "trm_config")}
    assert (configs["trm-k1"].h_cycles, configs["trm-k1"].l_cycles) == (1, 1)
    assert (configs["trm-k3"].h_cycles, configs["trm-k5"].h_cycles) == (3, 5)
    assert configs["trm-k3"].shared_weights and not configs["unshared-k3"].shared_weights

    shared, unshared = policies["trm-k3"].network.core, policies["unshared-k3"].network.core
    assert configs["unshared-k3"].applications == configs["trm-k3"].applications
    assert len(unshared.blocks) == unshared.config.applications * len(shared.blocks)
    stacks = {id(p) for p in unshared.blocks.parameters()}
    assert len(stacks) == len(list(unshared.blocks.parameters()))
    block_params = parameter_count(shared.blocks)
    extra = (unshared.config.applications - 1) * block_params
    assert counts["unshared-k3"] == counts["trm-k3"] + extra
    assert isinstance(policies["cnn"].features_extractor, GridResNet)
    assert not hasattr(policies["mlp-sb3"], "trm_config")


def test_unshared_policy_gradients_reach_every_block():
    policy = build("unshared-k3", "TRM-Maze-v0")
    obs = torch.as_tensor(policy.observation_space.sample()[None])
    _, value, log_prob = policy(obs)
    (value.sum() + log_prob.sum()).backward()
    for index, block in enumerate(policy.network.core.blocks):
        grads = [p.grad for p in block.parameters()]
        assert all(g is not None and g.abs().sum() > 0 for g in grads), index


def test_cnn_reads_sudoku_as_a_one_hot_board():
    policy = build("cnn", "TRM-Sudoku-v0")
    extractor = policy.features_extractor
    assert grid_image_shape(policy.observation_space) == (5, 4, 4)
    grid = torch.zeros(1, 16, dtype=torch.long)
    grid[0, 6] = 3  # row 1, column 2
    one_hot = torch.nn.functional.one_hot(grid, 5).float().reshape(1, -1)
    image = extractor.image(one_hot)
    assert image.shape == (1, 5, 4, 4)
    assert image[0, 3, 1, 2] == 1 and image[0, 0, 1, 2] == 0
    assert image[0, 0].sum() == 15


def test_cnn_refuses_a_non_grid_space():
    from gymnasium import spaces

    with pytest.raises(TypeError, match="grid observation space"):
        GridResNet(spaces.Box(-1, 1, (5,)))
