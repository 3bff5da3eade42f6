"""Build an environment and an SB3 model from a :class:`TrainConfig`, train, save.

Used by ``trm-rl train`` and by the benchmarks. An agent directory holds ``config.json``
(the :class:`TrainConfig` fields plus ``trm`` and ``trm_rl_version``), ``model.zip`` and,
unless told otherwise, TensorBoard logs under ``tb/``.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecEnv

import trm_rl.envs  # noqa: F401  (registers the TRM-* ids)
from trm_rl.agents.network import parameter_count
from trm_rl.agents.sb3.callbacks import TRMDiagnosticsCallback
from trm_rl.agents.sb3.hyperparams import ALGOS, recipe
from trm_rl.agents.sb3.policy import MaskableTRMPolicy, TRMPolicy

POLICIES = ("trm", "mlp")


@dataclass(frozen=True)
class TrainConfig:
    """One training run; ``None`` fields take the env's recommended value
    (:mod:`trm_rl.agents.sb3.hyperparams`)."""

    env_id: str
    """A registered Gymnasium id, e.g. ``"TRM-Maze-v0"``."""
    algo: str | None = None
    """``"ppo"``, ``"a2c"`` or ``"maskable-ppo"``."""
    policy: str = "trm"
    """``"trm"`` (TRMPolicy / MaskableTRMPolicy) or ``"mlp"`` (SB3's MlpPolicy)."""
    timesteps: int = 100_000
    """Environment steps to train for (summed over envs)."""
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

    def __post_init__(self) -> None:
        if not isinstance(self.env_id, str) or not self.env_id:
            raise ValueError(f"env_id must be a registered environment id, got {self.env_id!r}")
        if self.algo is not None and self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {ALGOS}, got {self.algo!r}")
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {self.policy!r}")
        for name, low in (("timesteps", 1), ("seed", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if self.n_envs is not None and (
            isinstance(self.n_envs, bool) or not isinstance(self.n_envs, int) or self.n_envs < 1
        ):
            raise ValueError(f"n_envs must be an int >= 1 or None, got {self.n_envs!r}")
        for name in ("env_kwargs", "policy_kwargs", "algo_kwargs"):
            if not isinstance(getattr(self, name), dict):
                raise TypeError(f"{name} must be a dict, got {type(getattr(self, name)).__name__}")
        algo_kwargs = self.resolved_algo_kwargs()
        check_algo_kwargs(self.resolved_algo, algo_kwargs)
        with_schedules(algo_kwargs)

    @property
    def resolved_algo(self) -> str:
        """The algorithm, the env's recommended one if ``algo`` is None."""
        return self.algo or recipe(self.env_id).algo

    @property
    def resolved_n_envs(self) -> int:
        """The number of envs, the env's recommended one if ``n_envs`` is None."""
        return self.n_envs or recipe(self.env_id).n_envs

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
        if start is None or start <= 0:
            raise ValueError(
                f'{name} must be a number or "lin_<start>" with start > 0, got {value!r}'
            )
        resolved[name] = LinearSchedule(start, 0.0, 1.0)
    return resolved


SET_BY_TRAINER = ("policy", "env", "policy_kwargs", "seed", "device", "tensorboard_log")
"""Algorithm arguments that :func:`make_model` sets from the rest of the config."""


def check_algo_kwargs(algo: str, algo_kwargs: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming any key of ``algo_kwargs`` that ``algo``'s constructor
    does not take publicly or that the trainer sets itself (:data:`SET_BY_TRAINER`)."""
    parameters = inspect.signature(algorithm_class(algo)).parameters
    accepted = {name for name in parameters if not name.startswith("_")} - set(SET_BY_TRAINER)
    unknown = sorted(set(algo_kwargs) - accepted)
    if unknown:
        raise ValueError(
            f"algo_kwargs has {unknown}, which {algo} does not take here; allowed: "
            f"{sorted(accepted)} ({', '.join(SET_BY_TRAINER)} come from the other settings)"
        )


def make_env(config: TrainConfig) -> VecEnv:
    """The training ``DummyVecEnv`` (Monitor-wrapped), seeded with ``config.seed``."""
    return make_vec_env(
        config.env_id,
        n_envs=config.resolved_n_envs,
        seed=config.seed,
        env_kwargs=config.env_kwargs,
    )


def algorithm_class(algo: str) -> type[BaseAlgorithm]:
    """The SB3 class of ``algo`` (``"maskable-ppo"`` needs sb3-contrib)."""
    if algo == "maskable-ppo":
        from sb3_contrib import MaskablePPO

        return MaskablePPO
    return {"ppo": PPO, "a2c": A2C}[algo]


def make_model(
    config: TrainConfig, env: VecEnv | None = None, tensorboard: str | Path | None = None
) -> BaseAlgorithm:
    """An untrained SB3 model for ``config`` (``env`` defaults to :func:`make_env`)."""
    algo = config.resolved_algo
    if config.policy == "mlp":
        policy: Any = "MlpPolicy"
    else:
        policy = MaskableTRMPolicy if algo == "maskable-ppo" else TRMPolicy
    torch.manual_seed(config.seed)
    return algorithm_class(algo)(
        policy,
        env if env is not None else make_env(config),
        policy_kwargs=config.resolved_policy_kwargs(),
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


def config_record(config: TrainConfig, model: BaseAlgorithm) -> dict[str, Any]:
    """The ``config.json`` of an agent directory."""
    from trm_rl import __version__

    return {
        **asdict(config),
        "algo": config.resolved_algo,
        "n_envs": config.resolved_n_envs,
        "policy_kwargs": _jsonable(config.resolved_policy_kwargs()),
        "algo_kwargs": _jsonable(config.resolved_algo_kwargs()),
        "trm": trm_settings(model),
        "trm_rl_version": __version__,
    }


def _jsonable(mapping: dict[str, Any]) -> dict[str, Any]:
    """``mapping`` with values JSON cannot hold (classes, callables) written as names."""
    return {
        key: value
        if isinstance(value, str | int | float | bool | list | dict | None)
        else (getattr(value, "__name__", repr(value)))
        for key, value in mapping.items()
    }


def train(
    config: TrainConfig,
    out: str | Path | None = None,
    tensorboard: str | Path | None = None,
    progress_bar: bool = False,
    env: VecEnv | None = None,
    callbacks: list[BaseCallback] | None = None,
) -> BaseAlgorithm:
    """Train a model; with ``out``, save ``out/model.zip`` and ``out/config.json``.

    Args:
        config: what to train.
        out: agent directory (created); ``None`` saves nothing.
        tensorboard: TensorBoard log directory; defaults to ``out/tb`` when ``out`` is set.
        progress_bar: show SB3's progress bar (tqdm/rich).
        env: a training VecEnv to use instead of :func:`make_env` (e.g. wrapped).
        callbacks: extra SB3 callbacks; :class:`TRMDiagnosticsCallback` is always added
            for TRM policies when logging to TensorBoard.

    Returns:
        The trained model.
    """
    out = None if out is None else Path(out)
    if tensorboard is None and out is not None:
        tensorboard = out / "tb"
    model = make_model(config, env, tensorboard)
    callback_list = list(callbacks or [])
    if tensorboard is not None and config.policy == "trm":
        callback_list.append(TRMDiagnosticsCallback())
    model.learn(config.timesteps, callback=callback_list, progress_bar=progress_bar)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        model.save(out / "model.zip")
        record = config_record(config, model)
        (out / "config.json").write_text(json.dumps(record, indent=2) + "\n")
    return model


__all__ = [
    "POLICIES",
    "TrainConfig",
    "algorithm_class",
    "config_record",
    "make_env",
    "make_model",
    "matched_mlp_config",
    "train",
    "with_schedules",
]
