"""Packaging: the public names, the namespace mapping and the console script."""

import subprocess
import sys
from pathlib import Path

import pytest

import trm_rl

REPO = Path(__file__).resolve().parents[1]


def test_public_names():
    assert isinstance(trm_rl.__version__, str) and trm_rl.__version__[0].isdigit()
    core = trm_rl.RecursiveCore(trm_rl.TRMConfig(hidden_dim=32), n_tokens=4)
    assert sum(p.numel() for p in core.parameters()) > 0


@pytest.mark.parametrize("name", ["envs", "agents", "benchmarks"])
def test_bare_folder_import_is_refused(name):
    result = subprocess.run(
        [sys.executable, "-c", f"import {name}"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert f"import trm_rl.{name}, not {name}" in result.stderr


@pytest.mark.parametrize("name", ["envs", "agents", "benchmarks"])
def test_folders_import_under_the_package(name):
    module = __import__(f"trm_rl.{name}", fromlist=["_"])
    assert module.__name__ == f"trm_rl.{name}"


def test_console_script_help():
    result = subprocess.run(
        [sys.executable, "-m", "trm_rl.cli", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "demo" in result.stdout


@pytest.mark.slow
def test_demo_runs_and_writes_results(tmp_path):
    out = tmp_path / "speed.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "trm_rl.cli",
            "demo",
            "--repeats",
            "1",
            "--batch",
            "2",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert out.exists() and "params" in out.read_text()
