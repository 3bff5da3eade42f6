"""``trm-rl bench`` end to end with a tiny budget, and its job file."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trm_rl.benchmarks import bench
from trm_rl.benchmarks.jobs import build_jobs, read_jobs
from trm_rl.benchmarks.report import ROW_FIELDS
from trm_rl.cli import main

TINY = [
    "bench",
    "--preset",
    "quick",
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
    out = tmp_path / "run"
    argv = [*TINY, "--agents", "trm-k3", "mlp", "solver", "--out", str(out)]
    assert main([*argv, "--control-results", str(control)]) == 0
    printed = capsys.readouterr().out
    assert "### TRM-Maze-Fixed-v0 · ppo" in printed
    assert "| cost | cost | 93,732 | +0.105% | 99.6% | 0.73 ms | 340x |" in printed
    assert "| LQR teacher | - | - | +1.710% | 100.0% |" in printed
    results = json.loads((out / "results.json").read_text())
    rows = results["rows"]
    assert sorted(row["agent"] for row in rows) == ["mlp", "solver", "trm-k3"]
    for row in rows:
        assert set(ROW_FIELDS) <= set(row)
    learners = [row for row in rows if row["agent"] != "solver"]
    assert all(row["params"] > 0 and row["steps_per_s"] > 0 for row in learners)
    mlp, trm = (next(r for r in rows if r["agent"] == a) for a in ("mlp", "trm-k3"))
    assert mlp["params"] >= trm["params"]
    assert results["meta"]["versions"]["torch"]
    assert (out / "results.md").read_text().count("| trm-k3 |") == 1
    assert (out / "curve_TRM-Maze-Fixed-v0_ppo.png").exists()
    assert (out / "aggregate_ppo.png").exists()
    assert f"plots in {out}: aggregate_ppo.png, curve_TRM-Maze-Fixed-v0_ppo.png" in printed
    assert "supervised recursive control" in (out / "results.md").read_text()
    assert main([*argv, "--report-only", "--control-results", str(tmp_path / "none.json")]) == 0
    assert "VanDerPol" not in (out / "results.md").read_text()


REFERENCES_ONLY = [*TINY[:-1], "TRM-Maze-Fixed-v0", "--agents", "solver", "random"]
REFERENCES_ONLY[REFERENCES_ONLY.index("--seeds") + 1] = "2"


def names(out):
    return sorted(path.name for path in (out / "rows").glob("*.json"))


@pytest.mark.slow
def test_resume_after_an_interrupted_run_runs_only_the_missing_jobs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [arg.replace("quick", "standard") for arg in REFERENCES_ONLY]
    assert main(argv) == 0
    out = tmp_path / "bench-runs" / "standard"  # the default --out, in the working directory
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench-runs"]
    finished = names(out)
    assert len(finished) == 4
    kept, lost = out / "rows" / finished[0], out / "rows" / finished[1]
    kept.write_text(kept.read_text().replace('"seed": ', '"note": "kept",\n "seed": '))
    lost.unlink()
    assert main([*argv, "--resume"]) == 0
    assert names(out) == finished
    assert '"note": "kept"' in kept.read_text()
    assert '"note"' not in lost.read_text()
    results = json.loads((out / "results.json").read_text())
    assert len(results["rows"]) == 4


def test_a_non_empty_out_is_refused_without_resume_or_overwrite(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main([*REFERENCES_ONLY, "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"trm-rl: error: --out {tmp_path} is not empty")
    assert "--resume" in error and "--overwrite" in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_resume_refuses_other_settings_naming_them(tmp_path, capsys):
    (tmp_path / "rows").mkdir()
    (tmp_path / "rows" / "x.json").write_text("{}")
    saved = {"preset": "quick", "env_budgets": {"TRM-Maze-Fixed-v0": 256}, "seeds": [0, 1, 2]}
    (tmp_path / "settings.json").write_text(json.dumps(saved))
    assert main([*REFERENCES_ONLY, "--out", str(tmp_path), "--resume"]) == 2
    error = capsys.readouterr().err
    assert "other settings" in error and "seeds: [0, 1, 2] there, [0, 1] now" in error
    assert "eval_episodes" in error
    assert (tmp_path / "rows" / "x.json").read_text() == "{}"


def test_overwrite_deletes_only_what_a_bench_run_writes(tmp_path):
    for name in ("rows", "tb"):
        (tmp_path / name).mkdir()
    (tmp_path / "rows" / "old.json").write_text("{}")
    (tmp_path / "curve_old.png").write_bytes(b"png")
    (tmp_path / "notes.txt").write_text("mine")
    bench.prepare_out(tmp_path, {name: 0 for name in bench.RUN_SETTINGS}, False, True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "settings.json"]


def test_ray_executor_without_ray_is_a_one_line_error(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)
    argv = [*REFERENCES_ONLY, "--executor", "ray", "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        "trm-rl: error: --executor ray needs ray, which is not installed: "
        'pip install "trm-rl[cluster]"\n'
    )
    assert not (tmp_path / "run").exists()


TIMING = ("wall_seconds", "train_seconds", "steps_per_s", "cpu_steps_per_s")


@pytest.mark.slow
def test_ray_runs_the_same_jobs_to_the_same_rows_as_the_process_pool(tmp_path):
    ray = pytest.importorskip("ray")
    jobs = build_jobs(
        ["trm-k1", "solver", "random"], {"TRM-Maze-Fixed-v0": 256}, ["ppo"], [0], 3, 1
    )
    rows = {}
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        for executor in ("ray", "process"):
            out = tmp_path / executor
            found = bench.run_jobs(jobs, out, workers=2, executor=executor)
            rows[executor] = [{k: v for k, v in r.items() if k not in TIMING} for r in found]
            for row in rows[executor]:
                row["curve"] = [point[:2] for point in row["curve"] or []]
            assert names(out) == sorted(f"{job.name}.json" for job in jobs)
    finally:
        ray.shutdown()
    assert rows["ray"] == rows["process"]
    assert len(rows["ray"]) == 3


def test_write_jobs_lists_agents_times_envs_times_seeds(tmp_path):
    path = tmp_path / "jobs.json"
    argv = [
        "bench",
        "--preset",
        "quick",
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
    assert len(jobs) == 2 * 3 * 6  # the quick preset: 4 learners and 2 references
    assert {job.seed for job in jobs} == {0, 1, 2}


def test_bad_flags_are_one_line_errors(capsys):
    assert main(["bench", "--workers", "0", "--write-jobs", "/dev/null"]) == 2
    assert capsys.readouterr().err == "trm-rl: error: --workers must be >= 1, got 0\n"
    with pytest.raises(ValueError, match="workers"):
        main(["--debug", "bench", "--workers", "0", "--write-jobs", "/dev/null"])


@pytest.mark.parametrize("shortest_first", [False, True])
def test_jobs_run_by_estimated_cost(tmp_path, monkeypatch, shortest_first):
    submitted = []

    def record(jobs, out, workers):
        submitted.extend(job.estimated_seconds for job in jobs)
        return iter(())

    monkeypatch.setattr(bench, "_process_pool", record)
    jobs = build_jobs(["trm-k3", "mlp", "random"], {"TRM-Maze-v0": 1000}, ["ppo"], [0], 4)
    bench.run_jobs(jobs, tmp_path, shortest_first=shortest_first)
    assert len(submitted) == 3 and len(set(submitted)) == 3
    assert submitted == sorted(submitted, reverse=not shortest_first)


def child_pids(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to list the workers")
def test_sigterm_stops_the_bench_and_its_workers_with_a_resume_hint(tmp_path):
    out = tmp_path / "run"
    argv = [*TINY, "--timesteps", "200000", "--seeds", "2", "--agents", "trm-k3", "--out", str(out)]
    command = [sys.executable, "-c", "from trm_rl.cli import main; raise SystemExit(main())"]
    process = subprocess.Popen(
        [*command, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while time.monotonic() < deadline and len(workers) < 2:
        time.sleep(0.5)
        workers = [pid for pid in child_pids(process.pid) if child_pids(pid) == []]
        workers = [
            pid for pid in workers if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()
        ]
    assert len(workers) == 2, "the bench never started its two workers"
    time.sleep(2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM
    assert "stopped by SIGTERM" in stderr and "--resume" in stderr
    assert "Traceback" not in stderr
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
