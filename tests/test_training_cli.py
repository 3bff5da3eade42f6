"""``trm-rl train``/``evaluate``, ``load_agent``, the evaluation helper and the recipes."""

import json

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.registration import registry
from stable_baselines3.common.callbacks import BaseCallback

from trm_rl import load_agent
from trm_rl.agents.evaluation import evaluate, evaluation_seed, play_episodes
from trm_rl.agents.loading import SB3Agent
from trm_rl.agents.network import parameter_count
from trm_rl.agents.sb3.hyperparams import DEFAULT_RECIPE, RECIPES, Recipe, recipe
from trm_rl.agents.sb3.training import (
    SET_BY_TRAINER,
    TrainConfig,
    make_model,
    matched_mlp_config,
    train,
    with_schedules,
)
from trm_rl.cli import main

TINY_FLAGS = ["--hidden-dim", "8", "--h-cycles", "2", "--l-cycles", "1", "--no-progress"]


@pytest.fixture(scope="module")
def maze_agent_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("agents") / "maze"
    argv = ["train", "--env", "TRM-Maze-v0", "--timesteps", "512", "--seed", "1"]
    assert main([*argv, "--n-envs", "2", "--out", str(out), *TINY_FLAGS]) == 0
    return out


def test_train_writes_model_config_and_tensorboard(maze_agent_dir):
    assert (maze_agent_dir / "model.zip").is_file()
    config = json.loads((maze_agent_dir / "config.json").read_text())
    assert config["algo"] == "ppo" and config["policy"] == "trm"
    assert config["env_id"] == "TRM-Maze-v0" and config["seed"] == 1
    assert config["timesteps"] == 512 and config["env_kwargs"] == {}
    assert config["trm"]["hidden_dim"] == 8 and config["trm"]["mixer"] == "conv"
    assert config["trm_rl_version"]
    events = list((maze_agent_dir / "tb").rglob("events.out.tfevents*"))
    assert events


def test_load_agent_round_trip(maze_agent_dir):
    agent = load_agent(maze_agent_dir)
    assert agent.config["env_id"] == "TRM-Maze-v0"
    assert agent.observation_space.shape == (3, 5, 5)
    assert agent.action_space == gym.spaces.Discrete(4)
    env = gym.make("TRM-Maze-v0")
    batch = np.stack([env.reset(seed=seed)[0] for seed in range(4)])
    actions, state = agent.predict(batch, deterministic=True)
    assert actions.shape == (4,) and state is None
    again, _ = load_agent(maze_agent_dir).predict(batch, deterministic=True)
    np.testing.assert_array_equal(actions, again)
    single, _ = agent.predict(batch[0], deterministic=True, action_masks=np.ones(4, bool))
    assert single == actions[0]


def test_evaluate_cli_prints_success_return_and_path_ratio(maze_agent_dir, capsys):
    assert main(["evaluate", str(maze_agent_dir), "--episodes", "4", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["episodes"] == 4 and 0 <= result["success_rate"] <= 1
    assert {"mean_return", "path_ratio", "mean_length"} <= set(result)
    assert main(["evaluate", str(maze_agent_dir), "--episodes", "2"]) == 0
    text = capsys.readouterr().out
    assert "success rate" in text and "mean return" in text


def test_train_maskable_ppo_on_sudoku_by_default(tmp_path):
    out = tmp_path / "sudoku"
    argv = ["train", "--env", "TRM-Sudoku-v0", "--timesteps", "256", "--out", str(out)]
    assert main([*argv, "--n-envs", "2", *TINY_FLAGS]) == 0
    agent = load_agent(out)
    assert agent.config["algo"] == "maskable-ppo"
    env = gym.make("TRM-Sudoku-v0")
    obs, _ = env.reset(seed=0)
    masks = env.unwrapped.action_masks()
    action, _ = agent.predict(obs, deterministic=True, action_masks=masks)
    assert masks[int(action)]


def test_train_mlp_policy_has_no_trm_settings(tmp_path):
    out = tmp_path / "mlp"
    argv = ["train", "--env", "CartPole-v1", "--policy", "mlp", "--algo", "a2c"]
    assert main([*argv, "--timesteps", "64", "--out", str(out), "--no-progress"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["trm"] is None and config["algo"] == "a2c"


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--env", "TRM-Maze-v0", "--out", "x", "--algo", "dqn"],
        ["train", "--env", "TRM-Maze-v0", "--out", "x", "--mixer", "lstm"],
        ["train", "--env", "TRM-Maze-v0", "--out", "x", "--env-kwargs", "[1]"],
        ["train", "--env", "TRM-Maze-v0", "--out", "x", "--algo-kwargs", '["n_epochs"]'],
        ["train", "--out", "x"],
    ],
)
def test_train_cli_rejects_bad_flags(argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2


def test_train_cli_algo_kwargs_reach_the_model_and_the_config(tmp_path):
    out = tmp_path / "maze"
    overrides = {"n_epochs": 1, "learning_rate": "lin_0.002"}
    argv = ["train", "--env", "TRM-Maze-v0", "--timesteps", "256", "--n-envs", "2"]
    argv += ["--out", str(out), "--algo-kwargs", json.dumps(overrides), *TINY_FLAGS]
    assert main(argv) == 0
    agent = load_agent(out)
    assert overrides.items() <= agent.config["algo_kwargs"].items()
    assert agent.model.n_epochs == 1
    assert agent.model.lr_schedule(1.0) == pytest.approx(2e-3)
    assert agent.model.lr_schedule(0.5) == pytest.approx(1e-3)


def test_bad_algo_kwargs_are_named_before_training(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"algo_kwargs has \['n_epoch'\].*n_epochs"):
        TrainConfig("TRM-Maze-v0", algo_kwargs={"n_epoch": 2})
    for name in (*SET_BY_TRAINER, "_init_setup_model"):
        with pytest.raises(ValueError, match=rf"algo_kwargs has \['{name}'\]"):
            TrainConfig("TRM-Maze-v0", algo_kwargs={name: None})
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig("TRM-Maze-v0", algo_kwargs={"learning_rate": "fast"})
    argv = ["train", "--env", "TRM-Maze-v0", "--algo", "reinforce", "--out", str(tmp_path)]
    assert main([*argv, "--algo-kwargs", '{"n_epochs": 2}']) == 2
    error = capsys.readouterr().err
    assert error.startswith("trm-rl: error: --algo-kwargs applies to ppo")
    assert error.count("\n") == 1


def test_load_agent_explains_a_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="trm-rl train"):
        load_agent(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"algo": "dqn"}))
    with pytest.raises(ValueError, match="algo"):
        load_agent(tmp_path)


class FixedActions:
    """An agent that always takes ``action``."""

    def __init__(self, action: int) -> None:
        self.action = action

    def predict(self, obs, state=None, episode_start=None, deterministic=False, action_masks=None):
        return np.full(len(obs), self.action), None


def test_evaluation_does_not_depend_on_batching():
    results = [
        evaluate(FixedActions(3), "TRM-Maze-v0", episodes=7, seed=2, batch=batch)
        for batch in (1, 3, 16)
    ]
    assert results[0] == results[1] == results[2]
    assert results[0].episodes == 7


def test_played_episodes_are_in_seed_order_whatever_the_batching():
    played = [
        play_episodes(FixedActions(3), "TRM-Maze-v0", episodes=7, seed=2, batch=batch)
        for batch in (1, 3)
    ]
    assert played[0] == played[1]
    assert [outcome.reset_seed for outcome in played[0]] == [
        evaluation_seed(2, episode) for episode in range(7)
    ]
    summary = evaluate(FixedActions(3), "TRM-Maze-v0", episodes=7, seed=2)
    assert summary.mean_length == np.mean([outcome.length for outcome in played[0]])


def test_evaluation_counts_success_and_path_ratio_on_an_empty_maze():
    open_grid = {"size": 5, "layout": np.zeros((5, 5), dtype=int)}
    agent = FixedActions(3)  # right along row 0, then bumps: never reaches (4, 4)
    result = evaluate(agent, "TRM-Maze-v0", episodes=2, env_kwargs=open_grid)
    assert result.success_rate == 0.0 and result.path_ratio is None
    assert result.mean_length == 100


def test_evaluation_skip_draws_other_layouts():
    seen = []
    env = gym.make("TRM-Maze-v0")
    first = env.reset(seed=evaluation_seed(0, 0))[0]

    def skip(obs):
        seen.append(obs)
        return np.array_equal(obs, first)

    evaluate(FixedActions(0), "TRM-Maze-v0", episodes=3, skip=skip, batch=1)
    assert len(seen) == 4  # the first layout was skipped, three were played


def test_evaluation_seeds_are_disjoint_from_training_and_from_each_other():
    seeds = {evaluation_seed(seed, episode) for seed in range(3) for episode in range(5000)}
    assert len(seeds) == 3 * 5000
    assert min(seeds) >= 10**6  # training envs are seeded seed .. seed + n_envs - 1


def test_evaluation_rejects_bad_arguments():
    with pytest.raises(ValueError, match="episodes"):
        evaluate(FixedActions(0), "TRM-Maze-v0", episodes=0)
    with pytest.raises(ValueError, match="seed"):
        evaluate(FixedActions(0), "TRM-Maze-v0", seed=-1)


def test_sb3_agent_passes_masks_only_to_maskable_models():
    model = make_model(
        TrainConfig("TRM-Maze-v0", n_envs=1, policy_kwargs={"hidden_dim": 8}, device="cpu")
    )
    agent = SB3Agent(model)
    obs = gym.make("TRM-Maze-v0").reset(seed=0)[0]
    assert not agent.masked
    agent.predict(obs, action_masks=np.ones(4, bool))


def test_every_registered_trm_env_has_a_recipe():
    trm_ids = {env_id for env_id in registry if env_id.startswith("TRM-")}
    assert trm_ids <= set(RECIPES)
    for env_id in RECIPES:
        TrainConfig(env_id)
    assert recipe("trm_rl:TRM-Maze-v0") is RECIPES["TRM-Maze-v0"]
    assert recipe("CartPole-v1") is DEFAULT_RECIPE


def test_recipe_and_train_config_validate():
    with pytest.raises(ValueError, match="algo"):
        Recipe(algo="sac")
    with pytest.raises(ValueError, match="n_envs"):
        Recipe(n_envs=0)
    with pytest.raises(ValueError, match="policy"):
        TrainConfig("TRM-Maze-v0", policy="cnn")
    with pytest.raises(ValueError, match="timesteps"):
        TrainConfig("TRM-Maze-v0", timesteps=0)
    with pytest.raises(TypeError, match="env_kwargs"):
        TrainConfig("TRM-Maze-v0", env_kwargs=[])


def test_train_config_overrides_the_recipe():
    config = TrainConfig("TRM-Maze-v0", policy_kwargs={"h_cycles": 5}, algo_kwargs={"n_epochs": 2})
    assert config.resolved_policy_kwargs()["h_cycles"] == 5
    assert config.resolved_policy_kwargs()["focus_channel"] == 1
    assert config.resolved_algo_kwargs()["n_epochs"] == 2
    assert config.resolved_algo == "ppo" and config.resolved_n_envs == 16


@pytest.mark.slow
def test_reinforce_agents_train_and_load_through_the_same_cli(tmp_path, capsys):
    out = tmp_path / "reinforce"
    argv = ["train", "--env", "TRM-Maze-v0", "--algo", "reinforce", "--episodes", "4"]
    assert main([*argv, "--n-envs", "2", "--hidden-dim", "8", "--out", str(out)]) == 0
    agent = load_agent(out)
    assert agent.config["algo"] == "reinforce"
    assert main(["evaluate", str(out), "--episodes", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["episodes"] == 2


def test_linear_schedules_from_strings():
    kwargs = with_schedules({"learning_rate": "lin_0.001", "clip_range": 0.2, "n_epochs": 4})
    assert kwargs["learning_rate"](1.0) == pytest.approx(1e-3)
    assert kwargs["learning_rate"](0.5) == pytest.approx(5e-4)
    assert kwargs["clip_range"] == 0.2 and kwargs["n_epochs"] == 4
    for bad in ("lin_x", "exp_0.1", "lin_-1"):
        with pytest.raises(ValueError, match="learning_rate"):
            with_schedules({"learning_rate": bad})


@pytest.mark.parametrize("env_id", ["TRM-Maze-v0", "TRM-Sudoku-v0"])
def test_matched_mlp_is_the_narrowest_with_at_least_the_trm_parameters(env_id):
    trm = parameter_count(make_model(TrainConfig(env_id, n_envs=1)).policy)
    mlp = matched_mlp_config(TrainConfig(env_id, n_envs=1))
    width = mlp.policy_kwargs["net_arch"]["pi"][0]
    narrower = {"net_arch": {"pi": [width - 1] * 2, "vf": [width - 1] * 2}}
    narrower_config = TrainConfig(env_id, policy="mlp", n_envs=1, policy_kwargs=narrower)
    assert mlp.policy == "mlp" and mlp.env_id == env_id
    assert parameter_count(make_model(narrower_config).policy) < trm
    assert parameter_count(make_model(mlp).policy) >= trm


def test_train_cli_positions_flag_reaches_the_policy(tmp_path, capsys):
    out = tmp_path / "learned"
    argv = ["train", "--env", "TRM-Maze-v0", "--timesteps", "256", "--n-envs", "2"]
    assert main([*argv, "--out", str(out), "--positions", "learned", *TINY_FLAGS]) == 0
    state = load_agent(out).policy.state_dict()
    assert any("tokenizer.position" in name for name in state)
    reinforce = ["train", "--env", "TRM-Maze-v0", "--algo", "reinforce", "--out", str(tmp_path)]
    assert main([*reinforce, "--positions", "none"]) == 2
    assert "--positions applies to ppo" in capsys.readouterr().err


class CycleSpy(BaseCallback):
    """Records the core's H at each rollout start and, through a forward hook, the H of
    every forward call made during the rollout and the update after it."""

    def __init__(self) -> None:
        super().__init__()
        self.rollouts: list[set[int]] = []

    def _on_training_start(self) -> None:
        core = self.model.policy.network.core
        core.register_forward_pre_hook(
            lambda module, _: self.rollouts[-1].add(module.config.h_cycles)
        )

    def _on_rollout_start(self) -> None:
        self.rollouts.append(set())

    def _on_step(self) -> bool:
        return True


def random_cycle_draws(seed: int) -> tuple[list[set[int]], int]:
    config = TrainConfig(
        "TRM-Maze-v0",
        timesteps=16 * 32,
        seed=seed,
        n_envs=2,
        policy_kwargs={"hidden_dim": 8, "h_cycles": 2, "l_cycles": 1},
        algo_kwargs={"n_steps": 16, "batch_size": 32, "n_epochs": 1},
        random_h_cycles=(1, 5),
    )
    spy = CycleSpy()
    model = train(config, callbacks=[spy])
    return spy.rollouts, model.policy.network.core.config.h_cycles


def test_random_h_cycles_hold_for_a_rollout_and_its_update_and_are_reproducible():
    draws, kept = random_cycle_draws(seed=0)
    assert len(draws) == 16 and kept == 2
    assert all(len(used) == 1 for used in draws)  # rollout and update share one H
    values = [used.pop() for used in draws]
    assert set(values) <= set(range(1, 6)) and len(set(values)) >= 3
    again, _ = random_cycle_draws(seed=0)
    assert [used.pop() for used in again] == values


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"random_h_cycles": (0, 3)}, "random_h_cycles low"),
        ({"random_h_cycles": (3, 2)}, "random_h_cycles high"),
        ({"random_h_cycles": (1, 2, 3)}, "pair"),
        ({"random_h_cycles": (1, 3), "policy": "mlp"}, "shared weights"),
        ({"random_h_cycles": (1, 3), "policy_kwargs": {"shared_weights": False}}, "shared"),
    ],
)
def test_bad_random_h_cycles_are_refused(overrides, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig("TRM-Maze-v0", **overrides)


def test_random_h_cycles_flag_reaches_the_config_and_not_reinforce(tmp_path, capsys):
    out = tmp_path / "random"
    argv = ["train", "--env", "TRM-Maze-v0", "--timesteps", "256", "--n-envs", "2"]
    assert main([*argv, "--out", str(out), "--random-h-cycles", "1", "3", *TINY_FLAGS]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["random_h_cycles"] == [1, 3] and saved["trm"]["h_cycles"] == 2
    assert load_agent(out).policy.network.core.config.h_cycles == 2
    reinforce = ["train", "--env", "TRM-Maze-v0", "--algo", "reinforce", "--out", str(tmp_path)]
    assert main([*reinforce, "--random-h-cycles", "1", "3"]) == 2
    assert "--random-h-cycles applies to ppo" in capsys.readouterr().err
