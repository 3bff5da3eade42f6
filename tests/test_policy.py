"""TRMPolicy and MaskableTRMPolicy as Stable-Baselines3 citizens."""

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gymnasium.envs.registration import registry
from sb3_contrib import MaskablePPO
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.envs import IdentityEnvBox, IdentityEnvMultiDiscrete
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.preprocessing import preprocess_obs

import trm_rl
from trm_rl import MaskableTRMPolicy, TRMPolicy
from trm_rl.agents.network import parameter_count
from trm_rl.agents.sb3.callbacks import TRMDiagnosticsCallback, cycle_statistics
from trm_rl.agents.sb3.policy import resolve_mixer
from trm_rl.agents.sb3.token_actions import FactoredTokenDistribution

TINY = {"hidden_dim": 8, "h_cycles": 2, "l_cycles": 1}
SMOKE = {"n_steps": 64, "seed": 0}
PPO_SMOKE = {**SMOKE, "batch_size": 64, "n_epochs": 1}
TRM_IDS = sorted(env_id for env_id in registry if env_id.startswith("TRM-"))


def make(env_id: str) -> gym.Env:
    builders = {
        "MultiDiscreteActions": lambda: IdentityEnvMultiDiscrete(dim=3, ep_length=8),
        "BoxActions": lambda: IdentityEnvBox(ep_length=8),
    }
    return builders[env_id]() if env_id in builders else gym.make(env_id)


@pytest.mark.parametrize("algo", [PPO, A2C])
@pytest.mark.parametrize("env_id", [*TRM_IDS, "CartPole-v1", "MultiDiscreteActions", "BoxActions"])
@pytest.mark.slow
def test_learns_on_every_space(algo, env_id):
    kwargs = PPO_SMOKE if algo is PPO else SMOKE
    model = algo(TRMPolicy, make(env_id), policy_kwargs=TINY, **kwargs)
    model.learn(256)
    obs, _ = model.env.envs[0].reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert model.env.action_space.contains(
        action.astype(model.env.action_space.dtype).reshape(model.env.action_space.shape)
    )


def test_registry_is_covered():
    assert {"TRM-Maze-v0", "TRM-Sudoku-v0", "TRM-VanDerPol-v0"} <= set(TRM_IDS)


def sudoku_model(policy_kwargs: dict = TINY) -> MaskablePPO:
    return MaskablePPO(MaskableTRMPolicy, "TRM-Sudoku-v0", policy_kwargs=policy_kwargs, **PPO_SMOKE)


def test_maskable_ppo_on_sudoku_only_picks_allowed_actions():
    model = sudoku_model()
    model.learn(256)
    env = gym.make("TRM-Sudoku-v0")
    for seed in range(5):
        obs, _ = env.reset(seed=seed)
        masks = env.unwrapped.action_masks()
        action, _ = model.predict(obs, action_masks=masks)
        assert masks[int(action)]


def test_token_actions_read_each_cell_with_one_shared_head():
    model = sudoku_model(policy_kwargs={**TINY, "token_actions": True})
    head = model.policy.action_net
    assert parameter_count(head) == TINY["hidden_dim"] * 4 + 4
    obs, _ = model.policy.obs_to_tensor(observations("TRM-Sudoku-v0", 2))
    _, out = model.policy.network.recurse(preprocess_obs(obs, model.policy.observation_space))
    cell_logits = head.linear(out.states[-1])  # [B, 16 cells, 4 digits]
    log_probs = model.policy.get_distribution(obs).distribution.logits  # action 4 * cell + d
    torch.testing.assert_close(log_probs, torch.log_softmax(cell_logits.flatten(1), -1))


FACTORED = {**TINY, "token_actions": True, "factored_actions": True}


def sudoku_masks(n: int) -> np.ndarray:
    env = gym.make("TRM-Sudoku-v0")
    return np.stack([env.reset(seed=seed)[1]["action_mask"] for seed in range(n)])


def test_factored_actions_choose_a_cell_then_a_legal_digit():
    model = sudoku_model(policy_kwargs=FACTORED)
    policy, masks = model.policy, sudoku_masks(4)
    obs, _ = policy.obs_to_tensor(observations("TRM-Sudoku-v0", 4))
    _, out = policy.network.recurse(preprocess_obs(obs, policy.observation_space))
    raw = policy.action_net.linear(out.states[-1])  # [B, 16 cells, 1 + 4 digits]
    cell, digit = raw[..., 0], raw[..., 1:]
    legal = torch.as_tensor(masks).reshape(4, 16, 4)
    p_cell = torch.softmax(cell.masked_fill(~legal.any(-1), float("-inf")), -1)
    p_digit = torch.softmax(digit.masked_fill(~legal, float("-inf")), -1).nan_to_num()
    probs = policy.get_distribution(obs, action_masks=masks).distribution.probs
    torch.testing.assert_close(probs.reshape(4, 16, 4), p_cell[..., None] * p_digit)


def cell_shares(policy_kwargs: dict) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's probability under a head with all-zero weights, and its legal digits."""
    policy = sudoku_model(policy_kwargs=policy_kwargs).policy
    torch.nn.init.zeros_(policy.action_net.linear.weight)
    torch.nn.init.zeros_(policy.action_net.linear.bias)
    masks = sudoku_masks(1)
    obs, _ = policy.obs_to_tensor(observations("TRM-Sudoku-v0", 1))
    probs = policy.get_distribution(obs, action_masks=masks).distribution.probs
    legal = masks.reshape(16, 4).sum(-1)
    return probs.detach().reshape(16, 4).sum(-1).numpy()[legal > 0], legal[legal > 0]


def test_factored_cells_do_not_gain_probability_from_more_legal_digits():
    joint, legal = cell_shares({**TINY, "token_actions": True})
    assert len(set(legal)) > 1  # cells with different numbers of legal digits
    np.testing.assert_allclose(joint, legal / legal.sum(), rtol=1e-5)
    factored, _ = cell_shares(FACTORED)
    np.testing.assert_allclose(factored, np.full(len(legal), 1 / len(legal)), rtol=1e-5)


def test_factored_log_probs_train_the_head_even_for_cells_without_legal_digits():
    model = sudoku_model(policy_kwargs=FACTORED)
    masks = sudoku_masks(3)
    masks[0, :4] = False  # cell 0 has no legal digit
    obs, _ = model.policy.obs_to_tensor(observations("TRM-Sudoku-v0", 3))
    actions = torch.as_tensor(masks.argmax(1))
    _, log_prob, entropy = model.policy.evaluate_actions(obs, actions, action_masks=masks)
    (log_prob.sum() + entropy.sum()).backward()
    grad = model.policy.action_net.linear.weight.grad
    assert torch.isfinite(log_prob).all() and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_factored_policy_saves_and_loads(tmp_path):
    model = sudoku_model(policy_kwargs=FACTORED)
    model.save(tmp_path / "model")
    loaded = MaskablePPO.load(tmp_path / "model", device="cpu")
    assert loaded.policy.factored_actions and isinstance(
        loaded.policy.action_dist, FactoredTokenDistribution
    )
    obs, _ = model.policy.obs_to_tensor(observations("TRM-Sudoku-v0", 2))
    masks = sudoku_masks(2)
    torch.testing.assert_close(
        loaded.policy.get_distribution(obs, action_masks=masks).distribution.probs,
        model.policy.get_distribution(obs, action_masks=masks).distribution.probs,
    )


CONFIDENT = {**FACTORED, "token_selection": "confidence"}


def confident_parts(model, masks):
    """The choice log-probs ``[B, 16, 4]`` under ``masks`` from the head's raw logits."""
    policy = model.policy
    obs, _ = policy.obs_to_tensor(observations("TRM-Sudoku-v0", len(masks)))
    _, out = policy.network.recurse(preprocess_obs(obs, policy.observation_space))
    raw = policy.action_net.linear(out.states[-1])  # [B, 16 cells, 4 digits]: no cell logit
    legal = torch.as_tensor(masks).reshape(len(masks), 16, 4)
    return obs, torch.log_softmax(raw.masked_fill(~legal, float("-inf")), -1), legal


@pytest.mark.parametrize("power", [1.0, 4.0])
def test_confidence_selection_picks_cells_by_their_best_legal_digit(power):
    model = sudoku_model(policy_kwargs={**CONFIDENT, "confidence_power": power})
    masks = sudoku_masks(4)
    obs, choice, legal = confident_parts(model, masks)
    best = choice.amax(-1).masked_fill(~legal.any(-1), float("-inf"))
    expected = torch.softmax(power * best, -1)[..., None] * choice.exp().nan_to_num()
    dist = model.policy.get_distribution(obs, action_masks=masks).distribution
    torch.testing.assert_close(dist.probs.reshape(4, 16, 4), expected)
    greedy = dist.probs.argmax(-1)
    top = (choice.nan_to_num(float("-inf")).flatten(1)).argmax(-1)  # the most certain move
    torch.testing.assert_close(greedy, top)


def test_confidence_selection_trains_only_the_choice_log_prob():
    model = sudoku_model(policy_kwargs=CONFIDENT)
    masks = sudoku_masks(3)
    actions = torch.as_tensor(masks.argmax(1))
    _, log_prob, _ = model.policy.evaluate_actions(
        model.policy.obs_to_tensor(observations("TRM-Sudoku-v0", 3))[0], actions, masks
    )
    log_prob.sum().backward()
    through_policy = model.policy.action_net.linear.weight.grad.clone()
    model.policy.zero_grad()
    _, choice, _ = confident_parts(model, masks)
    choice.flatten(1).gather(1, actions[:, None]).sum().backward()
    torch.testing.assert_close(through_policy, model.policy.action_net.linear.weight.grad)


def test_confidence_policy_saves_and_loads(tmp_path):
    model = sudoku_model(policy_kwargs={**CONFIDENT, "confidence_power": 8.0})
    model.save(tmp_path / "model")
    loaded = MaskablePPO.load(tmp_path / "model", device="cpu")
    assert loaded.policy.token_selection == "confidence"
    assert loaded.policy.confidence_power == 8.0
    obs, _ = model.policy.obs_to_tensor(observations("TRM-Sudoku-v0", 2))
    masks = sudoku_masks(2)
    torch.testing.assert_close(
        loaded.policy.get_distribution(obs, action_masks=masks).distribution.probs,
        model.policy.get_distribution(obs, action_masks=masks).distribution.probs,
    )


def test_maskable_ppo_refuses_the_unmasked_policy():
    with pytest.raises(ValueError, match="MaskableActorCriticPolicy"):
        MaskablePPO(TRMPolicy, "TRM-Sudoku-v0", policy_kwargs=TINY)


def observations(env_id: str, n: int = 6) -> np.ndarray:
    env = gym.make(env_id)
    return np.stack([env.reset(seed=seed)[0] for seed in range(n)])


@pytest.mark.parametrize("env_id", ["TRM-Maze-v0", "TRM-VanDerPol-v0"])
def test_save_load_gives_identical_actions(tmp_path, env_id):
    model = PPO(TRMPolicy, env_id, policy_kwargs={**TINY, "l_cycles": 2}, **PPO_SMOKE)
    model.learn(128)
    model.save(tmp_path / "model")
    loaded = PPO.load(tmp_path / "model", device="cpu")
    batch = observations(env_id)
    np.testing.assert_array_equal(
        model.predict(batch, deterministic=True)[0], loaded.predict(batch, deterministic=True)[0]
    )
    assert loaded.policy.trm_config == model.policy.trm_config


def test_maskable_save_load_gives_identical_actions(tmp_path):
    model = sudoku_model()
    model.save(tmp_path / "model")
    loaded = MaskablePPO.load(tmp_path / "model")
    env = gym.make("TRM-Sudoku-v0")
    obs, _ = env.reset(seed=3)
    masks = env.unwrapped.action_masks()
    assert (
        model.predict(obs, deterministic=True, action_masks=masks)[0]
        == loaded.predict(obs, deterministic=True, action_masks=masks)[0]
    )


def test_policy_alone_saves_and_loads(tmp_path):
    model = PPO(TRMPolicy, "TRM-Maze-v0", policy_kwargs={**TINY, "focus_channel": 1})
    model.policy.save(tmp_path / "policy.pt")
    policy = TRMPolicy.load(tmp_path / "policy.pt")
    batch = observations("TRM-Maze-v0")
    np.testing.assert_array_equal(
        model.policy.predict(batch, deterministic=True)[0],
        policy.predict(batch, deterministic=True)[0],
    )
    assert policy.focus_channel == 1


def reference_features(network, obs: torch.Tensor) -> torch.Tensor:
    """A maze policy's features for one ``[3, n, n]`` observation, computed by hand from the
    network's weights (conv mixer, one cell token per grid cell, pooled at the agent)."""
    side = obs.shape[-1]
    core = network.core

    def f(h: torch.Tensor) -> torch.Tensor:
        for block in core.blocks:
            image = h.T.reshape(1, -1, side, side)
            conv = F.conv2d(image, block.token_mix.weight, padding=1, groups=image.shape[1])
            h = F.rms_norm(h + conv.reshape(h.shape[1], -1).T, (h.shape[1],), eps=1e-5)
            h = F.rms_norm(h + block.channel_mix(h), (h.shape[1],), eps=1e-5)
        return h

    x = network.tokenizer.value(obs.reshape(3, -1).T)
    z_H, z_L = (core.init_states[i].expand_as(x) for i in range(2))
    for _ in range(core.config.h_cycles):
        for _ in range(core.config.l_cycles):
            z_L = f(z_L + z_H + x)
        z_H = f(z_H + z_L)
    agent = obs[1].reshape(-1).argmax()
    return torch.cat([z_H.mean(0), z_H[agent]])


def test_position_free_policy_runs_on_a_larger_maze_with_the_same_weights(tmp_path):
    kwargs = {**TINY, "focus_channel": 1, "positions": "none"}
    model = PPO(TRMPolicy, gym.make("TRM-Maze-v0", size=9), policy_kwargs=kwargs, **PPO_SMOKE)
    model.learn(64)
    model.save(tmp_path / "model")
    loaded = PPO.load(tmp_path / "model", device="cpu")
    assert loaded.policy.positions == "none" and loaded.policy.network.tokenizer.position is None
    large = gym.make("TRM-Maze-v0", size=15, family="perfect")
    policy = TRMPolicy(large.observation_space, large.action_space, lambda _: 0.0, **kwargs)
    policy.load_state_dict(loaded.policy.state_dict())
    batch = np.stack([large.reset(seed=seed)[0] for seed in range(8)])
    actions, _ = policy.predict(batch, deterministic=True)
    with torch.no_grad():
        features = policy.extract_features(policy.obs_to_tensor(batch)[0])
        expected = torch.stack(
            [reference_features(loaded.policy.network, o) for o in torch.tensor(batch)]
        )
        logits = loaded.policy.action_net(expected)
    torch.testing.assert_close(features, expected, atol=1e-5, rtol=1e-5)
    np.testing.assert_array_equal(actions, logits.argmax(-1).numpy())


def test_predict_single_and_batched():
    model = PPO(TRMPolicy, "TRM-Maze-v0", policy_kwargs=TINY)
    batch = observations("TRM-Maze-v0")
    single, _ = model.predict(batch[0], deterministic=True)
    many, _ = model.predict(batch, deterministic=True)
    assert np.shape(single) == () and many.shape == (len(batch),)
    assert single == many[0]


def test_weights_are_shared_across_cycles():
    counts = {
        parameter_count(
            PPO(TRMPolicy, "TRM-Maze-v0", policy_kwargs={"h_cycles": h, "l_cycles": inner}).policy
        )
        for h, inner in [(1, 1), (3, 2), (6, 4)]
    }
    assert len(counts) == 1


def test_policy_kwargs_reach_the_core():
    kwargs = {
        "h_cycles": 4,
        "l_cycles": 1,
        "hidden_dim": 16,
        "n_layers": 2,
        "mixer": "attention",
        "grad_mode": "full",
    }
    model = PPO(TRMPolicy, "TRM-Maze-v0", policy_kwargs=kwargs)
    config = model.policy.network.core.config
    assert {name: getattr(config, name) for name in kwargs} == kwargs


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"h_cycles": 0}, ValueError, "h_cycles"),
        ({"hidden_dim": -1}, ValueError, "hidden_dim"),
        ({"mixer": "lstm"}, ValueError, "mixer"),
        ({"grad_mode": "some"}, ValueError, "grad_mode"),
        ({"focus_channel": 7}, ValueError, "focus_channel"),
        ({"features_extractor_class": None}, TypeError, "features_extractor_class"),
        ({"halting": True}, TypeError, "halting"),
        ({"token_actions": True}, ValueError, "token_actions"),
        ({"factored_actions": True}, ValueError, "factored_actions=True needs token_actions"),
        ({"token_actions": True, "factored_actions": 1}, TypeError, "factored_actions"),
        ({"positions": "sinusoidal"}, ValueError, "positions"),
        ({"token_actions": True, "token_selection": "confidence"}, ValueError, "factored"),
        (
            {"token_actions": True, "factored_actions": True, "token_selection": "best"},
            ValueError,
            "token_selection",
        ),
        ({**CONFIDENT, "confidence_power": 0}, ValueError, r"confidence_power must be in \(0"),
        ({**CONFIDENT, "confidence_power": "8"}, TypeError, "confidence_power"),
        ({**FACTORED, "confidence_power": 2.0}, ValueError, "needs token_selection='confidence'"),
    ],
)
def test_bad_policy_kwargs_raise_naming_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        PPO(TRMPolicy, "TRM-Maze-v0", policy_kwargs=kwargs)


def test_conv_mixer_needs_a_grid():
    with pytest.raises(ValueError, match="conv"):
        PPO(TRMPolicy, "CartPole-v1", policy_kwargs={"mixer": "conv"})


def test_auto_mixer_follows_the_observation_space():
    assert resolve_mixer(gym.make("TRM-Maze-v0").observation_space, "auto", "single") == "conv"
    assert resolve_mixer(gym.make("TRM-Sudoku-v0").observation_space, "auto", "single") == "mlp"
    assert resolve_mixer(gym.make("CartPole-v1").observation_space, "auto", "single") == "none"
    assert resolve_mixer(gym.make("CartPole-v1").observation_space, "auto", "per_feature") == (
        "mlp"
    )


def test_initial_policy_is_near_uniform_and_keeps_the_core_init():
    torch.manual_seed(0)
    model = PPO(TRMPolicy, "TRM-Maze-v0", seed=0)
    obs, _ = model.policy.obs_to_tensor(observations("TRM-Maze-v0"))
    probs = model.policy.get_distribution(obs).distribution.probs
    torch.testing.assert_close(probs, torch.full_like(probs, 0.25), atol=0.02, rtol=0)
    init_states = model.policy.network.core.init_states
    assert init_states.std() > 0.5  # trunc_normal(std=1), not SB3's orthogonal init


def test_same_seed_same_training():
    def trained() -> torch.Tensor:
        model = PPO(TRMPolicy, "TRM-Maze-v0", policy_kwargs=TINY, **PPO_SMOKE)
        model.learn(128)
        return torch.cat([p.detach().flatten() for p in model.policy.parameters()])

    torch.testing.assert_close(trained(), trained(), rtol=0, atol=0)


def test_device_auto_resolves():
    model = PPO(TRMPolicy, "TRM-Maze-v0", policy_kwargs=TINY, device="auto")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert model.policy.device.type == expected


class Collect(KVWriter):
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def write(self, key_values, key_excluded, step=0) -> None:
        self.rows.append(dict(key_values))


def test_diagnostics_reach_the_logger():
    model = PPO(TRMPolicy, "TRM-Maze-v0", policy_kwargs={**TINY, "h_cycles": 3}, **PPO_SMOKE)
    writer = Collect()
    model.set_logger(Logger(folder=None, output_formats=[writer]))
    model.learn(128, callback=TRMDiagnosticsCallback(samples=32))
    logged = writer.rows[-1]
    for cycle in (1, 2, 3):
        assert logged[f"trm/delta_zH_{cycle}"] > 0
        assert 0 < logged[f"trm/entropy_{cycle}"] <= np.log(4) + 1e-6
        assert 0 <= logged[f"trm/agree_{cycle}"] <= 1


def test_cycle_statistics_final_cycle_is_the_policy_s_own_distribution():
    model = PPO(TRMPolicy, "TRM-Maze-v0", policy_kwargs={**TINY, "h_cycles": 3}, seed=0)
    obs, _ = model.policy.obs_to_tensor(observations("TRM-Maze-v0", 32))
    stats = cycle_statistics(model.policy, obs)
    with torch.no_grad():
        entropy = model.policy.get_distribution(obs).entropy().mean()
    # At initialisation the cycles' entropies differ by ~1e-5: the tolerance tells them apart.
    assert abs(stats["entropy"][-1] - float(entropy)) < 1e-6
    assert abs(stats["entropy"][0] - float(entropy)) > 2e-6


def test_cycle_statistics_see_later_cycles_change_less_on_a_fresh_core():
    model = PPO(TRMPolicy, "TRM-Maze-v0", policy_kwargs={"h_cycles": 4}, seed=0)
    obs, _ = model.policy.obs_to_tensor(observations("TRM-Maze-v0", 32))
    stats = cycle_statistics(model.policy, obs)
    assert len(stats["delta_zH"]) == len(stats["entropy"]) == 4
    assert stats["delta_zH"][0] > stats["delta_zH"][-1]


def test_diagnostics_refuse_other_policies():
    model = PPO("MlpPolicy", "CartPole-v1", n_steps=32, batch_size=32)
    with pytest.raises(TypeError, match="TRM policy"):
        model.learn(32, callback=TRMDiagnosticsCallback())


def test_public_exports():
    assert trm_rl.TRMPolicy is TRMPolicy and trm_rl.MaskableTRMPolicy is MaskableTRMPolicy
    assert callable(trm_rl.load_agent)
    with pytest.raises(AttributeError):
        trm_rl.NoSuchThing  # noqa: B018


@pytest.mark.slow
def test_learns_the_fixed_maze_to_full_success():
    from trm_rl.agents.evaluation import evaluate
    from trm_rl.agents.loading import SB3Agent
    from trm_rl.agents.sb3.training import TrainConfig, train

    model = train(TrainConfig("TRM-Maze-Fixed-v0", timesteps=8192, seed=0, device="cpu"))
    result = evaluate(SB3Agent(model), "TRM-Maze-Fixed-v0", episodes=10)
    assert result.success_rate == 1.0
    assert result.path_ratio == pytest.approx(1.0)
