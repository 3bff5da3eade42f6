"""``trm-rl train`` loses nothing and never returns a silently wrong result: input checks,
atomic writes, run-directory rules, checkpoints, SIGINT/SIGTERM, ``--resume``, NaN guard."""

import io
import json
import os
import signal
import stat
import zipfile

import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback

from trm_rl.agents.sb3.callbacks import FiniteCheckCallback, TrainingDiverged
from trm_rl.agents.sb3.training import (
    CHECKPOINT_MEMBER,
    TrainConfig,
    TrainingInterrupted,
    load_checkpoint,
    make_model,
    train,
)
from trm_rl.atomic import atomic_path, atomic_write_text
from trm_rl.cli import main

TINY_CORE = ["--hidden-dim", "8", "--h-cycles", "2", "--l-cycles", "1"]
ROLLOUT = 256
"""One rollout of the tiny maze runs: the maze recipe's n_steps 128 x 2 envs."""
MAZE = ["train", "--env", "TRM-Maze-v0", "--n-envs", "2", *TINY_CORE, "--no-progress"]
TINY_PPO = {"n_epochs": 2, "batch_size": 128}
"""Two epochs of two minibatches: 4 optimizer steps per update."""


def tiny_config(timesteps: int, **changes) -> TrainConfig:
    return TrainConfig(
        "TRM-Maze-v0",
        timesteps=timesteps,
        n_envs=2,
        policy_kwargs={"hidden_dim": 8, "h_cycles": 2, "l_cycles": 1},
        algo_kwargs=TINY_PPO,
        device="cpu",
        **changes,
    )


def cli_error(argv, capsys) -> str:
    """Run ``trm-rl`` expecting the one-line error; return the line."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("trm-rl: error: ") and err.count("\n") == 1, err
    return err


def checkpoint(out) -> dict:
    with zipfile.ZipFile(out / "model.zip") as archive:
        return json.loads(archive.read(CHECKPOINT_MEMBER))


def optimizer_state(out) -> dict:
    with zipfile.ZipFile(out / "model.zip") as archive:
        data = archive.read("policy.optimizer.pth")
    return torch.load(io.BytesIO(data), weights_only=True)


# --- no silent wrong results ------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--timesteps", "0"], "--timesteps must be >= 1, got 0"),
        (["--timesteps", "1"], f"at least {ROLLOUT}"),
        (["--seed", "-1"], "--seed must be >= 0"),
        (["--n-envs", "0"], "--n-envs must be >= 1"),
        (["--checkpoint-every", "0"], "--checkpoint-every must be >= 1"),
        (["--gamma", "0.9"], "--gamma applies to --algo reinforce only"),
        (["--learning-rate", "0.1"], "--learning-rate applies to --algo reinforce only"),
        (["--episodes", "3", "--no-deep-supervision"], "--episodes, --deep-supervision apply"),
        (["--cycle-loss", "imitate"], "--cycle-loss applies to --algo reinforce only"),
        (["--algo-kwargs", '{"n_epochs": -2}'], "algo_kwargs['n_epochs'] must be >= 1"),
        (["--algo-kwargs", '{"gamma": 1.5}'], "algo_kwargs['gamma'] must be in [0.0, 1.0]"),
        (["--policy", "mlp"], "--h-cycles, --l-cycles, --hidden-dim apply to --policy trm"),
    ],
)
def test_bad_train_flags_fail_at_once_with_one_line(tmp_path, capsys, flags, expected):
    out = tmp_path / "run"
    error = cli_error([*MAZE, "--out", str(out), *flags], capsys)
    assert expected in error
    assert not out.exists()


def test_timesteps_default_only_when_not_given(tmp_path, capsys):
    error = cli_error([*MAZE, "--out", str(tmp_path / "run"), "--timesteps", "0"], capsys)
    assert "100000" not in error


def test_device_and_focus_channel_are_common_flags(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = capsys.readouterr().out
    common, reinforce = help_text.split("REINFORCE only (--algo reinforce):")
    for flag in ("--device", "--focus-channel", "--checkpoint-every", "--resume"):
        assert flag in common and flag not in reinforce


def test_ppo_reads_focus_channel_and_device(tmp_path):
    out = tmp_path / "run"
    argv = [*MAZE, "--out", str(out), "--timesteps", str(ROLLOUT), "--focus-channel", "2"]
    assert main([*argv, "--device", "cpu"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["policy_kwargs"]["focus_channel"] == 2 and config["device"] == "cpu"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_epochs": -2}, ValueError, r"algo_kwargs\['n_epochs'\] must be >= 1"),
        ({"n_steps": 0}, ValueError, r"algo_kwargs\['n_steps'\]"),
        ({"batch_size": 1.5}, TypeError, r"algo_kwargs\['batch_size'\] must be an int"),
        ({"batch_size": 1}, ValueError, r"algo_kwargs\['batch_size'\] must be >= 2"),
        ({"learning_rate": 0}, ValueError, r"algo_kwargs\['learning_rate'\] must be in \(0"),
        ({"learning_rate": "lin_0"}, ValueError, "learning_rate"),
        ({"clip_range": -0.2}, ValueError, r"algo_kwargs\['clip_range'\]"),
        ({"gamma": 1.01}, ValueError, r"algo_kwargs\['gamma'\]"),
        ({"gae_lambda": -0.1}, ValueError, r"algo_kwargs\['gae_lambda'\]"),
        ({"ent_coef": -0.01}, ValueError, r"algo_kwargs\['ent_coef'\]"),
        ({"vf_coef": "1"}, TypeError, r"algo_kwargs\['vf_coef'\]"),
        ({"max_grad_norm": -1}, ValueError, r"algo_kwargs\['max_grad_norm'\]"),
    ],
)
def test_train_config_validates_the_common_algorithm_numbers(kwargs, error, match):
    with pytest.raises(error, match=match):
        TrainConfig("TRM-Maze-v0", algo_kwargs=kwargs)


def test_train_config_accepts_schedules_and_names_the_rollout():
    config = TrainConfig("TRM-Maze-v0", n_envs=2, algo_kwargs={"clip_range": "lin_0.2"})
    assert config.rollout_steps == ROLLOUT
    assert TrainConfig("CartPole-v1", algo="a2c", n_envs=3).rollout_steps == 15
    with pytest.raises(ValueError, match=f"at least {ROLLOUT}"):
        train(tiny_config(ROLLOUT - 1))


def break_after_second_update(damage):
    """A replacement of ``PPO.train``: the real update, then ``damage(model)`` after the
    second one."""
    original = PPO.train
    calls = []

    def update(model):
        original(model)
        calls.append(1)
        if len(calls) == 2:
            damage(model)

    return update


def nan_parameter(model):
    with torch.no_grad():
        next(model.policy.parameters()).fill_(float("nan"))


def nan_loss(model):
    model.logger.record("train/value_loss", float("nan"))


@pytest.mark.parametrize(
    ("damage", "match"),
    [(nan_parameter, "parameter .* is not finite"), (nan_loss, "train/value_loss is nan")],
)
@pytest.mark.slow
def test_nan_stops_training_naming_step_and_loss_and_keeps_the_last_checkpoint(
    tmp_path, monkeypatch, damage, match
):
    monkeypatch.setattr(PPO, "train", break_after_second_update(damage))
    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match=f"at step {2 * ROLLOUT}: {match}"):
        train(tiny_config(4 * ROLLOUT), out=out, checkpoint_every=ROLLOUT)
    assert checkpoint(out)["num_timesteps"] == ROLLOUT
    assert issubclass(TrainingDiverged, ValueError)


def test_a_huge_learning_rate_stops_with_one_clear_error(tmp_path, capsys):
    argv = [*MAZE, "--out", str(tmp_path / "run"), "--timesteps", str(2 * ROLLOUT)]
    kwargs = {"learning_rate": 1e12, "max_grad_norm": 1e30}
    error = cli_error([*argv, "--algo-kwargs", json.dumps(kwargs)], capsys)
    assert "training diverged" in error and f"step {ROLLOUT}" in error


def test_finite_check_passes_a_healthy_model():
    model = train(tiny_config(ROLLOUT))
    guard = FiniteCheckCallback()
    assert guard.problem() is None  # not started
    guard.init_callback(model)
    assert guard.problem() is None


# --- atomic writes ----------------------------------------------------------------------


def test_atomic_write_keeps_the_old_file_when_the_writer_dies(tmp_path):
    target = tmp_path / "config.json"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text("half of the new")
        raise RuntimeError("killed mid-save")
    assert target.read_text() == "old"
    assert [path.name for path in tmp_path.iterdir()] == ["config.json"]
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask


@pytest.mark.slow
def test_a_failing_model_save_leaves_the_checkpoint_intact(tmp_path, monkeypatch):
    out = tmp_path / "run"
    train(tiny_config(ROLLOUT), out=out)
    before = (out / "model.zip").read_bytes()

    def broken_save(self, path, *args, **kwargs):
        with open(path, "wb") as file:
            file.write(b"PK-truncated")
        raise OSError("disk full")

    monkeypatch.setattr(PPO, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        train(tiny_config(2 * ROLLOUT), out=out, resume=True)
    assert (out / "model.zip").read_bytes() == before
    assert sorted(path.name for path in out.iterdir()) == ["config.json", "model.zip", "tb"]


# --- nothing lost: the run directory ------------------------------------------------------


@pytest.fixture
def finished_run(tmp_path):
    out = tmp_path / "run"
    assert main([*MAZE, "--out", str(out), "--timesteps", str(ROLLOUT)]) == 0
    return out


def test_an_existing_run_is_refused_and_left_untouched(finished_run, capsys):
    before = {path: path.read_bytes() for path in finished_run.rglob("*") if path.is_file()}
    capsys.readouterr()
    error = cli_error([*MAZE, "--out", str(finished_run), "--timesteps", str(ROLLOUT)], capsys)
    assert str(finished_run) in error and "--resume" in error and "--overwrite" in error
    after = {path: path.read_bytes() for path in finished_run.rglob("*") if path.is_file()}
    assert after == before


def test_overwrite_clears_the_old_run_including_tensorboard(finished_run):
    old_events = set(finished_run.glob("tb/*/events*"))
    argv = [*MAZE, "--out", str(finished_run), "--timesteps", str(ROLLOUT), "--overwrite"]
    assert main(argv) == 0
    new_events = set(finished_run.glob("tb/*/events*"))
    assert len(new_events) == 1 and not new_events & old_events
    assert [path.name for path in (finished_run / "tb").iterdir()] == ["PPO_1"]


def test_overwrite_never_deletes_files_a_run_did_not_write(finished_run, capsys):
    (finished_run / "notes.txt").write_text("mine")
    argv = [*MAZE, "--out", str(finished_run), "--timesteps", str(ROLLOUT), "--overwrite"]
    assert "notes.txt" in cli_error(argv, capsys)
    assert (finished_run / "notes.txt").read_text() == "mine"
    assert (finished_run / "model.zip").is_file()


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--resume", "--overwrite"], "pick one"),
        (["--resume", "elsewhere"], "different directories"),
    ],
)
def test_conflicting_run_flags_are_refused(finished_run, capsys, flags, expected):
    argv = [*MAZE, "--out", str(finished_run), "--timesteps", str(ROLLOUT)]
    assert expected in cli_error([*argv, *flags], capsys)


def test_an_unwritable_out_fails_before_training(tmp_path, capsys, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking --out")

    monkeypatch.setattr(PPO, "learn", no_training)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    error = cli_error([*MAZE, "--out", str(blocker / "run"), "--timesteps", "256"], capsys)
    assert "cannot write the run directory" in error


def test_a_ppo_run_into_a_reinforce_directory_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "reinforce"
    argv = ["train", "--env", "TRM-Maze-v0", "--algo", "reinforce", "--episodes", "2"]
    argv += ["--n-envs", "2", "--hidden-dim", "8", "--no-progress"]
    assert main([*argv, "--out", str(out)]) == 0
    ppo = [*MAZE, "--out", str(out), "--timesteps", str(ROLLOUT)]
    assert "--overwrite" in cli_error(ppo, capsys)
    assert "'reinforce' there, 'ppo' now" in cli_error([*ppo, "--resume"], capsys)
    assert (out / "checkpoint.pt").is_file()
    assert main([*ppo, "--overwrite"]) == 0
    assert sorted(path.name for path in out.iterdir()) == ["config.json", "model.zip", "tb"]


@pytest.mark.slow
def test_reinforce_follows_the_same_run_directory_rules(tmp_path, capsys):
    out = tmp_path / "reinforce"
    argv = ["train", "--env", "TRM-Maze-v0", "--algo", "reinforce", "--n-envs", "2"]
    argv += ["--hidden-dim", "8", "--no-progress", "--out", str(out)]
    assert main([*argv, "--episodes", "2"]) == 0
    assert "--resume" in cli_error([*argv, "--episodes", "2"], capsys)
    assert "seed: 0 there, 3 now" in cli_error([*argv, "--resume", "--seed", "3"], capsys)
    assert "gamma" in cli_error([*argv, "--resume", "--episodes", "4", "--gamma", "0.5"], capsys)
    assert "already reached" in cli_error([*argv, "--resume"], capsys)
    assert main([*argv, "--resume", "--episodes", "4"]) == 0
    assert main([*argv, "--episodes", "2", "--overwrite"]) == 0
    assert json.loads((out / "config.json").read_text())["reinforce"]["episodes"] == 2


# --- checkpoints, signals and resume ------------------------------------------------------


class SignalAt(BaseCallback):
    """Send ``signal_number`` to this process once ``steps`` env steps were trained."""

    def __init__(self, steps: int, signal_number: int = signal.SIGINT) -> None:
        super().__init__()
        self.steps = steps
        self.signal_number = signal_number

    def _on_step(self) -> bool:
        return True

    def _on_rollout_start(self) -> None:
        if self.model.num_timesteps == self.steps:
            os.kill(os.getpid(), self.signal_number)


@pytest.mark.slow
def test_checkpoints_are_written_every_n_steps(tmp_path, monkeypatch):
    saved = []
    original = PPO.save

    def recording_save(self, path, *args, **kwargs):
        saved.append(self.num_timesteps)
        original(self, path, *args, **kwargs)

    monkeypatch.setattr(PPO, "save", recording_save)
    train(tiny_config(4 * ROLLOUT), out=tmp_path / "run", checkpoint_every=2 * ROLLOUT)
    assert saved == [2 * ROLLOUT, 4 * ROLLOUT]


@pytest.mark.slow
def test_sigint_saves_a_checkpoint_and_resume_continues_it(tmp_path):
    out = tmp_path / "run"
    handler = signal.getsignal(signal.SIGINT)  # another library (e.g. Ray) may have set one
    with pytest.raises(TrainingInterrupted) as stop:
        train(tiny_config(4 * ROLLOUT), out=out, callbacks=[SignalAt(2 * ROLLOUT)])
    assert stop.value.num_timesteps == 2 * ROLLOUT and stop.value.signal_number == signal.SIGINT
    assert signal.getsignal(signal.SIGINT) is handler
    assert checkpoint(out)["num_timesteps"] == 2 * ROLLOUT
    steps = [state["step"].item() for state in optimizer_state(out)["state"].values()]
    assert set(steps) == {2 * 4}  # 2 updates x 4 optimizer steps

    model = train(tiny_config(4 * ROLLOUT), out=out, resume=True)
    assert model.num_timesteps == 4 * ROLLOUT
    assert checkpoint(out)["num_timesteps"] == 4 * ROLLOUT
    steps = [state["step"].item() for state in optimizer_state(out)["state"].values()]
    assert set(steps) == {4 * 4}  # the Adam moments went on from the checkpoint
    assert model._n_updates == 4 * TINY_PPO["n_epochs"]
    with pytest.raises(ValueError, match="already trained 1024"):
        train(tiny_config(4 * ROLLOUT), out=out, resume=True)


def test_load_checkpoint_restores_weights_optimizer_counters_and_rng(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        train(tiny_config(4 * ROLLOUT), out=out, callbacks=[SignalAt(ROLLOUT)])
    saved = checkpoint(out)
    with zipfile.ZipFile(out / "model.zip") as archive:
        weights = torch.load(io.BytesIO(archive.read("policy.pth")), weights_only=True)
    model = make_model(tiny_config(4 * ROLLOUT))
    assert load_checkpoint(model, out / "model.zip") == ROLLOUT
    for name, value in model.policy.state_dict().items():
        torch.testing.assert_close(value, weights[name], rtol=0, atol=0)
    steps = [
        state["step"].item() for state in model.policy.optimizer.state_dict()["state"].values()
    ]
    assert set(steps) == {4}
    assert model.num_timesteps == ROLLOUT and model._n_updates == TINY_PPO["n_epochs"]
    envs = [rng.bit_generator.state for rng in model.get_env().get_attr("np_random")]
    assert json.loads(json.dumps(envs)) == saved["env_rngs"]
    assert model.get_env().unwrapped._seeds == [None, None]


@pytest.mark.slow
def test_cli_sigterm_then_resume(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    argv = [*MAZE, "--out", str(out), "--timesteps", str(2 * ROLLOUT)]
    original = FiniteCheckCallback._on_rollout_start

    def terminate_once(self):
        original(self)
        if self.model.num_timesteps == ROLLOUT:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(FiniteCheckCallback, "_on_rollout_start", terminate_once)
    handler = signal.getsignal(signal.SIGTERM)  # another library (e.g. Ray) may have set one
    assert main(argv) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert "SIGTERM after 256 of 512 env steps" in err and "--resume" in err
    assert signal.getsignal(signal.SIGTERM) is handler
    monkeypatch.undo()
    other_env = [arg if arg != "TRM-Maze-v0" else "TRM-Maze-7x7-v0" for arg in argv]
    assert "env_id: 'TRM-Maze-v0' there" in cli_error([*other_env, "--resume"], capsys)
    assert main([*argv, "--resume"]) == 0
    assert "(512 env steps)" in capsys.readouterr().out
    assert main(["evaluate", str(out), "--episodes", "2"]) == 0


def test_resume_needs_a_run(tmp_path, capsys):
    argv = [*MAZE, "--timesteps", str(ROLLOUT), "--resume", str(tmp_path / "nothing")]
    assert "nothing to resume" in cli_error(argv, capsys)
    assert not (tmp_path / "nothing").exists()
