"""Per-cycle policy networks for REINFORCE, and the trained agent (SB3-style ``predict``).

Two networks share one interface, ``forward(obs) -> (logits [H, B, A], features [H, B, F])``:

- :class:`TRMPolicyNet`: the shared :class:`~trm_rl.agents.network.TRMNetwork` (tokeniser,
  recursive core, readout) with one action head applied to every cycle's features, so
  each of the ``H`` cycles proposes an action distribution (deep supervision trains them all).
- :class:`MLPPolicyNet`: the baseline, a two-layer MLP on the flattened observation with
  ``H = 1``, its width chosen to match a TRM network's parameter count.

Observations are fed after SB3's ``preprocess_obs`` (see :func:`obs_to_tensor`).
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.preprocessing import get_flattened_obs_dim, preprocess_obs
from stable_baselines3.common.utils import get_device
from torch import Tensor, nn

from trm_rl.agents.loading import (
    CONFIG_FILE,
    check_action_masks,
    check_observation,
    cycle_overrides,
    env_spaces,
    load_state_dict_checked,
    read_config,
    safe_torch_load,
    weights_path,
)
from trm_rl.agents.network import TRMNetwork, parameter_count
from trm_rl.atomic import atomic_path, atomic_write_text
from trm_rl.config import TRMConfig, require_int

POLICIES = ("trm", "mlp")
MODEL_FILE = "model.pt"
MASKED_LOGIT = -1e8
"""Logit given to masked actions: probability 0, yet finite so entropies stay finite."""


class TRMPolicyNet(nn.Module):
    """Per-cycle action logits from the recursive core.

    Args:
        observation_space: the env's observation space (any the tokeniser supports).
        n_actions: size of the ``Discrete`` action space.
        trm: the core's config; ``h_cycles`` is the number of per-cycle outputs.
        focus_channel: for ``(C, H, W)`` grids, pool the readout at the cells this channel
            marks (e.g. 1, the agent, in a maze); None learns the pool (see ``TRMNetwork``).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        n_actions: int,
        trm: TRMConfig,
        focus_channel: int | None = None,
    ) -> None:
        super().__init__()
        self.body = TRMNetwork(observation_space, trm, focus_channel=focus_channel)
        self.action_head = nn.Linear(self.body.features_dim, n_actions)
        self.n_cycles = trm.h_cycles
        self.features_dim = self.body.features_dim

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """Preprocessed ``obs [B, ...]`` -> ``(logits [H, B, A], features [H, B, F])``."""
        features = self.body(obs, all_cycles=True)
        return self.action_head(features), features


class MLPPolicyNet(nn.Module):
    """Flattened observation -> ``Linear-Tanh-Linear-Tanh`` -> action head, as one "cycle".

    Args:
        observation_space: the env's observation space.
        n_actions: size of the ``Discrete`` action space.
        hidden: width of both hidden layers (see :func:`matched_mlp_width`).
    """

    def __init__(self, observation_space: spaces.Space, n_actions: int, hidden: int) -> None:
        super().__init__()
        n_inputs = get_flattened_obs_dim(observation_space)
        self.body = nn.Sequential(
            nn.Flatten(),
            nn.Linear(n_inputs, hidden),
            nn.Tanh(),
            nn.Linear(hidden, hidden),
            nn.Tanh(),
        )
        self.action_head = nn.Linear(hidden, n_actions)
        self.n_cycles = 1
        self.features_dim = hidden

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """Preprocessed ``obs [B, ...]`` -> ``(logits [1, B, A], features [1, B, hidden])``."""
        features = self.body(obs.float()).unsqueeze(0)
        return self.action_head(features), features


def matched_mlp_width(observation_space: spaces.Space, n_actions: int, n_params: int) -> int:
    """Smallest hidden width of :class:`MLPPolicyNet` with at least ``n_params`` parameters
    (the rule of the SB3 baselines, :func:`trm_rl.agents.training.matched_mlp_config`).

    The count is ``h^2 + (n_in + n_actions + 2) h + n_actions``; we solve for ``h``.
    """
    n_in = get_flattened_obs_dim(observation_space)
    b = n_in + n_actions + 2

    def count(width: int) -> int:
        return width * width + b * width + n_actions

    root = (-b + math.sqrt(b * b + 4 * max(n_params - n_actions, 0))) / 2
    width = max(1, math.ceil(root))
    while width > 1 and count(width - 1) >= n_params:
        width -= 1
    while count(width) < n_params:
        width += 1
    return width


def build_policy(
    observation_space: spaces.Space,
    action_space: spaces.Space,
    policy: str,
    trm: TRMConfig | None,
    mlp_hidden: int | None = None,
    focus_channel: int | None = None,
) -> TRMPolicyNet | MLPPolicyNet:
    """The per-cycle network for ``policy`` ("trm" or "mlp").

    For "mlp", ``mlp_hidden`` defaults to the width that matches the parameter count of the
    TRM network ``trm`` would build (a same-size baseline); one of the two must be given.
    ``focus_channel`` is the TRM readout's (see :class:`TRMPolicyNet`).
    """
    if not isinstance(action_space, spaces.Discrete):
        raise TypeError(f"REINFORCE needs a Discrete action space, got {action_space}")
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    if trm is None and (policy == "trm" or mlp_hidden is None):
        raise ValueError(f'policy={policy!r} needs a TRMConfig (trm) or, for "mlp", mlp_hidden')
    n_actions = int(action_space.n)
    if policy == "trm":
        return TRMPolicyNet(observation_space, n_actions, trm, focus_channel)
    if mlp_hidden is None:
        target = parameter_count(TRMPolicyNet(observation_space, n_actions, trm, focus_channel))
        mlp_hidden = matched_mlp_width(observation_space, n_actions, target)
    return MLPPolicyNet(observation_space, n_actions, mlp_hidden)


def obs_to_tensor(obs: Any, observation_space: spaces.Space, device: torch.device) -> Tensor:
    """A batch of raw observations ``[B, ...]`` -> the network's input (``preprocess_obs``)."""
    tensor = torch.as_tensor(np.asarray(obs), device=device)
    return preprocess_obs(tensor, observation_space).float()


def mask_logits(logits: Tensor, masks: Tensor | None) -> Tensor:
    """Set the logits of disallowed actions to :data:`MASKED_LOGIT`.

    Args:
        logits: ``[..., B, A]`` (e.g. every cycle's, ``[H, B, A]``).
        masks: ``[B, A]`` bool, True where the action is allowed; None allows everything.
    """
    if masks is None:
        return logits
    return logits.masked_fill(~masks, MASKED_LOGIT)


class ReinforceAgent:
    """A trained per-cycle policy with Stable-Baselines3's ``predict``.

    Attributes:
        policy: the network (:class:`TRMPolicyNet` or :class:`MLPPolicyNet`).
        observation_space, action_space: the env's spaces.
        config: the agent directory's ``config.json`` as a dict.
        device: where the network lives.
    """

    def __init__(
        self,
        policy: TRMPolicyNet | MLPPolicyNet,
        observation_space: spaces.Space,
        action_space: spaces.Discrete,
        config: dict[str, Any],
    ) -> None:
        self.policy = policy
        self.observation_space = observation_space
        self.action_space = action_space
        self.config = config
        self.device = next(policy.parameters()).device

    @torch.no_grad()
    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
        action_masks: Any = None,
        cycle: int = -1,
    ) -> tuple[np.ndarray, None]:
        """Actions for one observation or a batch ``[B, ...]`` (SB3's signature).

        Args:
            observation: a single observation or a batch.
            state, episode_start: ignored (the policy is not recurrent across steps).
            deterministic: the most likely action instead of a sample.
            action_masks: ``[A]`` or ``[B, A]`` bool, True where allowed.
            cycle: act from this cycle's logits (``-1``: the last; ``0 .. H-1``).

        Returns:
            ``(actions, None)``: int64 actions, shape ``()`` for a single observation, else
            ``[B]``.

        Raises:
            ValueError: a bad ``cycle``; an observation outside ``observation_space`` (wrong
                shape, out-of-range entry, NaN); masks of the wrong shape or allowing no
                action.
        """
        n_cycles = self.policy.n_cycles
        require_int("cycle", cycle, -n_cycles)
        if cycle >= n_cycles:
            raise ValueError(f"cycle must be an int in [{-n_cycles}, {n_cycles - 1}], got {cycle}")
        array, vectorized = check_observation(observation, self.observation_space)
        obs = array if vectorized else array[None]
        masks = check_action_masks(
            action_masks, self.action_space, len(obs) if vectorized else None
        )
        if masks is not None and not vectorized:
            masks = masks[None]
        logits, _ = self.policy(obs_to_tensor(obs, self.observation_space, self.device))
        if masks is not None:
            masks = torch.as_tensor(masks, device=self.device)
        logits = mask_logits(logits[cycle], masks)
        if deterministic:
            actions = logits.argmax(dim=-1)
        else:
            actions = torch.distributions.Categorical(logits=logits).sample()
        actions = actions.cpu().numpy().astype(np.int64)
        return (actions if vectorized else actions[0]), None

    def save(self, directory: str | Path) -> None:
        """Write ``model.pt`` (``{"state_dict": weights}``, tensors only) and ``config.json``
        to ``directory``, each atomically (a kill mid-save leaves the previous file)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(directory / MODEL_FILE) as temporary:
            torch.save({"state_dict": self.policy.state_dict()}, temporary)
        atomic_write_text(directory / CONFIG_FILE, json.dumps(self.config, indent=2) + "\n")

    @classmethod
    def load(
        cls,
        directory: str | Path,
        device: str = "auto",
        *,
        h_cycles: int | None = None,
        l_cycles: int | None = None,
        observation_space: spaces.Space | None = None,
        trusted: bool = False,
    ) -> ReinforceAgent:
        """Rebuild an agent saved by :meth:`save` (or ``trm-rl train --algo reinforce``), or a
        packaged one (``config.json`` naming its ``"weights"`` file, a state dict).

        The network is rebuilt from ``config.json`` (spaces from ``gym.make(env_id,
        **env_kwargs)``) and only tensors are read (``weights_only=True``).

        Args:
            directory: the agent directory.
            device: torch device (``"auto"`` as in SB3).
            h_cycles, l_cycles: run the core with these cycle counts (same weights).
            observation_space: build the network for this space (see
                :func:`trm_rl.agents.loading.load_agent`).
            trusted: accept a ``model.pt`` holding pickled objects (older versions saved the
                spaces in it); only for files you trust.

        Raises:
            FileNotFoundError: no ``config.json`` or weights file (named).
            ValueError: a config that is not REINFORCE's, corrupt weights, cycles on the MLP
                baseline, or weights that do not fit ``observation_space``.
        """
        directory = Path(directory)
        config = read_config(directory)
        if config.get("algo") != "reinforce":
            raise ValueError(
                f'{directory / CONFIG_FILE} has algo={config.get("algo")!r}, not "reinforce"'
            )
        cycles = cycle_overrides(h_cycles, l_cycles)
        packaged = "weights" in config
        path = weights_path(directory, config, MODEL_FILE)
        if trusted and not packaged:
            if not path.is_file():
                raise FileNotFoundError(f"{path} not found (the agent's weights)")
            payload = torch.load(path, map_location="cpu", weights_only=False)
        else:
            payload = safe_torch_load(path)
        is_payload = not packaged and isinstance(payload, dict) and "state_dict" in payload
        state_dict = payload["state_dict"] if is_payload else payload
        if config.get("trm") is None and cycles:
            raise ValueError("h_cycles/l_cycles apply to TRM policies; this agent is the MLP")
        source = directory / CONFIG_FILE
        saved_observation_space, action_space = env_spaces(config, source)
        observation_space = observation_space or saved_observation_space
        try:
            trm = None if config["trm"] is None else replace(TRMConfig(**config["trm"]), **cycles)
            policy = build_policy(
                observation_space,
                action_space,
                config["policy"],
                trm,
                config.get("mlp_hidden"),
                config.get("focus_channel"),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(
                f"{source}: cannot build the policy it describes ({error!r})"
            ) from error
        load_state_dict_checked(policy, state_dict, str(path))
        policy.to(get_device(device)).eval()
        return cls(policy, observation_space, action_space, config)
