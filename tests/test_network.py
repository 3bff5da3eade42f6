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


def grid_network(side: int, positions: str) -> TRMNetwork:
    space = spaces.Box(0, 1, (3, side, side), np.float32)
    return TRMNetwork(
        space, TRMConfig(**CONFIG, mixer="conv"), focus_channel=1, positions=positions
    )


def test_position_free_grid_network_has_the_same_parameters_on_every_size():
    small, large = grid_network(9, "none"), grid_network(15, "none")
    shapes = {name: tensor.shape for name, tensor in small.state_dict().items()}
    assert shapes == {name: tensor.shape for name, tensor in large.state_dict().items()}
    assert large.tokenizer.position is None and large.core.grid_shape == (15, 15)
    large.load_state_dict(small.state_dict())
    obs = batch_of(spaces.Box(0, 1, (3, 15, 15), np.float32))
    assert large(obs).shape == (4, 32) and torch.isfinite(large(obs)).all()
    learned = {
        grid_network(side, "learned").state_dict()["tokenizer.position"].shape for side in (9, 15)
    }
    assert learned == {torch.Size([81, 16]), torch.Size([225, 16])}


def test_position_free_core_states_move_with_the_input_on_a_new_size():
    """Without positions the conv core is translation-equivariant away from the border: a
    wall moved one cell right moves every interior cell's state one cell right. (A network
    that reshaped 15x15 tokens with another grid's shape would break this.)"""
    net = grid_network(9, "none")
    large = grid_network(15, "none")
    large.load_state_dict(net.state_dict())
    obs = torch.zeros(2, 3, 15, 15)
    obs[0, 0, 7, 6] = obs[1, 0, 7, 7] = 1.0
    states = large.recurse(obs)[1].states[-1].reshape(2, 15, 15, -1)
    radius = CONFIG["h_cycles"] * (CONFIG["l_cycles"] + 1)
    inner = slice(radius, 15 - radius - 1)
    torch.testing.assert_close(states[0, inner, inner], states[1, inner, radius + 1 : 15 - radius])
    assert not torch.allclose(states[0, inner, inner], states[1, inner, inner])


def test_positions_must_be_known():
    with pytest.raises(ValueError, match="positions"):
        grid_network(5, "sinusoidal")
    tokenizer = ObservationTokenizer(spaces.Box(0, 1, (3, 4, 4), np.float32), 8, positions="none")
    assert tokenizer.position is None
    assert tokenizer(torch.zeros(1, 3, 4, 4)).abs().sum() == 0
