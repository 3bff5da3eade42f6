"""``load_agent(SOURCE)``: any saved or pretrained agent, loaded without unpickling code.

An agent directory holds ``config.json`` and the weights:

=====================  ==========================================  ============================
agent                  written by                                  weights
=====================  ==========================================  ============================
SB3 (PPO, A2C,         ``trm-rl train``, ``policy_learning          ``model.zip`` (SB3's zip;
MaskablePPO)           --save-models``                             only ``policy.pth`` is read)
REINFORCE              ``trm-rl train --algo reinforce``           ``model.pt``
recursive controller   ``trm-rl control train``                    ``model.pt``
pretrained             ``python -m trm_rl.pretrained.package``     ``policy.pt`` (config.json
                                                                   names it as ``"weights"``)
=====================  ==========================================  ============================

Loading is safe by default: the model is rebuilt from ``config.json`` and only tensors and
plain values are read from the weights (``torch.load(..., weights_only=True)``), so a crafted
file cannot run code; it also reads zips whose pickled class paths no longer exist (saved
before a module moved), which SB3's own ``load`` cannot. ``trusted=True`` uses SB3's full
``BaseAlgorithm.load`` (which unpickles the zip's ``data`` and restores the optimizer and
training state): only for files you trust.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib import MaskablePPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.utils import is_vectorized_observation
from stable_baselines3.common.vec_env import DummyVecEnv
from torch import nn

from trm_rl.config import require_int

CONFIG_FILE = "config.json"
SB3_WEIGHTS = "model.zip"
SB3_POLICY_MEMBER = "policy.pth"
TORCH_WEIGHTS = "model.pt"
PRETRAINED_PREFIX = "pretrained:"


def safe_torch_load(path: str | Path, member: str | None = None) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU: tensors and plain values only.

    Args:
        path: a file written by ``torch.save``, or a zip archive holding one (``member``).
        member: the file inside the zip archive ``path`` (e.g. ``"policy.pth"`` in SB3's
            ``model.zip``); None reads ``path`` itself.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: naming the file, when it is corrupt or truncated, or holds anything
            but tensors and plain values (e.g. a pickled object, which is never run).
    """
    path = Path(path)
    name = str(path) if member is None else f"{path} (member {member})"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    try:
        if member is None:
            return torch.load(path, map_location="cpu", weights_only=True)
        with zipfile.ZipFile(path) as archive, archive.open(member) as file:
            return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{name} holds objects other than tensors and plain values; refusing to unpickle "
            "it (if you trust the file, load it with trusted=True)"
        ) from error
    except (zipfile.BadZipFile, KeyError, RuntimeError, EOFError, ValueError) as error:
        raise ValueError(f"{name} is corrupt or truncated ({error})") from error


def read_config(directory: str | Path) -> dict[str, Any]:
    """``directory/config.json`` as a dict; errors name the file and what is wrong."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found; pass a directory written by `trm-rl train --out DIR` "
            f"(or `trm-rl control train`), or {PRETRAINED_PREFIX}<name>"
        )
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error})") from error
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(config).__name__}")
    return config


def agent_kind(config: dict[str, Any], path: str | Path) -> str:
    """``"sb3"``, ``"reinforce"`` or ``"control"`` for a ``config.json`` read from ``path``.

    Raises:
        ValueError: naming ``path``, when ``algo`` or ``env_id`` is missing or unknown.
    """
    from trm_rl.agents.sb3.hyperparams import ALGOS

    if "algo" not in config and isinstance(config.get("model"), dict):
        return "control"
    algo = config.get("algo")
    known = (*ALGOS, "reinforce")
    if algo is None:
        raise ValueError(
            f"{path} has no 'algo' (one of {known}): not an agent directory written by trm-rl"
        )
    if algo not in known:
        raise ValueError(f"{path}: 'algo' must be one of {known}, got {algo!r}")
    if not isinstance(config.get("env_id"), str):
        raise ValueError(f"{path} has no 'env_id' (the Gymnasium id the agent was trained on)")
    return "reinforce" if algo == "reinforce" else "sb3"


def resolve_source(source: str | Path) -> Path:
    """The directory of ``source``: an agent directory, or ``"pretrained:<name>"``."""
    if isinstance(source, str) and source.startswith(PRETRAINED_PREFIX):
        from trm_rl import pretrained

        return pretrained.path(source.removeprefix(PRETRAINED_PREFIX))
    if not isinstance(source, str | Path):
        raise TypeError(
            f"source must be an agent directory or '{PRETRAINED_PREFIX}<name>', got {source!r}"
        )
    return Path(source)


def check_observation(observation: Any, space: spaces.Space) -> tuple[np.ndarray, bool]:
    """Validate one observation or a batch ``[B, ...]`` against ``space``.

    Returns:
        ``(array, vectorized)``: the observation as an array, and whether it is a batch.

    Raises:
        ValueError: a shape that is neither ``space.shape`` nor ``[B, *space.shape]``, NaN or
            infinite values, or entries outside a ``MultiDiscrete``/``Discrete``/
            ``MultiBinary`` space's range; the message names the problem. A ``Box``'s bounds
            are not enforced (envs often step past their declared bounds, and the network
            takes any finite value).
        TypeError: a non-numeric observation.
    """
    if isinstance(space, spaces.Dict | spaces.Tuple):
        return observation, is_vectorized_observation(observation, space)
    array = np.asarray(observation)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"observation must be numeric for {space}, got dtype {array.dtype}")
    vectorized = is_vectorized_observation(array, space)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ValueError(f"observation has NaN or infinite values ({space} allows neither)")
    if isinstance(space, spaces.MultiDiscrete | spaces.Discrete | spaces.MultiBinary):
        if isinstance(space, spaces.MultiDiscrete):
            low, high = space.start, space.start + space.nvec
        elif isinstance(space, spaces.Discrete):
            low, high = space.start, space.start + space.n
        else:
            low, high = 0, 2
        low, high = np.broadcast_to(low, array.shape), np.broadcast_to(high, array.shape)
        bad = (array != np.round(array)) | (array < low) | (array >= high)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"observation entry {index} is {array[index]}; {space} allows integers in "
                f"[{low[index]}, {high[index] - 1}] there"
            )
    return array, vectorized


def check_action_masks(
    action_masks: Any, action_space: spaces.Space, batch: int | None
) -> np.ndarray | None:
    """Validate action masks for one observation (``batch=None``) or a batch of ``batch``.

    Masks are booleans (or 0/1), ``[A]`` for one observation and ``[B, A]`` for a batch,
    ``A = n`` for ``Discrete(n)`` and ``sum(nvec)`` for ``MultiDiscrete`` (sb3-contrib's
    convention). Returns them as a bool array, or None when ``action_masks`` is None.

    Raises:
        ValueError: a wrong shape, values other than 0/1, or an observation with no allowed
            action (a row of all False).
    """
    if action_masks is None:
        return None
    if isinstance(action_space, spaces.Discrete):
        size = int(action_space.n)
    elif isinstance(action_space, spaces.MultiDiscrete):
        size = int(action_space.nvec.sum())
    else:
        raise ValueError(
            f"action_masks apply to Discrete/MultiDiscrete actions, not {action_space}"
        )
    masks = np.asarray(action_masks)
    expected = (size,) if batch is None else (batch, size)
    if masks.shape != expected:
        raise ValueError(
            f"action_masks must have shape {expected} (one bool per action of {action_space}"
            f"{'' if batch is None else ', per observation'}), got {masks.shape}"
        )
    if masks.dtype != bool:
        if masks.dtype.kind not in "biuf" or not np.isin(masks, (0, 1)).all():
            raise ValueError("action_masks must be booleans (or 0/1)")
        masks = masks.astype(bool)
    rows = masks.reshape(-1, size)
    if not rows.any(axis=1).all():
        row = int(np.flatnonzero(~rows.any(axis=1))[0])
        where = "" if batch is None else f" (observation {row})"
        raise ValueError(f"action_masks allow no action{where}: at least one must be True")
    return masks


def check_cycles(h_cycles: Any, l_cycles: Any) -> None:
    """Raise naming the argument unless each of ``h_cycles``, ``l_cycles`` is None or an
    int >= 1."""
    require_int("h_cycles", h_cycles, 1, allow_none=True)
    require_int("l_cycles", l_cycles, 1, allow_none=True)


def cycle_overrides(h_cycles: int | None, l_cycles: int | None) -> dict[str, int]:
    """The given cycle counts as ``TRMConfig`` fields (``{}`` when both are None)."""
    check_cycles(h_cycles, l_cycles)
    pairs = (("h_cycles", h_cycles), ("l_cycles", l_cycles))
    return {name: value for name, value in pairs if value is not None}


def load_state_dict_checked(module: nn.Module, state_dict: Any, source: str) -> None:
    """``module.load_state_dict(state_dict)`` after checking names and shapes.

    Raises:
        ValueError: one line naming ``source`` and every missing, unexpected or mismatched
            parameter (mismatched shapes: the module was built for another observation
            space, and learned per-token parameters such as per-cell positions tie a
            policy to its grid size).
    """
    if not isinstance(state_dict, dict) or not all(
        isinstance(value, torch.Tensor) for value in state_dict.values()
    ):
        raise ValueError(f"{source} does not hold a state dict (names -> tensors)")
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"{source} does not match the model it is loaded into: missing {missing}, "
            f"unexpected {unexpected}"
        )
    mismatched = [
        f"{name} saved {tuple(state_dict[name].shape)}, built {tuple(tensor.shape)}"
        for name, tensor in own.items()
        if tuple(tensor.shape) != tuple(state_dict[name].shape)
    ]
    if mismatched:
        raise ValueError(
            f"{source}: parameters whose shape depends on the observation space do not fit: "
            + "; ".join(mismatched)
            + " (learned per-token parameters, e.g. per-cell positions or a token-mixing MLP, "
            "tie a policy to its observation size)"
        )
    module.load_state_dict(state_dict)


class SB3Agent:
    """A trained SB3 model with the uniform agent interface.

    Attributes:
        model: the SB3 algorithm (``PPO``, ``A2C`` or ``MaskablePPO``).
        config: the agent directory's ``config.json`` as a dict (empty if built in memory).
        observation_space, action_space: the model's spaces.
        masked: whether the model is a ``MaskablePPO`` or a subclass (its ``predict``
            needs masks).
    """

    def __init__(self, model: BaseAlgorithm, config: dict[str, Any] | None = None) -> None:
        self.model = model
        self.config = dict(config or {})
        self.observation_space = model.observation_space
        self.action_space = model.action_space
        self.masked = isinstance(model, MaskablePPO)

    @property
    def policy(self) -> nn.Module:
        """The model's policy network."""
        return self.model.policy

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """SB3's ``predict`` for one observation or a batch ``[B, ...]``.

        Args:
            observation: one observation of ``observation_space`` or a batch.
            state, episode_start: SB3's (ignored by these feed-forward policies).
            deterministic: the most likely action instead of a sample.
            action_masks: bool ``[A]`` (one observation) or ``[B, A]``, True where an action
                is allowed (e.g. ``env.action_masks()``). Required by MaskablePPO agents
                (``masked``); other agents, whose policies never saw masks, check and
                ignore them.

        Raises:
            ValueError: a MaskablePPO agent called without ``action_masks``; masks of the
                wrong shape or allowing no action; an observation outside
                ``observation_space`` (wrong shape, out-of-range entry, NaN).
        """
        array, vectorized = check_observation(observation, self.observation_space)
        batch = len(array) if vectorized else None
        masks = check_action_masks(action_masks, self.action_space, batch)
        if self.masked:
            if masks is None:
                raise ValueError(
                    "this MaskablePPO agent needs action_masks (e.g. env.action_masks()); "
                    "without them it would choose illegal actions"
                )
            return self.model.predict(
                array, state, episode_start, deterministic, action_masks=masks
            )
        return self.model.predict(array, state, episode_start, deterministic)


class _SpacesEnv(gym.Env):
    """An env that only carries spaces: SB3 builds a model from it, nothing steps it."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        self.observation_space = observation_space
        self.action_space = action_space

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        raise RuntimeError("a loaded agent's placeholder env cannot be reset")

    def step(self, action):
        raise RuntimeError("a loaded agent's placeholder env cannot be stepped")


def env_spaces(config: dict[str, Any], source: str | Path) -> tuple[spaces.Space, spaces.Space]:
    """The observation and action spaces of ``gym.make(env_id, **env_kwargs)`` for the
    ``config.json`` read from ``source`` (named in the ``ValueError`` if the env cannot be
    made)."""
    import trm_rl.envs  # noqa: F401  (registers the TRM-* ids)

    try:
        env = gym.make(config["env_id"], **(config.get("env_kwargs") or {}))
    except (gym.error.Error, TypeError, ValueError) as error:
        raise ValueError(
            f"{source}: cannot make env {config['env_id']!r} with env_kwargs "
            f"{config.get('env_kwargs')!r} ({error})"
        ) from error
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def weights_path(directory: Path, config: dict[str, Any], default: str) -> Path:
    """The weights file: ``config.json``'s ``"weights"`` (a file name in ``directory``, as
    packaged policies have) or ``default``."""
    name = config.get("weights", default)
    if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
        raise ValueError(
            f"{directory / CONFIG_FILE}: 'weights' must be a file name in that folder, got {name!r}"
        )
    return directory / name


def _build_sb3(
    config: dict[str, Any],
    observation_space: spaces.Space,
    action_space: spaces.Space,
    cycles: dict[str, int],
    device: str,
    source: Path,
) -> BaseAlgorithm:
    """An untrained SB3 model as the ``config.json`` read from ``source`` describes it, for
    the given spaces."""
    from trm_rl.agents.sb3.training import TrainConfig, make_model

    if cycles and config.get("policy") != "trm":
        raise ValueError(
            f"h_cycles/l_cycles apply to TRM policies; this agent's policy is "
            f"{config.get('policy')!r}"
        )
    names = {f.name for f in fields(TrainConfig)}
    settings = {k: v for k, v in config.items() if k in names}
    policy_kwargs = {**(config.get("policy_kwargs") or {}), **cycles}
    settings["policy_kwargs"] = policy_kwargs
    try:
        train_config = TrainConfig(**{**settings, "device": device})
        env = DummyVecEnv(
            [lambda: _SpacesEnv(observation_space, action_space)] * train_config.resolved_n_envs
        )
        with torch.random.fork_rng(devices=[]):
            return make_model(train_config, env, policy_kwargs=policy_kwargs)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{source}: cannot build the model it describes ({error})") from error


def _load_sb3(
    directory: Path,
    config: dict[str, Any],
    cycles: dict[str, int],
    observation_space: spaces.Space | None,
    device: str,
    trusted: bool,
) -> SB3Agent:
    from trm_rl.agents.sb3.training import algorithm_class

    path = sb3_weights_file(directory, config)
    if trusted and "weights" not in config:
        full = algorithm_class(config["algo"]).load(path, device=device)
        if not cycles and observation_space is None:
            return SB3Agent(full, config)
        state_dict = full.policy.state_dict()
    else:
        state_dict = safe_torch_load(path, _policy_member(config))
    source = directory / CONFIG_FILE
    config = _with_positions(config, state_dict)
    saved_observation_space, action_space = env_spaces(config, source)
    space = observation_space or saved_observation_space
    model = _build_sb3(config, space, action_space, cycles, device, source)
    load_state_dict_checked(model.policy, state_dict, str(path))
    return SB3Agent(model, config)


def sb3_weights_file(directory: Path, config: dict[str, Any]) -> Path:
    """The weights file of the SB3 agent in ``directory`` (its ``config.json`` read as
    ``config``); ``FileNotFoundError`` when it is missing."""
    path = weights_path(directory, config, SB3_WEIGHTS)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (the agent's weights)")
    return path


def _policy_member(config: dict[str, Any]) -> str | None:
    """Where the policy's state dict is in the weights file: ``policy.pth`` of a
    ``model.zip``, or the whole file for a packaged policy."""
    return None if "weights" in config else SB3_POLICY_MEMBER


FREE_ON_INIT = ("h_cycles", "l_cycles")
"""Policy settings a run may change from those of the agent it starts from (the cycle
counts reuse the same shared weights); every other recorded setting must match."""


def load_policy_weights(
    policy: nn.Module, source: str | Path, policy_kwargs: dict[str, Any] | None = None
) -> Path:
    """Load the policy weights of the trained SB3 agent ``source`` (an agent directory or
    ``"pretrained:<name>"``) into ``policy``, weights-only; returns the weights file.

    The agent's parameter names and shapes must equal ``policy``'s: the same network
    settings, and an observation size that learned per-token parameters (per-cell
    positions) do not tie. A position-free grid policy fits every grid size, so a run can
    start from a policy trained on smaller mazes.

    Args:
        policy: the network to fill.
        source: the agent whose weights to read.
        policy_kwargs: ``policy``'s keyword arguments; when given, each key that both they
            and the agent's recorded ``policy_kwargs`` hold must have the same value
            (except :data:`FREE_ON_INIT`), since weights of equal shapes can still mean
            another head (e.g. ``factored_actions``).

    Raises:
        FileNotFoundError: no ``config.json`` or weights at ``source``.
        ValueError: ``source`` is not a PPO/A2C/MaskablePPO agent, its recorded policy
            settings differ from ``policy_kwargs``, or its parameters do not fit ``policy``
            (one line naming each).
    """
    directory = resolve_source(source)
    config = read_config(directory)
    kind = agent_kind(config, directory / CONFIG_FILE)
    if kind != "sb3":
        raise ValueError(
            f"{directory} holds a {kind} agent; starting weights must come from a PPO, A2C "
            "or MaskablePPO agent"
        )
    if policy_kwargs is not None:
        recorded = config.get("policy_kwargs") or {}
        differ = [
            f"{name}={recorded[name]!r} (the run has {policy_kwargs[name]!r})"
            for name in sorted(recorded.keys() & policy_kwargs.keys())
            if name not in FREE_ON_INIT and recorded[name] != policy_kwargs[name]
        ]
        if differ:
            raise ValueError(
                f"{directory} was trained with other policy settings: {', '.join(differ)}; "
                "starting weights must come from the same network"
            )
    path = sb3_weights_file(directory, config)
    load_state_dict_checked(policy, safe_torch_load(path, _policy_member(config)), str(path))
    return path


def _with_positions(config: dict[str, Any], state_dict: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the TRM policy's ``positions`` setting; a config that lacks it (saved
    before the setting existed) takes it from the weights: ``"learned"`` if they hold a
    tokeniser position, else ``"none"``."""
    policy_kwargs = config.get("policy_kwargs") or {}
    if config.get("policy") != "trm" or "positions" in policy_kwargs:
        return config
    learned = any(key.endswith("tokenizer.position") for key in state_dict)
    positions = "learned" if learned else "none"
    return {**config, "policy_kwargs": {**policy_kwargs, "positions": positions}}


def _load_controller(
    directory: Path,
    config: dict[str, Any],
    cycles: dict[str, int],
    observation_space: spaces.Space | None,
) -> Any:
    from trm_rl.agents.control.controller import RecursiveController
    from trm_rl.agents.control.model import ControlModelConfig, RecursiveControlModel

    if observation_space is not None:
        raise ValueError(
            "observation_space does not apply to a recursive controller (it plans from "
            "(state, target) pairs)"
        )
    path = weights_path(directory, config, TORCH_WEIGHTS)
    try:
        model_config = replace(ControlModelConfig(**config["model"]), **cycles)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{directory / CONFIG_FILE}: bad 'model' settings ({error})") from error
    model = RecursiveControlModel(model_config)
    load_state_dict_checked(model, safe_torch_load(path), str(path))
    return RecursiveController(model)


def load_agent(
    source: str | Path,
    *,
    h_cycles: int | None = None,
    l_cycles: int | None = None,
    observation_space: spaces.Space | None = None,
    device: str = "auto",
    trusted: bool = False,
) -> Any:
    """Load a saved or pretrained agent, reading tensors only.

    Args:
        source: an agent directory (``trm-rl train --out DIR``, ``trm-rl control train``,
            ``policy_learning --save-models``) or ``"pretrained:<name>"`` (a policy shipped
            with the package, see :mod:`trm_rl.pretrained`).
        h_cycles, l_cycles: run the recursive core with these cycle counts instead of the
            trained ones (same weights; the parameter shapes do not depend on them), e.g. to
            think longer at test time. ints >= 1; None keeps the trained value.
        observation_space: build the policy for this observation space instead of the
            training env's, e.g. ``Box(0, 1, (3, 15, 15))`` for a maze policy trained on
            ``(3, 9, 9)``. Works when every parameter keeps its shape (a position-free grid
            tokeniser with the conv mixer); otherwise ``ValueError`` names the parameters.
        device: torch device (``"auto"`` as in SB3).
        trusted: SB3 agents: load ``model.zip`` with SB3's full ``BaseAlgorithm.load``,
            which unpickles the zip (code can run: only for files you trust) and restores
            the optimizer and training state, e.g. to continue training. REINFORCE: accept
            a ``model.pt`` holding pickled objects (older versions saved the spaces in it).

    Returns:
        An :class:`SB3Agent` or :class:`~trm_rl.agents.reinforce.agent.ReinforceAgent`, with
        SB3's ``predict(obs, state=None, episode_start=None, deterministic=False,
        action_masks=None)`` and ``observation_space``, ``action_space``, ``config`` (the
        saved ``config.json``); or, for a controller, a
        :class:`~trm_rl.agents.control.controller.RecursiveController` (``plan``).

    Raises:
        FileNotFoundError: no ``config.json`` or no weights file (both named).
        ValueError: an unknown pretrained name (the available ones are listed), a bad
            ``config.json`` (named), weights that are corrupt, hold pickled objects, or do
            not fit ``observation_space``; ``h_cycles``/``l_cycles`` < 1.
        TypeError: a non-int ``h_cycles``/``l_cycles``.
    """
    cycles = cycle_overrides(h_cycles, l_cycles)
    if observation_space is not None and not isinstance(observation_space, spaces.Space):
        raise TypeError(f"observation_space must be a gymnasium Space, got {observation_space!r}")
    directory = resolve_source(source)
    config = read_config(directory)
    kind = agent_kind(config, directory / CONFIG_FILE)
    if kind == "control":
        return _load_controller(directory, config, cycles, observation_space)
    if kind == "reinforce":
        from trm_rl.agents.reinforce.agent import ReinforceAgent

        return ReinforceAgent.load(
            directory,
            device,
            h_cycles=h_cycles,
            l_cycles=l_cycles,
            observation_space=observation_space,
            trusted=trusted,
        )
    return _load_sb3(directory, config, cycles, observation_space, device, trusted)
