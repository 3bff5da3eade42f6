"""Supervised control refuses bad data, bad paths and diverged models with one clear error."""

import os
import re
from dataclasses import asdict

import numpy as np
import pytest
import torch

from trm_rl.agents.control import train as train_module
from trm_rl.agents.control.controller import MODEL_FILE, RecursiveController
from trm_rl.agents.control.data import ControlDataset, generate_dataset
from trm_rl.agents.control.model import ControlModelConfig, RecursiveControlModel
from trm_rl.cli import main

TINY = {"hidden_dim": 16, "n_layers": 1, "iterations": 1, "l_cycles": 1}
TINY_FLAGS = ["--hidden-dim", "16", "--n-layers", "1", "--iterations", "1", "--l-cycles", "1"]


@pytest.fixture(scope="module")
def dataset_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("safety") / "train.npz"
    generate_dataset(16, "lqr", seed=0, progress=False).save(path)
    return path


def fields_of(path):
    dataset = ControlDataset.load(path)
    return {**asdict(dataset), "teacher": np.array(dataset.teacher), "seed": np.array(0)}


def train_args(data, out, *extra):
    return [
        "control",
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--batches",
        "2",
        "--batch-size",
        "8",
        "--no-progress",
        "--no-tensorboard",
        *TINY_FLAGS,
        *extra,
    ]


def one_error_line(capsys):
    err = capsys.readouterr().err
    assert err.startswith("trm-rl: error: ") and err.count("\n") == 1, err
    return err


def nan_state(f):
    f["states"][3, 1] = np.nan


def zero_costs(f):
    f["costs"][:] = 0.0


def negative_lqr_cost(f):
    f["lqr_costs"][5] = -1.0


def short_controls(f):
    f["controls"] = f["controls"][:, :50]


def fewer_targets(f):
    f["targets"] = f["targets"][:-1]


def wrong_costs(f):
    f["costs"] = 2.0 * f["costs"]


def far_state(f):
    f["states"][0] = [1e6, 0.0]


def big_control(f):
    f["controls"][2, 7] = 3.0


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (nan_state, r"states must be finite; problem 3"),
        (zero_costs, r"costs must be > 0 .* at problem 0"),
        (negative_lqr_cost, r"lqr_costs must be > 0 .*-1.0 at problem 5"),
        (short_controls, r"controls must have shape \(16, 100\)"),
        (fewer_targets, r"targets must have shape \(16, 2\)"),
        (wrong_costs, r"costs must be the simulated cost of the controls; 16 are not"),
        (far_state, r"states must satisfy \|x\|, \|v\| <= 4.0.*problem 0"),
        (big_control, r"controls must lie in \[-2.0, 2.0\]; problem 2"),
    ],
)
def test_a_bad_dataset_is_refused_naming_the_file_and_the_problem(
    corrupt, message, dataset_path, tmp_path
):
    fields = fields_of(dataset_path)
    corrupt(fields)
    path = tmp_path / "bad.npz"
    np.savez(path, **fields)
    with pytest.raises(ValueError, match=message) as error:
        ControlDataset.load(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("content", ["truncated", "text"])
def test_an_unreadable_file_is_a_value_error_naming_it(content, dataset_path, tmp_path):
    path = tmp_path / "broken.npz"
    data = dataset_path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if content == "truncated" else b"not a dataset\n")
    with pytest.raises(
        ValueError, match=re.escape(str(path)) + ".*(readable control dataset|pickled)"
    ):
        ControlDataset.load(path)
    with pytest.raises(FileNotFoundError, match="control generate"):
        ControlDataset.load(tmp_path / "missing.npz")


def test_train_on_a_nan_dataset_exits_2_and_saves_nothing(dataset_path, tmp_path, capsys):
    fields = fields_of(dataset_path)
    fields["states"][0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", **fields)
    assert main(train_args(tmp_path / "nan.npz", tmp_path / "run")) == 2
    assert "nan.npz" in one_error_line(capsys)
    assert not (tmp_path / "run" / MODEL_FILE).exists()


def test_training_stops_when_the_loss_turns_nan(dataset_path, tmp_path, capsys, monkeypatch):
    calls = []
    real_loss = train_module.iteration_loss

    def loss_nan_from_batch_2(*args):
        loss, parts = real_loss(*args)
        calls.append(1)
        return (loss * np.nan if len(calls) > 2 else loss), parts

    monkeypatch.setattr(train_module, "iteration_loss", loss_nan_from_batch_2)
    assert main(train_args(dataset_path, tmp_path / "run")) == 2
    err = one_error_line(capsys)
    assert "the loss is nan at batch 2, iteration 0" in err and "nothing was saved" in err
    assert not (tmp_path / "run" / MODEL_FILE).exists()


def test_train_refuses_a_non_empty_out_unless_overwrite(dataset_path, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(train_args(dataset_path, run)) == 0
    first = (run / MODEL_FILE).read_bytes()
    assert main(train_args(dataset_path, run, "--seed", "1")) == 2
    err = one_error_line(capsys)
    assert str(run) in err and "--overwrite" in err
    assert (run / MODEL_FILE).read_bytes() == first
    (run / "analysis").mkdir()
    (run / "analysis" / "refinement.json").write_text("{}")
    (run / "notes.txt").write_text("mine")
    assert main(train_args(dataset_path, run, "--seed", "1", "--overwrite")) == 0
    assert (run / MODEL_FILE).read_bytes() != first
    assert not (run / "analysis").exists() and (run / "notes.txt").read_text() == "mine"
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_generate_checks_its_output_before_solving(tmp_path, capsys, monkeypatch):
    out = tmp_path / "data.npz"
    out.write_bytes(b"previous")
    args = ["control", "generate", "--n", "4", "--teacher", "lqr", "--no-progress"]

    def never(*args, **kwargs):
        raise AssertionError("solved before checking --out")

    with monkeypatch.context() as patch:
        patch.setattr("trm_rl.cli.control.generate_dataset", never)
        assert main([*args, "--out", str(out)]) == 2
        assert str(out) in one_error_line(capsys) and out.read_bytes() == b"previous"
        assert main([*args, "--out", str(out / "inside.npz")]) == 2
        one_error_line(capsys)
        assert main([*args, "--out", str(tmp_path)]) == 2
        assert "is a directory" in one_error_line(capsys)
    assert main([*args, "--out", str(out), "--overwrite"]) == 0
    assert len(ControlDataset.load(out)) == 4


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_generate_into_an_unwritable_folder_fails_before_solving(tmp_path, capsys, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    monkeypatch.setattr("trm_rl.cli.control.generate_dataset", None)
    out = locked / "data.npz"
    assert main(["control", "generate", "--n", "4", "--out", str(out), "--no-progress"]) == 2
    assert "Permission denied" in one_error_line(capsys)


def test_an_interrupted_save_leaves_the_previous_dataset(dataset_path, tmp_path, monkeypatch):
    path = tmp_path / "data.npz"
    dataset = ControlDataset.load(dataset_path)
    dataset.save(path)
    before = path.read_bytes()

    def dies_midway(file, **arrays):
        file.write(b"PK partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        dataset.save(path)
    assert path.read_bytes() == before and sorted(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize(
    ("states", "targets", "message"),
    [
        ([[1e6, 0.0]], None, r"states must be finite with \|x\|, \|v\| <= 4.0.*row 0"),
        ([[0.0, 1.0], [np.nan, 0.0]], None, r"states must be finite.*row 1"),
        ([[0.0, 1.0]], [[0.0, -3.5]], r"targets must be finite with \|x\|, \|v\| <= 3.0"),
    ],
)
def test_plan_refuses_states_out_of_range_instead_of_returning_zeros(states, targets, message):
    controller = RecursiveController(RecursiveControlModel(ControlModelConfig(**TINY)))
    with pytest.raises(ValueError, match=message):
        controller.plan(states, targets)
    assert controller.plan([[4.0, -4.0]], [[3.0, 3.0]]).shape == (1, 100)


def test_a_model_with_nan_weights_is_refused_and_analyze_exits_2(tmp_path, capsys):
    model = RecursiveControlModel(ControlModelConfig(**TINY))
    directory = RecursiveController(model).save(tmp_path / "run")
    with torch.no_grad():
        model.decoder.bias[0] = float("nan")
    with pytest.raises(ValueError, match=r"non-finite weights \(decoder\.bias\)"):
        RecursiveController(model)
    torch.save(model.state_dict(), directory / MODEL_FILE)
    with pytest.raises(ValueError, match=re.escape(str(directory / MODEL_FILE)) + ".*non-finite"):
        RecursiveController.load(directory)
    assert main(["control", "analyze", str(directory), "--n", "2", "--no-progress"]) == 2
    assert "non-finite weights" in one_error_line(capsys)


def test_a_truncated_or_mismatched_model_is_a_value_error_naming_the_file(tmp_path):
    directory = RecursiveController(RecursiveControlModel(ControlModelConfig(**TINY))).save(
        tmp_path / "run"
    )
    weights = (directory / MODEL_FILE).read_bytes()
    (directory / MODEL_FILE).write_bytes(weights[: len(weights) // 2])
    with pytest.raises(
        ValueError, match=re.escape(str(directory / MODEL_FILE)) + " holds no weights"
    ):
        RecursiveController.load(directory)
    other = RecursiveControlModel(ControlModelConfig(**{**TINY, "hidden_dim": 8}))
    torch.save(other.state_dict(), directory / MODEL_FILE)
    with pytest.raises(ValueError, match="holds no weights for the model of"):
        RecursiveController.load(directory)
    (directory / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"config\.json does not describe a control model"):
        RecursiveController.load(directory)
