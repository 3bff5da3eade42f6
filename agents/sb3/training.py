"""Build an environment and an SB3 model from a :class:`TrainConfig`, train, save.

Used by ``trm-rl train`` and by the benchmarks. An agent directory holds ``config.json``
(the :class:`TrainConfig` fields plus ``trm`` and ``trm_rl_version``), ``model.zip`` and,
unless told otherwise, TensorBoard logs under ``tb/``.

Saving: :func:`train` with ``out`` refuses a directory that already holds files unless
``resume=True`` (continue that run: same settings, a larger or equal ``timesteps`` budget) or
``overwrite=True`` (delete the old run's files first). ``model.zip`` is SB3's format plus a
``trm_rl_checkpoint.json`` member (step counters and random-number-generator states); it is
rewritten atomically every ``checkpoint_every`` env steps, at the end, and on SIGINT/SIGTERM.
"""

from __future__ import annotations

import base64
import contextlib
import inspect
import io
import json
import random
import shutil
import signal
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecEnv

import trm_rl.envs  # noqa: F401  (registers the TRM-* ids)
from trm_rl.agents.loading import load_policy_weights
from trm_rl.agents.network import parameter_count
from trm_rl.agents.sb3.callbacks import (
    FiniteCheckCallback,
    RandomCyclesCallback,
    RunCheckpointCallback,
    TrainingDiverged,
    TRMDiagnosticsCallback,
)
from trm_rl.agents.sb3.hyperparams import ALGOS, MASKABLE_ALGOS, recipe
from trm_rl.agents.sb3.outcome import MaskableOutcomeLearner, check_outcome_settings
from trm_rl.agents.sb3.policy import MaskableTRMPolicy, TRMPolicy
from trm_rl.atomic import atomic_path, atomic_write_text
from trm_rl.config import require_bool, require_int, require_number

POLICIES = ("trm", "mlp")
DEFAULT_CHECKPOINT_EVERY = 25_000
"""Env steps between two checkpoints of :func:`train` (saved at the first rollout boundary
at or after each interval)."""
CHECKPOINT_MEMBER = "trm_rl_checkpoint.json"
"""The member of ``model.zip`` with the counters and RNG states a resumed run restores."""
CHECKPOINT_KEYS = (
    "num_timesteps",
    "n_updates",
    "episode_num",
    "torch_rng",
    "numpy_rng",
    "python_rng",
    "env_rngs",
)
"""The fields of :data:`CHECKPOINT_MEMBER` (see :func:`checkpoint_state`)."""
RUN_FILES = ("config.json", "model.zip", "tb", "model.pt", "checkpoint.pt", "checkpoint.pt.tmp")
"""What ``trm-rl train`` writes into a run directory (SB3 and REINFORCE runs); ``overwrite``
deletes these (and stray ``.*.tmp*`` files of interrupted atomic writes) and nothing else."""
RESUMABLE_CHANGES = ("timesteps", "device")
"""TrainConfig fields a resumed run may change; every other setting must match the run's."""

_INT_KWARGS = ("n_steps", "batch_size", "n_epochs")
_UNIT_KWARGS = ("gamma", "gae_lambda")
_NON_NEGATIVE_KWARGS = ("ent_coef", "vf_coef", "max_grad_norm")


@dataclass(frozen=True)
class TrainConfig:
    """One training run; ``None`` fields take the env's recommended value
    (:mod:`trm_rl.agents.sb3.hyperparams`)."""

    env_id: str
    """A registered Gymnasium id, e.g. ``"TRM-Maze-v0"``."""
    algo: str | None = None
    """One of :data:`~trm_rl.agents.sb3.hyperparams.ALGOS`: ``"ppo"``, ``"a2c"``,
    ``"maskable-ppo"`` or ``"maskable-outcome"``."""
    policy: str = "trm"
    """``"trm"`` (TRMPolicy / MaskableTRMPolicy) or ``"mlp"`` (SB3's MlpPolicy)."""
    timesteps: int = 100_000
    """Environment steps to train for (summed over envs); SB3 rounds up to whole rollouts."""
    seed: int = 0
    """Seeds torch, the algorithm and the training envs (``seed .. seed + n_envs - 1``)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for ``gym.make``."""
    n_envs: int | None = None
    """Parallel environments."""
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    """Overrides of the recommended policy keyword arguments (TRM settings for ``"trm"``)."""
    algo_kwargs: dict[str, Any] = field(default_factory=dict)
    """Overrides of the recommended algorithm keyword arguments."""
    device: str = "auto"
    """Torch device, ``"auto"`` as in SB3."""
    random_h_cycles: tuple[int, int] | None = None
    """``(low, high)``: draw the TRM policy's outer cycles H from ``low..high`` for every
    rollout and its update (:class:`~trm_rl.agents.sb3.callbacks.RandomCyclesCallback`);
    the policy keeps its own H (``policy_kwargs``) for evaluation. ``None``: always H."""
    init_from: str | None = None
    """A trained agent directory (or ``"pretrained:<name>"``) whose policy weights start
    the run instead of a random initialisation (fine-tuning; a size curriculum with a
    position-free grid policy); its parameter names and shapes must match this run's.
    The optimizer and the learning-rate schedule start afresh. ``None``: random weights."""

    def __post_init__(self) -> None:
        if not isinstance(self.env_id, str) or not self.env_id:
            raise ValueError(f"env_id must be a registered environment id, got {self.env_id!r}")
        if self.algo is not None and self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {ALGOS}, got {self.algo!r}")
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {self.policy!r}")
        require_int("timesteps", self.timesteps, 1)
        require_int("seed", self.seed, 0)
        require_int("n_envs", self.n_envs, 1, allow_none=True)
        for name in ("env_kwargs", "policy_kwargs", "algo_kwargs"):
            if not isinstance(getattr(self, name), dict):
                raise TypeError(f"{name} must be a dict, got {type(getattr(self, name)).__name__}")
        algo_kwargs = self.resolved_algo_kwargs()
        check_algo_kwargs(self.resolved_algo, algo_kwargs)
        if self.resolved_algo == "maskable-outcome":
            check_outcome_settings(algo_kwargs.get("hindsight"), self.resolved_policy_kwargs())
        with_schedules(algo_kwargs)
        self._check_random_h_cycles()
        if self.init_from is not None:
            if not isinstance(self.init_from, str | Path) or not str(self.init_from):
                raise TypeError(
                    f"init_from must be an agent directory or 'pretrained:<name>', "
                    f"got {self.init_from!r}"
                )
            object.__setattr__(self, "init_from", str(self.init_from))

    def _check_random_h_cycles(self) -> None:
        if self.random_h_cycles is None:
            return
        pair = self.random_h_cycles
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise ValueError(f"random_h_cycles must be a pair (low, high), got {pair!r}")
        require_int("random_h_cycles low", pair[0], 1)
        require_int("random_h_cycles high", pair[1], pair[0])
        object.__setattr__(self, "random_h_cycles", (pair[0], pair[1]))
        if self.policy != "trm" or self.resolved_policy_kwargs().get("shared_weights") is False:
            raise ValueError(
                "random_h_cycles needs the TRM policy with shared weights (the same block at "
                "every cycle)"
            )

    @property
    def resolved_algo(self) -> str:
        """The algorithm, the env's recommended one if ``algo`` is None."""
        return self.algo or recipe(self.env_id).algo

    @property
    def resolved_n_envs(self) -> int:
        """The number of envs, the env's recommended one if ``n_envs`` is None."""
        return self.n_envs if self.n_envs is not None else recipe(self.env_id).n_envs

    @property
    def rollout_steps(self) -> int:
        """Env steps of one rollout, ``n_steps * n_envs`` (SB3's default ``n_steps`` if unset):
        the smallest amount SB3 trains, and the unit it rounds ``timesteps`` up to."""
        n_steps = self.resolved_algo_kwargs().get("n_steps")
        if n_steps is None:
            n_steps = (
                inspect.signature(algorithm_class(self.resolved_algo)).parameters["n_steps"].default
            )
        return n_steps * self.resolved_n_envs

    def resolved_policy_kwargs(self) -> dict[str, Any]:
        """Recommended policy keyword arguments updated by ``policy_kwargs``."""
        base = recipe(self.env_id)
        return {**(base.trm if self.policy == "trm" else base.mlp), **self.policy_kwargs}

    def resolved_algo_kwargs(self) -> dict[str, Any]:
        """Recommended algorithm keyword arguments updated by ``algo_kwargs``. A recommended
        PPO ``batch_size`` larger than the rollout (``n_steps * n_envs``, e.g. with fewer
        envs) is reduced to the rollout size."""
        kwargs = recipe(self.env_id).algo_kwargs(self.resolved_algo)
        if "batch_size" in kwargs and "n_steps" in kwargs:
            rollout = kwargs["n_steps"] * self.resolved_n_envs
            kwargs["batch_size"] = min(kwargs["batch_size"], rollout)
        return {**kwargs, **self.algo_kwargs}


SCHEDULED = ("learning_rate", "clip_range")
"""Algorithm arguments that accept an rl-zoo style ``"lin_<start>"`` string: a linear decay
from ``start`` to 0 over the ``learn`` call (SB3's ``LinearSchedule``)."""


def with_schedules(algo_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``algo_kwargs`` with ``"lin_<start>"`` strings replaced by SB3 schedules."""
    resolved = dict(algo_kwargs)
    for name in SCHEDULED:
        value = resolved.get(name)
        if not isinstance(value, str):
            continue
        try:
            start = float(value.removeprefix("lin_")) if value.startswith("lin_") else None
        except ValueError:
            start = None
        if start is None or not start > 0:
            raise ValueError(
                f'{name} must be a number or "lin_<start>" with start > 0, got {value!r}'
            )
        resolved[name] = LinearSchedule(start, 0.0, 1.0)
    return resolved


SET_BY_TRAINER = ("policy", "env", "policy_kwargs", "seed", "device", "tensorboard_log")
"""Algorithm arguments that :func:`make_model` sets from the rest of the config."""


def check_algo_kwargs(algo: str, algo_kwargs: dict[str, Any]) -> None:
    """Raise naming any key of ``algo_kwargs`` that ``algo``'s constructor does not take
    publicly or that the trainer sets itself (:data:`SET_BY_TRAINER`), or a common numeric
    setting out of range: ``n_steps``, ``n_epochs`` ints >= 1, ``batch_size`` >= 2 (PPO's
    advantage normalisation needs two samples);
    ``learning_rate``, ``clip_range`` > 0 (or a schedule); ``gamma``, ``gae_lambda`` in
    [0, 1]; ``ent_coef``, ``vf_coef``, ``max_grad_norm`` >= 0."""
    parameters = inspect.signature(algorithm_class(algo)).parameters
    accepted = {name for name in parameters if not name.startswith("_")} - set(SET_BY_TRAINER)
    unknown = sorted(set(algo_kwargs) - accepted)
    if unknown:
        raise ValueError(
            f"algo_kwargs has {unknown}, which {algo} does not take here; allowed: "
            f"{sorted(accepted)} ({', '.join(SET_BY_TRAINER)} come from the other settings)"
        )
    for name, value in algo_kwargs.items():
        label = f"algo_kwargs[{name!r}]"
        if name in _INT_KWARGS:
            require_int(label, value, 2 if name == "batch_size" else 1)
        elif name in SCHEDULED and not (isinstance(value, str) or callable(value)):
            require_number(label, value, 0.0, low_open=True)
        elif name in _UNIT_KWARGS:
            require_number(label, value, 0.0, 1.0)
        elif name in _NON_NEGATIVE_KWARGS:
            require_number(label, value, 0.0)


def make_env(config: TrainConfig) -> VecEnv:
    """The training ``DummyVecEnv`` (Monitor-wrapped), seeded with ``config.seed``."""
    return make_vec_env(
        config.env_id,
        n_envs=config.resolved_n_envs,
        seed=config.seed,
        env_kwargs=config.env_kwargs,
    )


def algorithm_class(algo: str) -> type[BaseAlgorithm]:
    """The SB3 class of ``algo`` (the maskable ones need sb3-contrib)."""
    if algo == "maskable-ppo":
        from sb3_contrib import MaskablePPO

        return MaskablePPO
    if algo == "maskable-outcome":
        return MaskableOutcomeLearner
    return {"ppo": PPO, "a2c": A2C}[algo]


def make_model(
    config: TrainConfig,
    env: VecEnv | None = None,
    tensorboard: str | Path | None = None,
    policy_kwargs: dict[str, Any] | None = None,
) -> BaseAlgorithm:
    """An untrained SB3 model for ``config`` (``env`` defaults to :func:`make_env`).

    ``policy_kwargs``, when given, are the policy's keyword arguments as they are (a saved
    agent's recorded ones), instead of ``config.resolved_policy_kwargs()``: a key today's
    recipe has and the record lacks then takes the policy's own default.
    """
    algo = config.resolved_algo
    if config.policy == "mlp":
        policy: Any = "MlpPolicy"
    else:
        policy = MaskableTRMPolicy if algo in MASKABLE_ALGOS else TRMPolicy
    torch.manual_seed(config.seed)
    return algorithm_class(algo)(
        policy,
        env if env is not None else make_env(config),
        policy_kwargs=config.resolved_policy_kwargs() if policy_kwargs is None else policy_kwargs,
        seed=config.seed,
        device=config.device,
        tensorboard_log=None if tensorboard is None else str(tensorboard),
        **with_schedules(config.resolved_algo_kwargs()),
    )


def matched_mlp_config(config: TrainConfig) -> TrainConfig:
    """The MLP baseline of a TRM run: ``config`` with SB3's MlpPolicy and
    ``net_arch=dict(pi=[h, h], vf=[h, h])``, ``h`` the smallest width whose policy has at
    least as many parameters as the TRM policy of ``config``."""
    trm = replace(config, policy="trm", n_envs=1)
    env = make_env(trm)
    target = parameter_count(make_model(trm, env).policy)

    def candidate(width: int) -> TrainConfig:
        arch = {"net_arch": {"pi": [width, width], "vf": [width, width]}}
        return replace(config, policy="mlp", policy_kwargs=arch)

    def count(width: int) -> int:
        kwargs = candidate(width).resolved_policy_kwargs()
        space_args = (env.observation_space, env.action_space, lambda _: 0.0)
        return parameter_count(ActorCriticPolicy(*space_args, **kwargs))

    low, high = 1, 1024
    try:
        if count(high) < target:
            raise ValueError(f"no MLP width up to {high} reaches the TRM's {target} parameters")
        while low < high:
            middle = (low + high) // 2
            low, high = (middle + 1, high) if count(middle) < target else (low, middle)
    finally:
        env.close()
    return candidate(low)


def trm_settings(model: BaseAlgorithm) -> dict[str, Any] | None:
    """The TRMConfig fields of a model's TRM policy, or ``None`` for other policies."""
    trm_config = getattr(model.policy, "trm_config", None)
    return None if trm_config is None else trm_config.to_dict()


def run_settings(config: TrainConfig) -> dict[str, Any]:
    """The :class:`TrainConfig` fields as ``config.json`` holds them: resolved (recipe
    values filled in) and JSON-normalised (tuples as lists, classes by name)."""
    record = {
        **asdict(config),
        "algo": config.resolved_algo,
        "n_envs": config.resolved_n_envs,
        "policy_kwargs": _jsonable(config.resolved_policy_kwargs()),
        "algo_kwargs": _jsonable(config.resolved_algo_kwargs()),
    }
    return json.loads(json.dumps(record))


def config_record(config: TrainConfig, model: BaseAlgorithm) -> dict[str, Any]:
    """The ``config.json`` of an agent directory."""
    from trm_rl import __version__

    return {**run_settings(config), "trm": trm_settings(model), "trm_rl_version": __version__}


def _jsonable(mapping: dict[str, Any]) -> dict[str, Any]:
    """``mapping`` with values JSON cannot hold (classes, callables) written as names."""
    return {
        key: value
        if isinstance(value, str | int | float | bool | list | dict | None)
        else (getattr(value, "__name__", repr(value)))
        for key, value in mapping.items()
    }


def prepare_run_dir(out: str | Path, *, resume: bool = False, overwrite: bool = False) -> Path:
    """Create ``out`` if needed, check that it can be written, and apply the run-directory
    rules: a directory holding files is refused unless ``resume`` (keep them, to continue
    the run) or ``overwrite`` (delete the old run's files, :data:`RUN_FILES`, so two runs'
    models and TensorBoard logs never mix).

    Raises:
        ValueError: both ``resume`` and ``overwrite``.
        PermissionError: ``out`` cannot be created or written.
        FileExistsError: ``out`` holds files and neither flag is set, or with ``overwrite``
            it holds files a run does not write (they are never deleted).
        FileNotFoundError: ``resume`` and ``out`` holds no run.
    """
    require_bool("resume", resume)
    require_bool("overwrite", overwrite)
    if resume and overwrite:
        raise ValueError("--resume continues the run in --out and --overwrite deletes it: pick one")
    out = Path(out)
    if resume and not (out / "config.json").is_file():
        raise FileNotFoundError(f"nothing to resume in {out}: it has no config.json")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        raise PermissionError(
            f"cannot write the run directory {out}: {error.strerror or error}"
        ) from error
    if resume:
        return out
    present = sorted(path.name for path in out.iterdir())
    if not present:
        return out
    if not overwrite:
        raise FileExistsError(
            f"{out} is not empty ({', '.join(present[:4])}{', ...' if len(present) > 4 else ''}"
            "); pass --resume to continue the run in it or --overwrite to replace that run"
        )
    foreign = [name for name in present if name not in RUN_FILES and not _stray_temporary(name)]
    if foreign:
        raise FileExistsError(
            f"--overwrite deletes only a run's own files, and {out} also holds {foreign}: "
            "choose an empty or new --out"
        )
    for name in present:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    return out


def _stray_temporary(name: str) -> bool:
    """Whether ``name`` is a leftover of an interrupted :func:`trm_rl.atomic.atomic_path`."""
    return name.startswith(".") and ".tmp" in name


def read_run_config(out: str | Path) -> dict[str, Any]:
    """``out/config.json`` as a dict; ``ValueError`` naming the file if it is not one."""
    path = Path(out) / "config.json"
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error})") from error
    if not isinstance(record, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(record).__name__}")
    return record


def check_same_run(
    out: str | Path, requested: dict[str, Any], ignore: tuple[str, ...] = ()
) -> None:
    """Raise ``ValueError`` naming every setting of ``requested`` (other than ``ignore``)
    that differs from the run saved in ``out/config.json`` (only ``algo`` if that differs:
    the rest of another algorithm's settings cannot compare)."""
    saved = read_run_config(out)
    names = [name for name in requested if name not in ignore]
    if "algo" in requested and saved.get("algo") != requested["algo"]:
        names = ["algo"]
    mismatches = [
        line for name in names for line in _differences(name, saved.get(name), requested[name])
    ]
    if mismatches:
        raise ValueError(
            f"--resume: the run in {out} has other settings ({'; '.join(mismatches)}); "
            "repeat its settings, or pass --overwrite instead to start afresh"
        )


def _differences(name: str, saved: Any, requested: Any) -> list[str]:
    """``"name: <saved> there, <requested> now"`` for each differing value, dicts compared
    key by key (``"policy_kwargs.hidden_dim: ..."``)."""
    if isinstance(saved, dict) and isinstance(requested, dict):
        keys = sorted(set(saved) | set(requested))
        return [
            line
            for key in keys
            for line in _differences(f"{name}.{key}", saved.get(key), requested.get(key))
        ]
    return [] if saved == requested else [f"{name}: {saved!r} there, {requested!r} now"]


def checkpoint_state(model: BaseAlgorithm, trained_steps: int) -> dict[str, Any]:
    """The counters and random-number-generator states a resumed run restores (JSON)."""
    numpy_state = np.random.get_state(legacy=False)
    version, internal, gauss = random.getstate()
    return {
        "num_timesteps": trained_steps,
        "n_updates": int(getattr(model, "_n_updates", 0)),
        "episode_num": int(model._episode_num),
        "torch_rng": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode(),
        "numpy_rng": {
            **numpy_state,
            "state": {**numpy_state["state"], "key": numpy_state["state"]["key"].tolist()},
        },
        "python_rng": [version, list(internal), gauss],
        "env_rngs": [rng.bit_generator.state for rng in model.get_env().get_attr("np_random")],
    }


def save_checkpoint(model: BaseAlgorithm, out: str | Path, trained_steps: int) -> None:
    """Atomically write ``out/model.zip`` (SB3's format) with :func:`checkpoint_state` as
    its :data:`CHECKPOINT_MEMBER`; ``trained_steps`` (the env steps the weights were
    trained on) becomes the model's ``num_timesteps``."""
    model.num_timesteps = trained_steps
    state = checkpoint_state(model, trained_steps)
    with atomic_path(Path(out) / "model.zip") as temporary:
        model.save(temporary)
        with zipfile.ZipFile(temporary, "a") as archive:
            archive.writestr(CHECKPOINT_MEMBER, json.dumps(state))


def load_checkpoint(model: BaseAlgorithm, path: str | Path) -> int:
    """Restore a checkpoint written by :func:`save_checkpoint` into ``model`` (built from
    the same config); returns the env steps already trained.

    Restored: the policy's weights and the optimizer's state (read with
    ``torch.load(weights_only=True)``, nothing unpickled), the step, update and episode
    counters (so learning-rate and clip-range schedules continue where they stopped), the
    global torch (CPU), numpy and Python RNG states, and each training env's ``np_random``
    (in-process envs, e.g. ``DummyVecEnv``). Not restored: the episodes in progress (every
    env starts a new one, drawn from its restored RNG), the partial rollout of an
    interruption (retaken), the ``rollout/`` episode statistics window, CUDA RNG states;
    so a resumed run is a faithful continuation, not a bit-identical replay.

    Raises:
        FileNotFoundError: no ``path``.
        ValueError: ``path`` is not a zip with a complete :data:`CHECKPOINT_MEMBER`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"nothing to resume: {path} does not exist (the run stopped before its first "
            "checkpoint); pass --overwrite to start afresh"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if CHECKPOINT_MEMBER not in names:
                raise ValueError(
                    f"{path} has no {CHECKPOINT_MEMBER} (not saved by trm-rl train's "
                    "checkpoints), so it cannot be resumed; pass --overwrite to start afresh"
                )
            state = json.loads(archive.read(CHECKPOINT_MEMBER))
            missing = [key for key in CHECKPOINT_KEYS if key not in state]
            if missing:
                raise ValueError(f"{path}: {CHECKPOINT_MEMBER} lacks {missing}")
            weights = _load_tensors(archive, "policy.pth", model.device)
            optimizer = _load_tensors(archive, "policy.optimizer.pth", model.device)
    except zipfile.BadZipFile as error:
        raise ValueError(f"{path} is not a zip archive ({error})") from error
    model.policy.load_state_dict(weights)
    model.policy.optimizer.load_state_dict(optimizer)
    model.num_timesteps = state["num_timesteps"]
    model._episode_num = state["episode_num"]
    if hasattr(model, "_n_updates"):
        model._n_updates = state["n_updates"]
    torch.set_rng_state(torch.tensor(list(base64.b64decode(state["torch_rng"])), dtype=torch.uint8))
    numpy_state = state["numpy_rng"]
    key = np.asarray(numpy_state["state"]["key"], dtype=np.uint32)
    np.random.set_state({**numpy_state, "state": {**numpy_state["state"], "key": key}})
    version, internal, gauss = state["python_rng"]
    random.setstate((version, tuple(internal), gauss))
    env = model.get_env()
    env.unwrapped._reset_seeds()
    for rng, rng_state in zip(env.get_attr("np_random"), state["env_rngs"], strict=True):
        rng.bit_generator.state = rng_state
    return state["num_timesteps"]


def _load_tensors(archive: zipfile.ZipFile, name: str, device: torch.device) -> dict[str, Any]:
    """The state dict stored as ``name`` in an SB3 zip, read weights-only."""
    return torch.load(io.BytesIO(archive.read(name)), map_location=device, weights_only=True)


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped :func:`train`; the checkpoint was saved first.

    Attributes:
        signal_number: the signal received.
        out: the run directory holding the checkpoint.
        num_timesteps: env steps the saved weights were trained on.
    """

    def __init__(self, signal_number: int, out: Path, num_timesteps: int, total: int) -> None:
        name = signal.Signals(signal_number).name
        super().__init__(
            f"{name} after {num_timesteps} of {total} env steps; checkpoint saved in "
            f"{out}/model.zip"
        )
        self.signal_number = signal_number
        self.out = out
        self.num_timesteps = num_timesteps


@contextlib.contextmanager
def stop_on_signals(request_stop: Callable[[int], None]) -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM call ``request_stop(signal_number)`` instead of
    interrupting; the previous handlers are restored after it. Outside the main thread
    (where Python cannot set handlers) the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {
        number: signal.signal(number, lambda received, _frame: request_stop(received))
        for number in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def train(
    config: TrainConfig,
    out: str | Path | None = None,
    tensorboard: str | Path | None = None,
    progress_bar: bool = False,
    env: VecEnv | None = None,
    callbacks: list[BaseCallback] | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
) -> BaseAlgorithm:
    """Train a model; with ``out``, keep ``out/model.zip`` and ``out/config.json``.

    ``out`` is prepared before anything is built (:func:`prepare_run_dir`: created, checked
    writable, refused if it holds files unless ``resume`` or ``overwrite``), and
    ``config.json`` is written before training. ``model.zip`` is a checkpoint
    (:func:`save_checkpoint`, atomic) every ``checkpoint_every`` env steps, at the end and,
    on SIGINT/SIGTERM (handlers installed only during ``learn``), before
    :class:`TrainingInterrupted` is raised. A parameter or loss that becomes NaN or infinite
    stops training with ``ValueError`` (:class:`FiniteCheckCallback`); the last good
    checkpoint stays.

    Args:
        config: what to train.
        out: agent directory; ``None`` saves nothing.
        tensorboard: TensorBoard log directory; defaults to ``out/tb`` when ``out`` is set.
        progress_bar: show SB3's progress bar (tqdm/rich).
        env: a training VecEnv to use instead of :func:`make_env` (e.g. wrapped).
        callbacks: extra SB3 callbacks; :class:`TRMDiagnosticsCallback` is always added
            for TRM policies when logging to TensorBoard.
        resume: continue the run in ``out`` from its checkpoint (:func:`load_checkpoint`)
            up to ``config.timesteps`` in all; its settings must equal ``config``'s except
            :data:`RESUMABLE_CHANGES`.
        overwrite: delete the run in ``out`` first.
        checkpoint_every: env steps between checkpoints (>= 1).

    Returns:
        The trained model.

    Raises:
        ValueError: ``config.timesteps`` below one rollout (:attr:`TrainConfig.rollout_steps`),
            a resumed run with other settings or already at its budget, or training diverged.
        TrainingInterrupted: SIGINT/SIGTERM (after saving the checkpoint).
    """
    require_int("checkpoint_every", checkpoint_every, 1)
    if out is None and (resume or overwrite):
        raise ValueError("resume and overwrite need a run directory (out)")
    if config.timesteps < config.rollout_steps:
        raise ValueError(
            f"timesteps ({config.timesteps}) is less than one rollout: SB3 trains whole "
            f"rollouts of n_steps x n_envs = {config.rollout_steps} env steps; pass at least "
            f"{config.rollout_steps}"
        )
    if out is not None:
        out = prepare_run_dir(out, resume=resume, overwrite=overwrite)
        if resume:
            check_same_run(out, run_settings(config), ignore=RESUMABLE_CHANGES)
    if tensorboard is None and out is not None:
        tensorboard = out / "tb"
    model = make_model(config, env, tensorboard)
    if config.init_from is not None and not resume:
        recorded_kwargs = json.loads(json.dumps(run_settings(config)["policy_kwargs"]))
        load_policy_weights(model.policy, config.init_from, recorded_kwargs)
    done = 0
    if resume:
        done = load_checkpoint(model, out / "model.zip")
        if done >= config.timesteps:
            raise ValueError(
                f"the run in {out} has already trained {done} env steps, timesteps is "
                f"{config.timesteps}: pass a larger total to continue it"
            )
    guard = FiniteCheckCallback()
    callback_list = [guard, *(callbacks or [])]
    if config.random_h_cycles is not None:
        callback_list.append(RandomCyclesCallback(*config.random_h_cycles, seed=config.seed))
    if tensorboard is not None and config.policy == "trm":
        callback_list.append(TRMDiagnosticsCallback())
    if out is None:
        _learn(model, config.timesteps - done, callback_list, progress_bar, resume, guard)
        return model
    atomic_write_text(
        out / "config.json", json.dumps(config_record(config, model), indent=2) + "\n"
    )
    checkpointer = RunCheckpointCallback(
        lambda steps: save_checkpoint(model, out, steps), checkpoint_every, trained_steps=done
    )
    with stop_on_signals(checkpointer.request_stop):
        _learn(
            model,
            config.timesteps - done,
            [*callback_list, checkpointer],
            progress_bar,
            resume,
            guard,
        )
    save_checkpoint(model, out, checkpointer.trained_steps)
    if checkpointer.stop_signal is not None:
        raise TrainingInterrupted(
            checkpointer.stop_signal, out, checkpointer.trained_steps, config.timesteps
        )
    return model


def _learn(
    model: BaseAlgorithm,
    timesteps: int,
    callbacks: list[BaseCallback],
    progress_bar: bool,
    resume: bool,
    guard: FiniteCheckCallback,
) -> None:
    """``model.learn`` for ``timesteps`` more steps; a torch error raised by non-finite
    weights mid-update becomes the guard's one-line ``ValueError``."""
    try:
        model.learn(
            timesteps,
            callback=callbacks,
            progress_bar=progress_bar,
            reset_num_timesteps=not resume,
        )
    except TrainingDiverged:
        raise
    except ValueError as error:
        problem = guard.problem(during_update=True)
        if problem is None:
            raise
        raise TrainingDiverged(problem) from error


__all__ = [
    "CHECKPOINT_MEMBER",
    "DEFAULT_CHECKPOINT_EVERY",
    "POLICIES",
    "RUN_FILES",
    "TrainConfig",
    "TrainingDiverged",
    "TrainingInterrupted",
    "algorithm_class",
    "check_same_run",
    "config_record",
    "load_checkpoint",
    "make_env",
    "make_model",
    "matched_mlp_config",
    "prepare_run_dir",
    "run_settings",
    "save_checkpoint",
    "stop_on_signals",
    "train",
    "with_schedules",
]
