"""``load_agent``: safe loading, test-time cycles, other observation spaces, predict checks,
pretrained policies and the errors of ``trm-rl evaluate``."""

import base64
import dataclasses
import json
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback

from trm_rl import TRMConfig, load_agent, pretrained
from trm_rl.agents.control.controller import RecursiveController
from trm_rl.agents.control.model import ControlModelConfig, RecursiveControlModel
from trm_rl.agents.evaluation import evaluate
from trm_rl.agents.loading import safe_torch_load
from trm_rl.agents.reinforce.config import ReinforceConfig
from trm_rl.agents.reinforce.trainer import resume
from trm_rl.agents.reinforce.trainer import train as train_reinforce
from trm_rl.agents.sb3 import hyperparams
from trm_rl.agents.sb3.training import TrainConfig
from trm_rl.agents.sb3.training import train as train_sb3
from trm_rl.cli import main
from trm_rl.pretrained.package import main as package_main
from trm_rl.pretrained.package import package

TINY_POLICY = {"hidden_dim": 8, "n_layers": 1, "h_cycles": 2, "l_cycles": 1}
TINY_PPO = {"n_steps": 32, "batch_size": 32, "n_epochs": 1}
REPO = Path(__file__).resolve().parents[1]


def tiny_sb3(out: Path, env_id: str = "TRM-Maze-v0", policy_kwargs=None, **kwargs) -> Path:
    """Train a tiny SB3 agent for 32 steps into ``out`` (TRM policy unless ``policy``)."""
    policy_kwargs = dict(policy_kwargs or {})
    if kwargs.get("policy", "trm") == "trm":
        policy_kwargs = {**TINY_POLICY, **policy_kwargs}
    config = TrainConfig(
        env_id,
        timesteps=32,
        n_envs=1,
        policy_kwargs=policy_kwargs,
        algo_kwargs=TINY_PPO,
        **kwargs,
    )
    train_sb3(config, out=out, tensorboard=None)
    return out


@pytest.fixture(scope="module")
def maze_dir(tmp_path_factory):
    """A maze policy with learned per-cell positions (tied to its grid size)."""
    out = tmp_path_factory.mktemp("agents") / "maze"
    return tiny_sb3(out, policy_kwargs={"positions": "learned"})


@pytest.fixture(scope="module")
def free_maze_dir(tmp_path_factory):
    """A maze policy without learned positions (its parameters fit any grid size)."""
    out = tmp_path_factory.mktemp("agents") / "free"
    return tiny_sb3(out, env_kwargs={"size": 5}, policy_kwargs={"positions": "none"})


@pytest.fixture(scope="module")
def sudoku_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("agents") / "sudoku"
    return tiny_sb3(out, "TRM-Sudoku-v0")


@pytest.fixture(scope="module")
def reinforce_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("agents") / "reinforce"
    trm = TRMConfig(hidden_dim=8, n_layers=1, h_cycles=2, l_cycles=1, mixer="conv", expansion=2.0)
    train_reinforce(
        "TRM-Maze-v0",
        ReinforceConfig(episodes=2),
        env_kwargs={"size": 4},
        trm=trm,
        focus_channel=1,
        n_envs=1,
        out_dir=out,
    )
    return out


@pytest.fixture(scope="module")
def controller_dir(tmp_path_factory):
    torch.manual_seed(0)
    config = ControlModelConfig(iterations=2, hidden_dim=8, n_layers=1, expansion=2.0)
    out = tmp_path_factory.mktemp("agents") / "controller"
    RecursiveController(RecursiveControlModel(config)).save(out, {"train": {"seed": 0}})
    return out


def maze_batch(n: int = 6, size: int = 5) -> np.ndarray:
    env = gym.make("TRM-Maze-v0", size=size)
    return np.stack([env.reset(seed=seed)[0] for seed in range(n)])


def copy_dir(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("tb"))
    return target


# --- safe loading ---------------------------------------------------------------------------


def test_safe_load_acts_as_sb3s_full_load(maze_dir):
    safe = load_agent(maze_dir)
    full = load_agent(maze_dir, trusted=True)
    batch = maze_batch()
    np.testing.assert_array_equal(
        safe.predict(batch, deterministic=True)[0], full.predict(batch, deterministic=True)[0]
    )
    for name, value in full.policy.state_dict().items():
        torch.testing.assert_close(safe.policy.state_dict()[name], value, rtol=0, atol=0)
    assert safe.model.n_steps == TINY_PPO["n_steps"]
    longer = load_agent(maze_dir, trusted=True, h_cycles=4)
    assert core_of(longer).config.h_cycles == 4


class Payload:
    """Unpickling this creates the file ``marker`` (what a crafted file could do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def torch_payload(marker: Path) -> bytes:
    path = marker.with_suffix(".payload")
    torch.save({"weights": Payload(marker)}, path)
    return path.read_bytes()


def replace_zip_member(archive: Path, member: str, data: bytes) -> None:
    with zipfile.ZipFile(archive) as source:
        contents = {name: source.read(name) for name in source.namelist()}
    assert member in contents
    contents[member] = data
    with zipfile.ZipFile(archive, "w") as target:
        for name, value in contents.items():
            target.writestr(name, value)


def plant_in_data(archive: Path, marker: Path) -> None:
    """Replace every cloudpickled entry of SB3's ``data`` JSON with the payload."""
    with zipfile.ZipFile(archive) as source:
        data = json.loads(source.read("data"))
    blob = base64.b64encode(pickle.dumps(Payload(marker))).decode()
    for value in data.values():
        if isinstance(value, dict) and ":serialized:" in value:
            value[":serialized:"] = blob
    replace_zip_member(archive, "data", json.dumps(data).encode())


SB3_MEMBERS = ["policy.pth", "data", "pytorch_variables.pth", "policy.optimizer.pth"]


@pytest.mark.parametrize("member", SB3_MEMBERS)
def test_payload_in_model_zip_never_runs(maze_dir, tmp_path, member):
    agent_dir = copy_dir(maze_dir, tmp_path / "agent")
    marker = tmp_path / "marker"
    if member == "data":
        plant_in_data(agent_dir / "model.zip", marker)
    else:
        replace_zip_member(agent_dir / "model.zip", member, torch_payload(marker))
    if member == "policy.pth":
        with pytest.raises(ValueError, match=r"model\.zip \(member policy\.pth\).*refusing"):
            load_agent(agent_dir)
    else:
        load_agent(agent_dir).predict(maze_batch(2), deterministic=True)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["model.pt", "checkpoint.pt"])
def test_payload_in_reinforce_files_never_runs(reinforce_dir, tmp_path, name):
    agent_dir = copy_dir(reinforce_dir, tmp_path / "agent")
    marker = tmp_path / "marker"
    (agent_dir / name).write_bytes(torch_payload(marker))
    with pytest.raises(ValueError, match=rf"{name}.*refusing to unpickle"):
        if name == "model.pt":
            load_agent(agent_dir)
        else:
            resume(agent_dir, episodes=3)
    assert not marker.exists()


def test_payload_in_a_controller_never_runs(controller_dir, tmp_path):
    agent_dir = copy_dir(controller_dir, tmp_path / "agent")
    marker = tmp_path / "marker"
    (agent_dir / "model.pt").write_bytes(torch_payload(marker))
    with pytest.raises(ValueError, match="refusing to unpickle"):
        load_agent(agent_dir)
    assert not marker.exists()


def test_corrupt_weights_are_named(reinforce_dir, maze_dir, tmp_path):
    agent_dir = copy_dir(reinforce_dir, tmp_path / "reinforce")
    data = (agent_dir / "model.pt").read_bytes()
    (agent_dir / "model.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"model\.pt is corrupt or truncated"):
        load_agent(agent_dir)
    sb3_dir = copy_dir(maze_dir, tmp_path / "sb3")
    data = (sb3_dir / "model.zip").read_bytes()
    (sb3_dir / "model.zip").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"model\.zip .*corrupt or truncated"):
        load_agent(sb3_dir)
    with pytest.raises(FileNotFoundError, match=r"nothing\.pt"):
        safe_torch_load(tmp_path / "nothing.pt")


def test_reinforce_files_hold_tensors_and_plain_values_only(reinforce_dir, tmp_path):
    for name in ("model.pt", "checkpoint.pt"):
        assert isinstance(safe_torch_load(reinforce_dir / name), dict)
    agent = load_agent(reinforce_dir)
    old_dir = copy_dir(reinforce_dir, tmp_path / "old")
    old_payload = {
        "state_dict": agent.policy.state_dict(),
        "observation_space": agent.observation_space,
        "action_space": agent.action_space,
    }
    torch.save(old_payload, old_dir / "model.pt")
    with pytest.raises(ValueError, match="trusted=True"):
        load_agent(old_dir)
    batch = maze_batch(4, size=4)
    np.testing.assert_array_equal(
        load_agent(old_dir, trusted=True).predict(batch, deterministic=True)[0],
        agent.predict(batch, deterministic=True)[0],
    )


# --- test-time cycles and other observation spaces --------------------------------------------


def core_of(agent):
    """The recursive core of a loaded SB3 or REINFORCE agent."""
    if hasattr(agent, "model"):
        return agent.policy.features_extractor.network.core
    return agent.policy.body.core


def count_block_calls(core, predict) -> int:
    calls = []
    handle = core.blocks[0].register_forward_hook(lambda *_: calls.append(1))
    try:
        predict()
    finally:
        handle.remove()
    return len(calls)


@pytest.mark.parametrize("kind", ["sb3", "reinforce"])
@pytest.mark.parametrize(("h_cycles", "l_cycles"), [(None, None), (5, None), (1, 3)])
def test_cycles_at_test_time(maze_dir, reinforce_dir, kind, h_cycles, l_cycles):
    directory = maze_dir if kind == "sb3" else reinforce_dir
    trained = load_agent(directory)
    agent = load_agent(directory, h_cycles=h_cycles, l_cycles=l_cycles)
    core = core_of(agent)
    batch = maze_batch(3, size=agent.observation_space.shape[-1])
    calls = count_block_calls(core, lambda: agent.predict(batch, deterministic=True))
    h, l_ = h_cycles or 2, l_cycles or 1
    assert calls == h * (l_ + 1)
    for name, value in trained.policy.state_dict().items():
        torch.testing.assert_close(agent.policy.state_dict()[name], value, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"h_cycles": 0}, ValueError, "h_cycles must be >= 1"),
        ({"l_cycles": -1}, ValueError, "l_cycles must be >= 1"),
        ({"h_cycles": 2.5}, TypeError, "h_cycles must be an int"),
        ({"h_cycles": True}, TypeError, "h_cycles must be an int"),
        ({"observation_space": (3, 9, 9)}, TypeError, "observation_space"),
    ],
)
def test_bad_load_arguments_raise(maze_dir, kwargs, error, match):
    with pytest.raises(error, match=match):
        load_agent(maze_dir, **kwargs)


def test_cycles_on_an_mlp_policy_are_refused(tmp_path):
    out = tiny_sb3(tmp_path / "mlp", policy="mlp")
    with pytest.raises(ValueError, match="TRM policies"):
        load_agent(out, h_cycles=3)


def test_position_free_policy_runs_on_a_larger_grid(free_maze_dir):
    space = spaces.Box(0, 1, (3, 9, 9), np.float32)
    small = load_agent(free_maze_dir)
    large = load_agent(free_maze_dir, observation_space=space, h_cycles=4)
    assert large.observation_space == space
    actions, _ = large.predict(maze_batch(4, size=9), deterministic=True)
    assert actions.shape == (4,) and large.action_space.contains(int(actions[0]))
    for name, value in small.policy.state_dict().items():
        torch.testing.assert_close(large.policy.state_dict()[name], value, rtol=0, atol=0)


def test_policy_with_learned_positions_refuses_another_size(maze_dir, reinforce_dir):
    space = spaces.Box(0, 1, (3, 9, 9), np.float32)
    for directory in (maze_dir, reinforce_dir):
        with pytest.raises(ValueError, match=r"tokenizer\.position saved \((16|25), 8\)") as info:
            load_agent(directory, observation_space=space)
        assert "\n" not in str(info.value) and "per-cell positions" in str(info.value)


@pytest.mark.parametrize("fixture", ["maze_dir", "free_maze_dir"])
def test_a_config_without_positions_takes_them_from_the_weights(fixture, request, tmp_path):
    saved = request.getfixturevalue(fixture)
    copy = tmp_path / "old"
    shutil.copytree(saved, copy)
    config = json.loads((copy / "config.json").read_text())
    positions = config["policy_kwargs"].pop("positions")
    (copy / "config.json").write_text(json.dumps(config))
    agent = load_agent(copy)
    has_position = any("tokenizer.position" in name for name in agent.policy.state_dict())
    assert has_position == (positions == "learned")


# --- predict checks -----------------------------------------------------------------------------


def test_maskable_agent_needs_masks_and_evaluation_gives_them(sudoku_dir):
    agent = load_agent(sudoku_dir)
    assert agent.masked
    env = gym.make("TRM-Sudoku-v0")
    obs, _ = env.reset(seed=0)
    masks = env.unwrapped.action_masks()
    with pytest.raises(ValueError, match="needs action_masks"):
        agent.predict(obs)
    action, _ = agent.predict(obs, deterministic=True, action_masks=masks)
    assert masks[int(action)]
    assert evaluate(agent, "TRM-Sudoku-v0", episodes=2).episodes == 2


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda obs, masks: (obs, np.zeros_like(masks)), "allow no action"),
        (lambda obs, masks: (obs, masks[:10]), r"action_masks must have shape \(64,\)"),
        (lambda obs, masks: (obs, np.stack([masks, masks])), r"shape \(64,\)"),
        (lambda obs, masks: (np.where(obs == 0, 7, obs), masks), r"entry \(\d+,\) is 7"),
        (lambda obs, masks: (obs.astype(float) * np.nan, masks), "NaN"),
        (lambda obs, masks: (obs[:9], masks), "Unexpected observation shape"),
    ],
)
def test_sb3_predict_refuses_bad_masks_and_observations(sudoku_dir, change, match):
    agent = load_agent(sudoku_dir)
    env = gym.make("TRM-Sudoku-v0")
    obs, _ = env.reset(seed=0)
    bad_obs, bad_masks = change(obs, env.unwrapped.action_masks())
    with pytest.raises(ValueError, match=match):
        agent.predict(bad_obs, action_masks=bad_masks)


@pytest.mark.parametrize("kind", ["sb3", "reinforce"])
def test_nan_observation_raises(maze_dir, reinforce_dir, kind):
    agent = load_agent(maze_dir if kind == "sb3" else reinforce_dir)
    batch = maze_batch(2, size=agent.observation_space.shape[-1])
    batch[1, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        agent.predict(batch)


# --- pretrained ----------------------------------------------------------------------------------


@pytest.fixture
def pretrained_root(tmp_path, monkeypatch):
    root = tmp_path / "pretrained"
    root.mkdir()
    monkeypatch.setattr(pretrained, "ROOT", root)
    return root


@pytest.mark.parametrize("kind", ["sb3", "reinforce"])
def test_packaged_policy_acts_as_its_run(maze_dir, reinforce_dir, pretrained_root, kind):
    directory = maze_dir if kind == "sb3" else reinforce_dir
    target = package(directory, f"tiny-{kind}", "0123abc", command="trm-rl train ...")
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "policy.pt"]
    record = json.loads((target / "config.json").read_text())
    assert record["command"] == "trm-rl train ..." and record["commit"] == "0123abc"
    assert isinstance(safe_torch_load(target / "policy.pt"), dict)
    packaged = load_agent(f"pretrained:tiny-{kind}")
    original = load_agent(directory)
    batch = maze_batch(5, size=original.observation_space.shape[-1])
    np.testing.assert_array_equal(
        packaged.predict(batch, deterministic=True)[0],
        original.predict(batch, deterministic=True)[0],
    )
    assert pretrained.available() == [f"tiny-{kind}"]
    more = load_agent(f"pretrained:tiny-{kind}", h_cycles=3)
    core = (
        more.policy.body.core
        if kind == "reinforce"
        else more.policy.features_extractor.network.core
    )
    assert core.config.h_cycles == 3


def test_packaged_controller_plans_as_its_run(controller_dir, pretrained_root):
    package(controller_dir, "vdp", "0123abc", command="trm-rl control train ...")
    packaged = load_agent("pretrained:vdp")
    assert isinstance(packaged, RecursiveController)
    states = np.array([[1.0, 0.5], [-0.5, 0.2]], np.float32)
    np.testing.assert_array_equal(
        packaged.plan(states), RecursiveController.load(controller_dir).plan(states)
    )
    assert load_agent("pretrained:vdp", h_cycles=3).config.h_cycles == 3


def test_package_cli_records_command_commit_and_held_out_result(maze_dir, tmp_path, capsys):
    run_dir = copy_dir(maze_dir, tmp_path / "run")
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**config, "command": "python -m x"}))
    argv = [str(run_dir), "maze-tiny", "--commit", "abcdef1", "--root", str(tmp_path / "root")]
    assert package_main([*argv, "--evaluate", "3"]) == 0
    assert "held-out success" in capsys.readouterr().out
    record = json.loads((tmp_path / "root" / "maze-tiny" / "config.json").read_text())
    assert record["command"] == "python -m x" and record["held_out"]["episodes"] == 3
    assert record["held_out"]["env_kwargs"] == config["env_kwargs"]
    assert package_main(argv) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    other = {"family": "perfect"}
    assert (
        package_main(
            [*argv, "--overwrite", "--evaluate", "3", "--eval-env-kwargs", json.dumps(other)]
        )
        == 0
    )
    record = json.loads((tmp_path / "root" / "maze-tiny" / "config.json").read_text())
    assert (
        record["held_out"]["env_kwargs"] == other and record["env_kwargs"] == config["env_kwargs"]
    )
    assert package_main([*argv, "--overwrite", "--eval-env-kwargs", "{}"]) == 2
    assert "needs evaluate_episodes" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "commit", "match"),
    [("Maze 7", "abcdef1", "name must be"), ("maze", "HEAD", "commit must be")],
)
def test_package_refuses_bad_names_and_commits(maze_dir, pretrained_root, name, commit, match):
    with pytest.raises(ValueError, match=match):
        package(maze_dir, name, commit, command="x")


def test_package_needs_a_command(maze_dir, pretrained_root):
    with pytest.raises(ValueError, match="pass --command"):
        package(maze_dir, "maze", "abcdef1")


def test_unknown_pretrained_name_lists_the_available_ones(maze_dir, pretrained_root, capsys):
    package(maze_dir, "maze-tiny", "abcdef1", command="x")
    with pytest.raises(
        ValueError, match=r"unknown pretrained policy 'maze-99'; available: maze-tiny"
    ):
        load_agent("pretrained:maze-99")
    assert main(["evaluate", "pretrained:maze-99"]) == 2
    assert capsys.readouterr().err.startswith("trm-rl: error: unknown pretrained policy")


def test_evaluate_cli_on_a_pretrained_policy(maze_dir, pretrained_root, capsys):
    package(maze_dir, "maze-tiny", "abcdef1", command="x")
    argv = ["evaluate", "pretrained:maze-tiny", "--episodes", "2", "--json"]
    assert main([*argv, "--h-cycles", "3"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["env_id"] == "TRM-Maze-v0" and result["episodes"] == 2
    assert result["source"] == "pretrained:maze-tiny" and result["seed"] == 0
    assert result["deterministic"] is True
    trained = json.loads((maze_dir / "config.json").read_text())["trm"]
    assert result["h_cycles"] == 3 and result["l_cycles"] == trained["l_cycles"]


def test_evaluate_cli_on_another_maze_size(free_maze_dir, maze_dir, capsys):
    argv = ["evaluate", str(free_maze_dir), "--episodes", "2", "--json", "--h-cycles", "3"]
    kwargs = json.dumps({"size": 7, "family": "perfect"})
    assert main([*argv, "--env-kwargs", kwargs]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["env_kwargs"] == {"size": 7, "family": "perfect"} and result["episodes"] == 2
    assert main(["evaluate", str(maze_dir), "--env-kwargs", kwargs]) == 2
    error = capsys.readouterr().err
    assert error.startswith("trm-rl: error: ") and error.count("\n") == 1
    assert "position" in error


@pytest.mark.parametrize("suffix", [".gif", ".png"])
def test_evaluate_cli_renders_the_first_episode(maze_dir, sudoku_dir, tmp_path, capsys, suffix):
    from PIL import Image

    for directory in (maze_dir, sudoku_dir):
        path = tmp_path / f"{directory.name}{suffix}"
        argv = ["evaluate", str(directory), "--episodes", "1", "--render", str(path)]
        assert main(argv) == 0
        steps = int(capsys.readouterr().out.split("episode, ")[1].split(" steps")[0])
        with Image.open(path) as image:
            frame = gym.make(
                json.loads((directory / "config.json").read_text())["env_id"],
                render_mode="rgb_array",
            )
            frame.reset(seed=0)
            height, width = frame.render().shape[:2]
            if suffix == ".gif":
                durations = []
                for index in range(image.n_frames):
                    image.seek(index)
                    durations.append(image.info["duration"])
                assert sum(durations) == 200 * (steps + 1) and image.size == (width, height)
            else:
                shown = min(steps + 1, 40)
                columns = min(10, shown)
                rows = -(-shown // columns)
                assert image.size == (columns * (width + 4) - 4, rows * (height + 4) - 4)


def test_evaluate_cli_refuses_a_bad_render_path(maze_dir, tmp_path, capsys):
    assert main(["evaluate", str(maze_dir), "--render", str(tmp_path / "x.mp4")]) == 2
    assert capsys.readouterr().err.startswith("trm-rl: error: --render must end in .gif or .png")
    assert main(["evaluate", str(maze_dir), "--render", str(tmp_path / "no" / "x.gif")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_evaluate_cli_refuses_a_controller(controller_dir, capsys):
    assert main(["evaluate", str(controller_dir)]) == 2
    assert "control analyze" in capsys.readouterr().err


@pytest.mark.slow
def test_pretrained_name_resolves_after_a_non_editable_install(maze_dir, tmp_path):
    """Build the package into a target folder (its pretrained data included) and load a
    policy packaged into that copy, from another working directory."""
    source = tmp_path / "source"
    for folder in ("trm_rl", "envs", "agents"):
        shutil.copytree(
            REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    (source / "benchmarks").mkdir()
    (source / "benchmarks" / "__init__.py").write_text("")
    package(maze_dir, "maze-install", "abcdef1", command="x", root=source / "trm_rl/pretrained")
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*pip, str(source), "--target", str(target)], check=True)
    shutil.rmtree(source)
    code = (
        "import trm_rl.pretrained as p; from trm_rl import load_agent; "
        f"assert str(p.ROOT).startswith({str(target)!r}), p.ROOT; "
        "a = load_agent('pretrained:maze-install'); print(p.available(), a.config['commit'])"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "maze-install" in out.stdout and "abcdef1" in out.stdout


# --- errors that name the file ------------------------------------------------------------------


def test_missing_model_zip_is_named(maze_dir, tmp_path, capsys):
    agent_dir = copy_dir(maze_dir, tmp_path / "agent")
    (agent_dir / "model.zip").unlink()
    with pytest.raises(FileNotFoundError, match=r"model\.zip not found") as info:
        load_agent(agent_dir)
    assert "model.zip.zip" not in str(info.value)
    assert main(["evaluate", str(agent_dir)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("trm-rl: error: ") and "model.zip not found" in error


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        ("{not json", ValueError, r"config\.json is not valid JSON"),
        ("[1, 2]", ValueError, r"config\.json must hold a JSON object"),
        ('{"env_id": "TRM-Maze-v0"}', ValueError, r"config\.json has no 'algo'"),
        ('{"algo": "ppo"}', ValueError, r"config\.json has no 'env_id'"),
        ('{"algo": "dqn", "env_id": "TRM-Maze-v0"}', ValueError, "'algo' must be one of"),
        ('{"algo": "ppo", "env_id": "Nope-v9"}', ValueError, "cannot make env 'Nope-v9'"),
        ('{"algo": "ppo", "env_id": "TRM-Maze-v0", "seed": -1}', ValueError, "cannot build"),
        (
            '{"algo": "ppo", "env_id": "TRM-Maze-v0", "weights": "../x.pt"}',
            ValueError,
            "'weights' must be a file name",
        ),
    ],
)
def test_bad_config_json_is_named(maze_dir, tmp_path, capsys, text, error, match):
    agent_dir = copy_dir(maze_dir, tmp_path / "agent")
    (agent_dir / "config.json").write_text(text)
    with pytest.raises(error, match=match):
        load_agent(agent_dir)
    assert main(["evaluate", str(agent_dir)]) == 2
    message = capsys.readouterr().err
    assert message.startswith("trm-rl: error: ") and message.count("\n") == 1
    assert str(agent_dir / "config.json") in message


def test_reinforce_config_without_a_policy_is_named(reinforce_dir, tmp_path):
    agent_dir = copy_dir(reinforce_dir, tmp_path / "agent")
    config = json.loads((agent_dir / "config.json").read_text())
    del config["policy"]
    (agent_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"config\.json: cannot build the policy.*'policy'"):
        load_agent(agent_dir)


def test_missing_config_json_is_named(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 2
    message = capsys.readouterr().err
    assert message.startswith(f"trm-rl: error: {tmp_path / 'config.json'} not found")


class StartingWeights(BaseCallback):
    """Records the policy's weights when training starts."""

    def __init__(self) -> None:
        super().__init__()
        self.weights: dict[str, torch.Tensor] = {}

    def _on_training_start(self) -> None:
        self.weights = {k: v.clone() for k, v in self.model.policy.state_dict().items()}

    def _on_step(self) -> bool:
        return True


def larger_maze_run(**overrides) -> TrainConfig:
    """A tiny 7x7 run with the position-free policy of ``free_maze_dir`` (trained on 5x5)."""
    settings = {
        "timesteps": 32,
        "n_envs": 1,
        "env_kwargs": {"size": 7},
        "policy_kwargs": {**TINY_POLICY, "positions": "none"},
        "algo_kwargs": TINY_PPO,
        **overrides,
    }
    return TrainConfig("TRM-Maze-v0", **settings)


def test_a_run_starts_from_a_smaller_mazes_policy(free_maze_dir):
    saved = safe_torch_load(free_maze_dir / "model.zip", "policy.pth")
    started = StartingWeights()
    train_sb3(larger_maze_run(init_from=str(free_maze_dir)), callbacks=[started])
    assert started.weights.keys() == saved.keys()
    assert all(torch.equal(started.weights[name], saved[name]) for name in saved)
    fresh = StartingWeights()
    train_sb3(larger_maze_run(), callbacks=[fresh])
    assert not all(torch.equal(fresh.weights[name], saved[name]) for name in saved)


WIDER = {"policy_kwargs": {**TINY_POLICY, "positions": "none", "hidden_dim": 16}}


@pytest.mark.parametrize(
    ("source", "overrides", "error", "match"),
    [
        ("maze_dir", {}, ValueError, "positions='learned' .the run has 'none'."),
        ("free_maze_dir", WIDER, ValueError, "hidden_dim=8 .the run has 16."),
        ("reinforce_dir", {}, ValueError, "reinforce agent"),
        ("missing", {}, FileNotFoundError, "config.json"),
    ],
)
def test_starting_weights_that_do_not_fit_are_refused(
    source, overrides, error, match, request, tmp_path
):
    path = tmp_path / "nothing" if source == "missing" else request.getfixturevalue(source)
    with pytest.raises(error, match=match):
        train_sb3(larger_maze_run(init_from=str(path), **overrides))


def test_starting_weights_of_a_config_without_the_setting_are_checked_by_shape(maze_dir, tmp_path):
    unrecorded = tmp_path / "unrecorded"
    shutil.copytree(maze_dir, unrecorded)
    config = json.loads((unrecorded / "config.json").read_text())
    del config["policy_kwargs"]["positions"]
    (unrecorded / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"unexpected .*tokenizer\.position"):
        train_sb3(larger_maze_run(init_from=str(unrecorded)))


def test_a_run_may_start_from_an_agent_trained_with_other_cycle_counts(free_maze_dir):
    saved = safe_torch_load(free_maze_dir / "model.zip", "policy.pth")
    deeper = {**TINY_POLICY, "positions": "none", "h_cycles": 3, "l_cycles": 2}
    started = StartingWeights()
    run = larger_maze_run(init_from=str(free_maze_dir), policy_kwargs=deeper)
    train_sb3(run, callbacks=[started])
    assert all(torch.equal(started.weights[name], saved[name]) for name in saved)


def test_init_from_must_name_an_agent():
    with pytest.raises(TypeError, match="init_from must be an agent directory"):
        larger_maze_run(init_from=3)


def test_init_from_flag_starts_the_run_and_not_reinforce(free_maze_dir, tmp_path, capsys):
    out = tmp_path / "larger"
    flags = ["--hidden-dim", "8", "--n-layers", "1", "--h-cycles", "2", "--l-cycles", "1"]
    argv = ["train", "--env", "TRM-Maze-v0", "--env-kwargs", '{"size": 7}', "--n-envs", "1"]
    ppo = ["--algo-kwargs", json.dumps(TINY_PPO), "--timesteps", "32", "--positions", "none"]
    start = ["--init-from", str(free_maze_dir)]
    assert main([*argv, *ppo, *flags, *start, "--out", str(out), "--no-progress"]) == 0
    assert json.loads((out / "config.json").read_text())["init_from"] == str(free_maze_dir)
    reinforce = ["train", "--env", "TRM-Maze-v0", "--algo", "reinforce", "--out", str(tmp_path)]
    assert main([*reinforce, *start]) == 2
    assert "--init-from applies to ppo" in capsys.readouterr().err


def test_shipped_extrapolation_policy_thinks_longer_on_a_larger_maze():
    """``pretrained:maze-extrapolate`` (trained on 7x7, then 9x9 mazes at 6 cycles) runs 12
    cycles on 15x15 perfect mazes."""
    env_kwargs = {"size": 15, "family": "perfect"}
    env = gym.make("TRM-Maze-v0", **env_kwargs)
    agent = load_agent(
        "pretrained:maze-extrapolate", h_cycles=12, observation_space=env.observation_space
    )
    assert agent.policy.features_extractor.network.core.config.h_cycles == 12
    result = evaluate(agent, "TRM-Maze-v0", 20, 0, env_kwargs)
    assert result.success_rate >= 0.4  # 50% of 100 such mazes (seed 1) in RESULTS §10


def test_shipped_sudoku9_policy_solves_naked_and_most_hidden_single_puzzles():
    """``pretrained:sudoku-9x9`` fills full held-out puzzles that naked singles solve, and
    most of those that need hidden singles."""
    agent = load_agent("pretrained:sudoku-9x9")
    assert agent.config["algo"] == "maskable-outcome" and agent.masked
    naked = {"difficulty": "naked", "max_blanks": None, "observation": "candidates"}
    result = evaluate(agent, "TRM-Sudoku-9x9-v0", 5, 0, naked)
    assert result.success_rate == 1.0  # 100 of 100 in RESULTS section 11
    hidden = evaluate(agent, "TRM-Sudoku-9x9-v0", 20, 0, {**naked, "difficulty": "hidden"})
    assert hidden.success_rate >= 0.75, hidden  # 19 of these 20; 94 of 100 in its config.json


def test_a_key_the_trm_recipe_gained_later_takes_the_policys_default(maze_dir, monkeypatch):
    """config.json holds the policy kwargs resolved at training; a recipe key added since
    then (here ``learned_init``, which would add parameters) must not change the agent."""
    config = json.loads((maze_dir / "config.json").read_text())
    assert "learned_init" not in config["policy_kwargs"]
    original = hyperparams.recipe("TRM-Maze-v0")
    grown = dataclasses.replace(original, trm={**original.trm, "learned_init": True})
    monkeypatch.setitem(hyperparams.RECIPES, "TRM-Maze-v0", grown)
    assert hyperparams.recipe("TRM-Maze-v0").trm["learned_init"] is True
    agent = load_agent(maze_dir)
    assert agent.policy.trm_config.learned_init is False


def test_a_key_the_mlp_recipe_gained_later_takes_sb3s_default(tmp_path, monkeypatch):
    out = tmp_path / "mlp"
    train_sb3(TrainConfig("CartPole-v1", algo="a2c", policy="mlp", timesteps=40, n_envs=1), out)
    original = hyperparams.recipe("CartPole-v1")
    grown = dataclasses.replace(original, mlp={"net_arch": [7]})
    monkeypatch.setitem(hyperparams.RECIPES, "CartPole-v1", grown)
    agent = load_agent(out)
    assert [layer.out_features for layer in agent.policy.mlp_extractor.policy_net[::2]] == [64, 64]
