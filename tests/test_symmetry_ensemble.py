"""SymmetryEnsemble: a 9x9 Sudoku agent asked about several images of each board."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from trm_rl.agents.loading import load_agent
from trm_rl.agents.symmetry import SymmetryEnsemble
from trm_rl.cli import main
from trm_rl.envs.sudoku9_puzzles import generate_puzzle

ENV_KWARGS = {"difficulty": "hidden", "max_blanks": None, "observation": "candidates"}


@pytest.fixture(scope="module")
def agent():
    return load_agent("pretrained:sudoku-9x9", device="cpu")


def boards(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Observations ``[count, 18, 9, 9]``, masks ``[count, 729]`` and the puzzles."""
    env = gym.make("TRM-Sudoku-9x9-v0", **ENV_KWARGS)
    rng = np.random.default_rng(seed)
    observations, masks, puzzles = [], [], []
    for _ in range(count):
        puzzle, _ = generate_puzzle(rng, "hidden")
        obs, _ = env.reset(options={"puzzle": puzzle})
        observations.append(obs)
        masks.append(env.unwrapped.action_masks())
        puzzles.append(puzzle)
    return np.stack(observations), np.stack(masks), puzzles


def test_one_view_plays_as_the_agent(agent):
    observations, masks, _ = boards(6)
    alone, _ = agent.predict(observations, deterministic=True, action_masks=masks)
    ensemble, _ = SymmetryEnsemble(agent, views=1).predict(
        observations, deterministic=True, action_masks=masks
    )
    np.testing.assert_array_equal(ensemble, alone)


def test_views_sum_the_agents_log_probabilities_on_the_image_boards(agent):
    observations, masks, puzzles = boards(2, seed=1)
    ensemble = SymmetryEnsemble(agent, views=3, seed=5)
    total = ensemble.log_probabilities(observations, masks)
    env = gym.make("TRM-Sudoku-9x9-v0", **ENV_KWARGS)
    expected = np.zeros_like(total)
    for symmetry in ensemble.symmetries:
        for index, puzzle in enumerate(puzzles):
            image_obs, _ = env.reset(options={"puzzle": symmetry.grid(puzzle).reshape(9, 9)})
            image_masks = env.unwrapped.action_masks()
            obs_tensor, _ = agent.policy.obs_to_tensor(image_obs[None])
            with torch.no_grad():
                log_probs = agent.policy.get_distribution(
                    obs_tensor, action_masks=image_masks[None]
                ).distribution.logits.numpy()
            expected[index] += symmetry.to_original_actions(log_probs)[0]
    legal = masks
    np.testing.assert_allclose(total[legal], expected[legal], rtol=1e-5, atol=1e-4)
    assert np.isneginf(total[~legal]).all()


def test_the_views_differ_and_every_action_is_legal(agent):
    observations, masks, _ = boards(8, seed=2)
    ensemble = SymmetryEnsemble(agent, views=4)
    assert len({symmetry.cells.tobytes() for symmetry in ensemble.symmetries}) == 4
    torch.manual_seed(0)
    for deterministic in (True, False):
        actions, state = ensemble.predict(
            observations, deterministic=deterministic, action_masks=masks
        )
        assert state is None and actions.shape == (8,)
        assert masks[np.arange(8), actions].all()
    single, _ = ensemble.predict(observations[0], deterministic=True, action_masks=masks[0])
    assert np.ndim(single) == 0 and masks[0, single]


def test_the_same_seed_draws_the_same_views(agent):
    first, second = (SymmetryEnsemble(agent, views=3, seed=9) for _ in range(2))
    for a, b in zip(first.symmetries, second.symmetries, strict=True):
        np.testing.assert_array_equal(a.cells, b.cells)
        np.testing.assert_array_equal(a.digits, b.digits)


def test_bad_agents_views_and_calls_raise(agent):
    with pytest.raises(TypeError, match="SB3Agent"):
        SymmetryEnsemble(object(), views=2)
    with pytest.raises(ValueError, match="9x9 Sudoku agent"):
        SymmetryEnsemble(load_agent("pretrained:sudoku-4x4", device="cpu"), views=2)
    with pytest.raises(ValueError, match="views"):
        SymmetryEnsemble(agent, views=0)
    with pytest.raises(ValueError, match="seed"):
        SymmetryEnsemble(agent, views=2, seed=-1)
    observations, masks, _ = boards(1)
    ensemble = SymmetryEnsemble(agent, views=2)
    with pytest.raises(ValueError, match="action_masks"):
        ensemble.predict(observations)
    with pytest.raises(ValueError):
        ensemble.predict(observations, action_masks=masks[:, :100])


def test_evaluate_cli_plays_through_symmetry_views(capsys):
    argv = ["evaluate", "pretrained:sudoku-9x9", "--episodes", "2", "--json"]
    assert main([*argv, "--symmetry-views", "3"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["symmetry_views"] == 3 and result["episodes"] == 2
    assert main([*argv, "--symmetry-views", "0"]) == 2
    assert capsys.readouterr().err.startswith("trm-rl: error: --symmetry-views must be")
    assert main(["evaluate", "pretrained:sudoku-4x4", "--symmetry-views", "2"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("trm-rl: error: symmetry views need a 9x9 Sudoku agent")
    assert error.count("\n") == 1
