"""The held-out PPO learning benchmark end to end with a tiny budget, partial results too."""

import json

import pytest

from trm_rl.benchmarks import policy_learning


@pytest.mark.slow
def test_tiny_run_writes_rows_and_partial_curves(tmp_path, monkeypatch):
    out = tmp_path / "result.json"
    snapshots = []
    write_text = type(out).write_text

    def record(path, text, *args, **kwargs):
        snapshots.append(json.loads(text))
        return write_text(path, text, *args, **kwargs)

    monkeypatch.setattr(type(out), "write_text", record)
    argv = ["--env", "TRM-Maze-v0", "--timesteps", "512", "--n-seeds", "1"]
    argv += ["--eval-episodes", "2", "--curve-points", "2", "--out", str(out)]
    assert policy_learning.main([*argv, "--n-envs", "2", "--policies", "trm", "mlp"]) == 0
    report = json.loads(out.read_text())
    assert [run["policy"] for run in report["runs"]] == ["trm", "mlp"]
    assert all(len(run["curve"]) == 2 for run in report["runs"])
    assert report["runs"][1]["params"] >= report["runs"][0]["params"]
    assert set(report["summary"]) == {"trm", "mlp"}
    partial = [s["running"] for s in snapshots if "running" in s]
    assert [(p["policy"], len(p["curve"])) for p in partial] == [
        ("trm", 1), ("trm", 2), ("mlp", 1), ("mlp", 2),
    ]  # fmt: skip
    assert "running" not in report


def test_an_existing_results_file_is_not_replaced(tmp_path):
    out = tmp_path / "result.json"
    out.write_text("{}")
    argv = ["--env", "TRM-Maze-v0", "--timesteps", "512", "--out", str(out)]
    with pytest.raises(FileExistsError, match="--overwrite"):
        policy_learning.main(argv)
    assert out.read_text() == "{}"


def test_time_to_threshold_is_the_first_point_reaching_it():
    keys = ("timesteps", "success_rate", "elapsed_seconds", "elapsed_cpu_seconds")
    values = [(100, 0.5, 10.0, 9.0), (200, 0.95, 21.0, 19.0), (300, 0.99, 33.0, 30.0)]
    curve = [dict(zip(keys, point, strict=True)) for point in values]
    assert policy_learning.time_to(curve, 0.9) == {
        "threshold": 0.9, "timesteps": 200, "seconds": 21.0, "cpu_seconds": 19.0,
    }  # fmt: skip
    assert policy_learning.time_to(curve, 0.995) is None
