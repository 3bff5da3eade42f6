"""The shared observation tokeniser + core + readout."""

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.preprocessing import preprocess_obs

from trm_rl import TRMConfig
from trm_rl.agents.network import ObservationTokenizer, TRMNetwork

CONFIG = dict(hidden_dim=16, n_layers=1, h_cycles=2, l_cycles=2, n_heads=2)

SPACES = {
    "grid": (spaces.Box(0, 1, (3, 5, 5), np.float32), 25, 32),
    "categorical": (spaces.MultiDiscrete([5] * 16), 16, 32),
    "mixed_categorical": (spaces.MultiDiscrete([2, 3, 4]), 3, 32),
    "vector": (spaces.Box(-1, 1, (5,), np.float32), 1, 16),
    "discrete": (spaces.Discrete(7), 1, 16),
}


def batch_of(space: spaces.Space, n: int = 4) -> torch.Tensor:
    space.seed(0)
    obs = torch.as_tensor(np.stack([space.sample() for _ in range(n)]))
    return preprocess_obs(obs, space)


@pytest.mark.parametrize("name", SPACES)
@pytest.mark.parametrize("mixer", ["mlp", "attention", "conv", "peers", "none"])
def test_feature_shapes(name, mixer):
    space, n_tokens, features = SPACES[name]
    grids = {"conv": ("grid", "categorical"), "peers": ("categorical",)}
    if mixer in grids and name not in grids[mixer]:
        with pytest.raises(ValueError, match=mixer):
            TRMNetwork(space, TRMConfig(**CONFIG, mixer=mixer))
        return
    net = TRMNetwork(space, TRMConfig(**CONFIG, mixer=mixer))
    assert net.tokenizer.n_tokens == n_tokens
    obs = batch_of(space)
    assert net(obs).shape == (4, features)
    assert net(obs, all_cycles=True).shape == (2, 4, features)
    torch.testing.assert_close(net(obs, all_cycles=True)[-1], net(obs))


def test_per_feature_tokens():
    space = spaces.Box(-1, 1, (5,), np.float32)
    net = TRMNetwork(space, TRMConfig(**CONFIG, mixer="attention"), vector_tokens="per_feature")
    assert net.tokenizer.n_tokens == 5
    assert net(batch_of(space)).shape == (4, 32)


def test_grid_tokens_are_cells_in_row_major_order():
    space = spaces.Box(0, 1, (3, 2, 2), np.float32)
    tokenizer = ObservationTokenizer(space, 4)
    obs = torch.zeros(1, 3, 2, 2)
    obs[0, 1, 1, 0] = 1.0
    tokens = tokenizer(obs) - tokenizer.position
    changed = tokens.abs().sum(-1)[0] > 0
    assert changed.tolist() == [False, False, True, False]
    assert tokenizer.grid_shape == (2, 2)


def test_categorical_tokens_embed_each_value():
    space = spaces.MultiDiscrete([5] * 4)
    tokenizer = ObservationTokenizer(space, 8)
    obs = preprocess_obs(torch.tensor([[0, 1, 4, 1]]), space)
    tokens = tokenizer(obs) - tokenizer.position
    torch.testing.assert_close(tokens[0, 1], tokens[0, 3])
    assert not torch.allclose(tokens[0, 0], tokens[0, 1])


def test_readout_attention_learns_from_input_tokens():
    space = spaces.Box(0, 1, (3, 3, 3), np.float32)
    net = TRMNetwork(space, TRMConfig(**CONFIG))
    net(batch_of(space)).sum().backward()
    assert net.readout.score.weight.grad.abs().sum() > 0
    assert net.tokenizer.value.weight.grad.abs().sum() > 0


def test_focus_channel_reads_the_marked_cell():
    space = spaces.Box(0, 1, (3, 3, 3), np.float32)
    net = TRMNetwork(space, TRMConfig(**CONFIG, mixer="conv"), focus_channel=1)
    obs = torch.zeros(2, 3, 3, 3)
    obs[0, 1, 0, 2] = 1.0
    _, out = net.recurse(obs)
    features = net(obs)
    torch.testing.assert_close(features[0, 16:], out.states[-1][0, 2])
    torch.testing.assert_close(features[1, 16:], out.states[-1][1].mean(0))
    with pytest.raises(ValueError, match="focus_channel"):
        TRMNetwork(space, TRMConfig(**CONFIG), focus_channel=3)
    with pytest.raises(ValueError, match="focus_channel"):
        TRMNetwork(spaces.MultiDiscrete([5] * 4), TRMConfig(**CONFIG), focus_channel=0)


def test_unsupported_space_raises():
    with pytest.raises(TypeError, match="observation_space"):
        TRMNetwork(spaces.Dict({"a": spaces.Discrete(2)}), TRMConfig(**CONFIG))
    with pytest.raises(ValueError, match="vector_tokens"):
        ObservationTokenizer(spaces.Discrete(2), 4, vector_tokens="many")
