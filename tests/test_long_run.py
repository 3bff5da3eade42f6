"""benchmarks/long_run.py: segments, the held-out curve per setting, resume and refusals."""

import json

import pytest

from trm_rl.agents.loading import load_agent
from trm_rl.benchmarks import long_run

TINY = [
    "--env",
    "TRM-Maze-v0",
    "--n-envs",
    "2",
    "--trm-kwargs",
    '{"hidden_dim": 8, "h_cycles": 1, "l_cycles": 1}',
    "--algo-kwargs",
    '{"n_steps": 32, "batch_size": 64, "n_epochs": 1}',
    "--segment",
    "64",
    "--eval-episodes",
    "3",
    "--eval",
    "five={}",
    "--eval",
    'seven={"size": 7}',
]


def test_segments_curve_and_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert long_run.main([*TINY, "--timesteps", "128", "--out", str(out)]) == 0
    record = json.loads((out / "curve.json").read_text())
    assert [p["timesteps"] for p in record["points"]] == [64, 128]
    first = record["points"][-1]
    assert set(first["evals"]) == {"five", "seven"} and first["evals"]["seven"]["episodes"] == 3
    assert 0 < first["train_seconds"] <= first["elapsed_seconds"]
    assert (out / "run" / "model.zip").is_file()
    for later in ("init_from", "keep_best", "eval_at_start", "algo", "policy"):
        del record["settings"][later]  # a curve written before these settings existed
    (out / "curve.json").write_text(json.dumps(record))
    assert long_run.main([*TINY, "--timesteps", "192", "--out", str(out), "--resume"]) == 0
    points = json.loads((out / "curve.json").read_text())["points"]
    assert [p["timesteps"] for p in points] == [64, 128, 192]
    assert points[2]["elapsed_seconds"] > points[1]["elapsed_seconds"]
    assert "192 steps" in capsys.readouterr().out


def test_eval_at_start_adds_a_point_before_any_update(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [*TINY, "--timesteps", "64", "--out", str(out), "--eval-at-start"]
    assert long_run.main(argv) == 0
    points = json.loads((out / "curve.json").read_text())["points"]
    assert [p["timesteps"] for p in points] == [0, 64]
    assert points[0]["train_seconds"] < 0.01 < points[0]["elapsed_seconds"]
    assert "        0 steps" in capsys.readouterr().out


def test_refusals_name_the_problem(tmp_path, capsys):
    out = tmp_path / "run"
    assert long_run.main([*TINY, "--timesteps", "64", "--out", str(out)]) == 0
    before = (out / "curve.json").read_bytes()
    assert long_run.main([*TINY, "--timesteps", "64", "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    changed = [*TINY, "--timesteps", "128", "--out", str(out), "--resume", "--seed", "1"]
    assert long_run.main(changed) == 2
    assert "other settings (seed)" in capsys.readouterr().err
    changed = [*TINY, "--timesteps", "128", "--out", str(out), "--resume", "--init-from", "x"]
    assert long_run.main(changed) == 2
    assert "other settings (init_from)" in capsys.readouterr().err
    changed = [*TINY, "--timesteps", "128", "--out", str(out), "--resume", "--algo", "a2c"]
    assert long_run.main(changed) == 2
    assert "other settings (algo)" in capsys.readouterr().err
    assert (out / "curve.json").read_bytes() == before
    assert (
        long_run.main([*TINY, "--timesteps", "64", "--out", str(tmp_path / "new"), "--resume"]) == 2
    )
    assert "does not exist" in capsys.readouterr().err
    (out / "notes.txt").write_text("mine")
    assert long_run.main([*TINY, "--timesteps", "64", "--out", str(out), "--overwrite"]) == 2
    assert "notes.txt" in capsys.readouterr().err and (out / "notes.txt").is_file()


def test_keep_best_keeps_the_best_points_checkpoint_through_a_collapse(tmp_path, monkeypatch):
    scores = iter([0.5, 0.8, 0.8, 0.3])
    saved = {}

    def scripted_evaluation(run_dir, env_id, run_settings):
        saved[len(saved) + 1] = (run_dir / "model.zip").read_bytes()
        score = next(scores)
        return {name: {"success_rate": score} for name in run_settings["evals"]}

    monkeypatch.setattr(long_run, "evaluate_all", scripted_evaluation)
    monkeypatch.setattr(long_run, "point_line", lambda point: "")
    out = tmp_path / "run"
    argv = [*TINY, "--out", str(out), "--keep-best", "seven"]
    assert long_run.main([*argv, "--timesteps", "128"]) == 0
    assert long_run.main([*argv, "--timesteps", "256", "--resume"]) == 0
    record = json.loads((out / "curve.json").read_text())
    assert record["best"] == {"setting": "seven", "timesteps": 128}
    assert (out / "best" / "model.zip").read_bytes() == saved[2] != saved[3]
    assert load_agent(out / "best", device="cpu").policy is not None


@pytest.mark.parametrize(
    "bad",
    [
        ["--eval", "noequals"],
        ["--eval", "a={}", "--eval", "a={}"],
        ["--keep-best", "nine"],
    ],
)
def test_bad_eval_settings_exit_2(tmp_path, bad):
    with pytest.raises(SystemExit) as refused:
        long_run.main([*TINY, "--timesteps", "64", "--out", str(tmp_path / "x"), *bad])
    assert refused.value.code == 2


def test_a_learning_rate_schedule_spans_the_whole_run(tmp_path, monkeypatch):
    rates = []
    save = long_run.save_checkpoint

    def recording_save(model, out, steps):
        rates.append((steps, model.policy.optimizer.param_groups[0]["lr"]))
        save(model, out, steps)

    monkeypatch.setattr(long_run, "save_checkpoint", recording_save)
    argv = [*TINY, "--timesteps", "256", "--out", str(tmp_path / "run")]
    argv[argv.index("--algo-kwargs") + 1] = (
        '{"n_steps": 32, "batch_size": 64, "n_epochs": 1, "learning_rate": "lin_0.001"}'
    )
    assert long_run.main(argv) == 0
    steps, rate = rates[1]  # the point after 128 of 256 steps
    assert steps == 128 and rate == pytest.approx(0.001 * (1 - 128 / 256))  # not 0: one schedule
