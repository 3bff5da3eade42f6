"""``trm-rl bench`` end to end with a tiny budget, and its job file."""

import json

import pytest

from trm_rl.benchmarks.jobs import read_jobs
from trm_rl.benchmarks.report import ROW_FIELDS
from trm_rl.cli import main

TINY = [
    "bench",
    "--quick",
    "--timesteps",
    "256",
    "--seeds",
    "1",
    "--eval-episodes",
    "4",
    "--curve-points",
    "1",
    "--workers",
    "2",
    "--envs",
    "TRM-Maze-Fixed-v0",
]


CONTROL = {
    "problems": 8,
    "seed": 1000,
    "optimizer_seconds_per_problem": 0.25,
    "lqr": {"gap": 0.0171, "success_rate": 1.0},
    "controllers": [
        {
            "run": "cost",
            "objective": "cost",
            "parameters": 93732,
            "gap": 0.00105,
            "success_rate": 0.996,
            "plan_seconds_per_problem": 0.000735,
            "speedup_vs_optimizer": 340.1,
        }
    ],
}


@pytest.mark.slow
def test_quick_bench_end_to_end(tmp_path, capsys):
    control = tmp_path / "control.json"
    control.write_text(json.dumps(CONTROL))
    argv = [*TINY, "--agents", "trm-k3", "mlp", "solver", "--out", str(tmp_path)]
    assert main([*argv, "--control-results", str(control)]) == 0
    printed = capsys.readouterr().out
    assert "### TRM-Maze-Fixed-v0 · ppo" in printed
    assert "| cost | cost | 93,732 | +0.105% | 99.6% | 0.73 ms | 340x |" in printed
    assert "| LQR teacher | - | - | +1.710% | 100.0% |" in printed
    results = json.loads((tmp_path / "results.json").read_text())
    rows = results["rows"]
    assert sorted(row["agent"] for row in rows) == ["mlp", "solver", "trm-k3"]
    for row in rows:
        assert set(ROW_FIELDS) <= set(row)
    learners = [row for row in rows if row["agent"] != "solver"]
    assert all(row["params"] > 0 and row["steps_per_s"] > 0 for row in learners)
    mlp, trm = (next(r for r in rows if r["agent"] == a) for a in ("mlp", "trm-k3"))
    assert mlp["params"] >= trm["params"]
    assert results["meta"]["versions"]["torch"]
    assert (tmp_path / "results.md").read_text().count("| trm-k3 |") == 1
    assert (tmp_path / "curve_TRM-Maze-Fixed-v0_ppo.png").exists()
    assert "supervised recursive control" in (tmp_path / "results.md").read_text()
    assert main([*argv, "--report-only", "--control-results", str(tmp_path / "none.json")]) == 0
    assert "VanDerPol" not in (tmp_path / "results.md").read_text()


def test_a_run_clears_old_rows_and_resume_keeps_them(tmp_path):
    rows = tmp_path / "rows"
    rows.mkdir()
    stale = rows / "TRM-Maze-Fixed-v0__none__random__s0.json"
    stale.write_text("{}")
    argv = [*TINY, "--agents", "solver", "--out", str(tmp_path)]
    assert main(argv) == 0
    assert sorted(path.name for path in rows.glob("*.json")) == [
        "TRM-Maze-Fixed-v0__none__solver__s0.json"
    ]
    kept = rows / "TRM-Maze-Fixed-v0__none__solver__s0.json"
    kept.write_text(kept.read_text().replace('"success": 1.0', '"success": 0.5'))
    assert main([*argv, "--resume"]) == 0
    assert '"success": 0.5' in kept.read_text()
    results = json.loads((tmp_path / "results.json").read_text())
    assert [row["success"] for row in results["rows"]] == [0.5]


def test_write_jobs_lists_agents_times_envs_times_seeds(tmp_path):
    path = tmp_path / "jobs.json"
    argv = [
        "bench",
        "--quick",
        "--seeds",
        "3",
        "--envs",
        "TRM-Maze-v0",
        "TRM-Sudoku-v0",
        "--write-jobs",
        str(path),
    ]
    assert main(argv) == 0
    jobs = read_jobs(path)
    assert len(jobs) == 2 * 3 * 5
    assert {job.seed for job in jobs} == {0, 1, 2}


def test_bad_flags_are_one_line_errors(capsys):
    assert main(["bench", "--quick", "--workers", "0", "--write-jobs", "/dev/null"]) == 2
    assert capsys.readouterr().err == "trm-rl: error: --workers must be >= 1, got 0\n"
    with pytest.raises(ValueError, match="workers"):
        main(["--debug", "bench", "--quick", "--workers", "0", "--write-jobs", "/dev/null"])
