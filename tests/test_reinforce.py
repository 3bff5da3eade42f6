"""REINFORCE with deep supervision: per-cycle losses, weights, masks, resume, save/load."""

from dataclasses import fields

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from trm_rl import TRMConfig
from trm_rl.agents.evaluation import evaluate
from trm_rl.agents.network import parameter_count
from trm_rl.agents.reinforce.agent import build_policy
from trm_rl.agents.reinforce.rollout import discounted_returns
from trm_rl.agents.reinforce.trainer import (
    MeanBaseline,
    ReinforceAgent,
    ReinforceConfig,
    cycle_losses,
    improvement_bonus,
    resume,
    train,
)
from trm_rl.cli import build_parser, main
from trm_rl.cli import reinforce_flags as reinforce_cli

TINY = TRMConfig(hidden_dim=8, n_layers=1, h_cycles=3, l_cycles=1, mixer="none", expansion=2.0)
GRID = TRMConfig(hidden_dim=8, n_layers=1, h_cycles=3, l_cycles=1, mixer="conv", expansion=2.0)


class MaskedChoiceEnv(gym.Env):
    """Five steps; each step a random half of 6 actions is allowed, and the observation
    shows which. A disallowed action raises, so a trainer that ignores masks fails."""

    observation_space = spaces.Box(0, 1, (6,), np.float32)
    action_space = spaces.Discrete(6)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self._draw()
        return self.mask.astype(np.float32), {}

    def _draw(self):
        self.mask = np.zeros(6, dtype=bool)
        self.mask[self.np_random.choice(6, 3, replace=False)] = True

    def action_masks(self):
        return self.mask.copy()

    def step(self, action):
        if not self.mask[int(action)]:
            raise ValueError(f"masked action {action} taken")
        self.t += 1
        reward = float(action == np.flatnonzero(self.mask)[0])
        self._draw()
        done = self.t >= 5
        return self.mask.astype(np.float32), reward, done, False, {"is_success": done}


gym.register("MaskedChoice-v0", entry_point=MaskedChoiceEnv)


def toy_batch(n: int = 16):
    torch.manual_seed(0)
    space = spaces.Box(-1, 1, (4,), np.float32)
    policy = build_policy(space, spaces.Discrete(3), "trm", TINY)
    obs = torch.randn(n, 4)
    actions = torch.randint(0, 3, (n,))
    advantages = torch.randn(n)
    return policy, obs, actions, advantages


def core_gradient(policy, obs, actions, advantages, weights, mode="importance") -> torch.Tensor:
    policy.zero_grad()
    logits, _ = policy(obs)
    pg, _, _ = cycle_losses(logits, actions, advantages, mode=mode)
    (weights * pg).sum().backward()
    return torch.cat([p.grad.flatten() for p in policy.body.core.parameters()])


@pytest.mark.parametrize("mode", ["importance", "positive", "imitate"])
def test_every_cycle_loss_reaches_the_core(mode):
    policy, obs, actions, advantages = toy_batch()
    batch = (policy, obs, actions, advantages)
    for k in range(TINY.h_cycles):
        alone = torch.zeros(TINY.h_cycles)
        alone[k] = 1.0
        assert core_gradient(*batch, alone, mode).abs().sum() > 0
    full = core_gradient(*batch, torch.ones(3), mode)
    for k in range(TINY.h_cycles):
        dropped = torch.ones(3)
        dropped[k] = 0.0
        assert not torch.allclose(full, core_gradient(*batch, dropped, mode))


def test_grad_mode_last_is_refused_with_deep_supervision():
    last = TRMConfig(**{**TINY.to_dict(), "grad_mode": "last"})
    with pytest.raises(ValueError, match="grad_mode"):
        train("CartPole-v1", ReinforceConfig(episodes=1), trm=last)
    with pytest.raises(ValueError, match="grad_mode"):
        train(
            "CartPole-v1",
            ReinforceConfig(episodes=1, deep_supervision=False, curriculum_updates=5),
            trm=last,
        )


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        (3.0, [0.025, 0.075, 0.225, 0.675]),
        (5.0, [0.006, 0.032, 0.160, 0.801]),
        (10.0, [0.001, 0.009, 0.090, 0.900]),
    ],
)
def test_exponential_weights_normalise(base, expected):
    weights = ReinforceConfig(weighting="exponential", weight_base=base).cycle_weights(4)
    assert weights.sum().item() == pytest.approx(1.0)
    assert weights.tolist() == pytest.approx(expected, abs=1e-3)


def test_linear_and_single_cycle_weights():
    weights = ReinforceConfig().cycle_weights(5)
    assert weights.sum().item() == pytest.approx(1.0)
    assert (weights / weights[0]).tolist() == pytest.approx([1.0, 1.1, 1.2, 1.3, 1.4])
    off = ReinforceConfig(deep_supervision=False).cycle_weights(3)
    assert off.tolist() == [0.0, 0.0, 1.0]


def test_curriculum_grows_supervised_cycles_in_stages():
    config = ReinforceConfig(curriculum_start=2, curriculum_updates=300)
    schedule = [config.supervised_cycles(u, 4) for u in (0, 99, 100, 199, 200, 299, 1000)]
    assert schedule == [2, 2, 3, 3, 4, 4, 4]
    assert ReinforceConfig().supervised_cycles(0, 4) == 4


def test_improvement_bonus_is_bounded_signed_and_stops_at_the_earlier_cycle():
    advantages = torch.tensor([2.0, -1.0])
    better = torch.tensor([[-1.0, -1.0], [-0.5, -2.0]], requires_grad=True)
    bonus = improvement_bonus(better, advantages)
    assert 0 < bonus.item() <= 1
    assert improvement_bonus(better.detach().flip(0), advantages).item() < 0
    bonus.backward()
    assert better.grad[0].abs().sum() == 0 and better.grad[1].abs().sum() > 0
    huge = improvement_bonus(torch.tensor([[0.0], [-1e6]]), torch.tensor([1e6]))
    assert huge.item() == pytest.approx(-1.0)
    assert improvement_bonus(better[:1], advantages).item() == 0.0


def test_importance_weights_leave_the_acting_cycle_and_fade_off_policy():
    advantages = torch.tensor([1.0, -1.0])
    actions = torch.tensor([0, 1])
    # Cycle 0 gives the taken actions far less probability than the acting cycle 1.
    logits = torch.tensor(
        [[[-5.0, 0.0], [0.0, -5.0]], [[0.0, 0.0], [0.0, 0.0]]], requires_grad=True
    )
    plain, _, log_probs = cycle_losses(logits, actions, advantages, mode="imitate")
    weighted, _, _ = cycle_losses(logits, actions, advantages, acting=1)
    assert weighted[1].item() == pytest.approx(plain[1].item())
    ratios = (log_probs[0] - log_probs[1]).exp().detach()
    assert weighted[0].item() == pytest.approx(-(ratios * advantages * log_probs[0]).mean().item())
    grad_plain = torch.autograd.grad(plain[0], logits, retain_graph=True)[0]
    grad_weighted = torch.autograd.grad(weighted[0], logits)[0]
    assert grad_weighted.abs().sum() < 0.05 * grad_plain.abs().sum()
    # Flipped, cycle 0 gives them far more: ratios of ~75, truncated at importance_clip.
    positive = torch.ones(2)
    capped, _, _ = cycle_losses(
        logits.flip(0), actions, positive, acting=1, mode="importance", importance_clip=2.0
    )
    uncapped, _, _ = cycle_losses(
        logits.flip(0), actions, positive, acting=1, mode="importance", importance_clip=1e9
    )
    assert capped[0].abs().item() < uncapped[0].abs().item()


def test_positive_cycle_loss_drops_negative_advantages_off_the_acting_cycle():
    logits = torch.randn(3, 4, 5, requires_grad=True)
    actions = torch.tensor([0, 1, 2, 3])
    advantages = torch.tensor([1.0, -2.0, 0.5, -0.5])
    plain, _, log_probs = cycle_losses(logits, actions, advantages, mode="imitate")
    positive, _, _ = cycle_losses(logits, actions, advantages, acting=2, mode="positive")
    assert positive[2].item() == pytest.approx(plain[2].item())
    kept = advantages.clamp(min=0)
    for k in (0, 1):
        assert positive[k].item() == pytest.approx(-(kept * log_probs[k]).mean().item())
    grad = torch.autograd.grad(positive[0], logits)[0]
    assert grad[0, 1].abs().sum() == 0 and grad[0, 3].abs().sum() == 0
    assert grad[0, 0].abs().sum() > 0
    with pytest.raises(ValueError, match="mode"):
        cycle_losses(logits, actions, advantages, mode="distill")


def test_mean_baseline_is_a_running_average():
    baseline = MeanBaseline(momentum=0.5)
    features = torch.zeros(3, 2)
    baseline.fit(features, torch.tensor([1.0, 2.0, 3.0]))
    assert baseline(features).tolist() == [2.0, 2.0, 2.0]
    baseline.fit(features, torch.tensor([6.0]))
    assert baseline(features).tolist() == [4.0, 4.0, 4.0]
    train("CartPole-v1", ReinforceConfig(episodes=4, baseline="mean"), trm=TINY, n_envs=2)


def test_discounted_returns_stop_at_episode_end():
    rewards = np.array([[1.0], [1.0], [1.0], [5.0]])
    dones = np.array([[0.0], [0.0], [1.0], [0.0]])
    returns = discounted_returns(rewards, dones, 0.5)
    assert returns[:, 0].tolist() == [1.75, 1.5, 1.0, 5.0]


def test_masked_actions_are_never_taken():
    agent = train("MaskedChoice-v0", ReinforceConfig(episodes=24), trm=TINY, n_envs=4, seed=1)
    env = MaskedChoiceEnv()
    obs, _ = env.reset(seed=3)
    for _ in range(50):
        action, _ = agent.predict(obs, action_masks=env.action_masks())
        assert env.action_masks()[action]
        obs, *_ = env.step(action)
        if env.t >= 5:
            obs, _ = env.reset()


def test_resume_gives_the_same_numbers_as_an_uninterrupted_run(tmp_path):
    kwargs = dict(trm=TINY, n_envs=2, seed=7)
    config = ReinforceConfig(episodes=12, checkpoint_every=2, improvement_scale=0.5)
    whole = train("CartPole-v1", config, out_dir=tmp_path / "whole", **kwargs)
    half = ReinforceConfig(**{**config.to_dict(), "episodes": 6})
    train("CartPole-v1", half, out_dir=tmp_path / "split", **kwargs)
    resumed = resume(tmp_path / "split", episodes=12)
    for name, value in whole.policy.state_dict().items():
        torch.testing.assert_close(resumed.policy.state_dict()[name], value, rtol=0, atol=0)


def test_curriculum_and_callback_in_the_trainer():
    seen = []

    def callback(stats):
        seen.append(stats["train/supervised_cycles"])
        return len(seen) < 7

    config = ReinforceConfig(episodes=100, curriculum_start=1, curriculum_updates=6)
    train("CartPole-v1", config, trm=TINY, n_envs=1, callback=callback)
    assert seen == [1, 1, 2, 2, 3, 3, 3]


@pytest.mark.parametrize("policy", ["trm", "mlp"])
def test_save_load_round_trip(tmp_path, policy):
    agent = train(
        "TRM-Maze-v0",
        ReinforceConfig(episodes=4),
        env_kwargs={"size": 4},
        policy=policy,
        trm=GRID,
        focus_channel=1 if policy == "trm" else None,
        n_envs=2,
        out_dir=tmp_path,
    )
    loaded = ReinforceAgent.load(tmp_path)
    assert loaded.config["algo"] == "reinforce" and loaded.config["policy"] == policy
    env = gym.make("TRM-Maze-v0", size=4)
    batch = np.stack([env.reset(seed=s)[0] for s in range(8)])
    before, _ = agent.predict(batch, deterministic=True)
    after, _ = loaded.predict(batch, deterministic=True)
    assert before.shape == (8,) and (before == after).all()
    single, _ = loaded.predict(batch[0], deterministic=True)
    assert single.shape == () and single == after[0]


def test_mlp_baseline_is_the_smallest_at_least_as_large_as_the_trm():
    space = spaces.Box(0, 1, (3, 5, 5), np.float32)
    config = TRMConfig(hidden_dim=32, n_layers=1, h_cycles=3, l_cycles=2, mixer="conv")
    trm = parameter_count(build_policy(space, spaces.Discrete(4), "trm", config))
    mlp_net = build_policy(space, spaces.Discrete(4), "mlp", config)
    width = mlp_net.action_head.in_features
    narrower = build_policy(space, spaces.Discrete(4), "mlp", None, mlp_hidden=width - 1)
    assert parameter_count(narrower) < trm <= parameter_count(mlp_net)


def test_predict_from_a_chosen_cycle():
    policy, obs, _, _ = toy_batch()
    agent = ReinforceAgent(policy, spaces.Box(-1, 1, (4,), np.float32), spaces.Discrete(3), {})
    logits, _ = policy(obs)
    for k in range(3):
        actions, _ = agent.predict(obs.numpy(), deterministic=True, cycle=k)
        assert (actions == logits[k].argmax(-1).numpy()).all()
    with pytest.raises(ValueError, match="cycle"):
        agent.predict(obs.numpy(), cycle=3)


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("gamma", 1.5, ValueError),
        ("weighting", "cubic", ValueError),
        ("baseline", "critic", ValueError),
        ("episodes", 0, ValueError),
        ("warmup_updates", 2.5, TypeError),
        ("deep_supervision", "yes", TypeError),
        ("cycle_loss", "distill", ValueError),
        ("importance_clip", 0.0, ValueError),
    ],
)
def test_bad_config_raises(field, value, error):
    with pytest.raises(error, match=field):
        ReinforceConfig(**{field: value})
    with pytest.raises(ValueError, match="deep_supervision"):
        ReinforceConfig(improvement_scale=1.0, deep_supervision=False)


def test_cli_adds_one_flag_per_field_and_trains(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = capsys.readouterr().out
    for field in fields(ReinforceConfig):
        assert "--" + field.name.replace("_", "-") in help_text
    argv = ["train", "--env", "CartPole-v1", "--algo", "reinforce", "--out", str(tmp_path)]
    argv += ["--episodes", "4", "--weighting", "exponential", "--no-deep-supervision"]
    argv += ["--n-envs", "2", "--h-cycles", "2", "--l-cycles", "1", "--hidden-dim", "8"]
    args = build_parser("train").parse_args([*argv, "--n-layers", "1", "--no-progress"])
    assert args.weighting == "exponential" and args.deep_supervision is False
    assert reinforce_cli.run(args) == 0
    agent = ReinforceAgent.load(tmp_path)
    assert agent.config["reinforce"]["weighting"] == "exponential"
    assert agent.config["trm"]["h_cycles"] == 2 and agent.config["trm"]["mixer"] == "none"


@pytest.mark.slow
def test_learns_3x3_mazes_within_ci_time():
    """Untrained, this policy (sampling) solves 41% of held-out 3x3 mazes, returning -22."""
    small = TRMConfig(**{**GRID.to_dict(), "hidden_dim": 16})
    agent = train(
        "TRM-Maze-v0",
        ReinforceConfig(learning_rate=3e-3),
        env_kwargs={"size": 3},
        trm=small,
        focus_channel=1,
        n_envs=16,
        timesteps=12_000,
        seed=0,
    )
    result = evaluate(
        agent, "TRM-Maze-v0", episodes=100, env_kwargs={"size": 3}, deterministic=False
    )
    assert result.success_rate >= 0.85 and result.mean_return > 0


def test_default_core_suits_the_observations():
    agent = train("CartPole-v1", ReinforceConfig(episodes=2), n_envs=2)
    assert agent.config["trm"]["mixer"] == "none" and agent.config["trm"]["grad_mode"] == "full"
    with pytest.raises(ValueError, match="timesteps"):
        train("CartPole-v1", timesteps=0)
