"""Episodes for REINFORCE: one per env of a Gymnasium vector env, with Monte-Carlo returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from torch import Tensor, nn

from trm_rl.agents.reinforce.agent import mask_logits, obs_to_tensor


@dataclass
class Batch:
    """One episode per env, flattened over its ``N`` steps.

    Attributes:
        obs: ``[N, ...]`` preprocessed observations.
        actions: ``[N]`` int64.
        masks: ``[N, A]`` bool action masks, or None when the env has no ``action_masks()``.
        returns: ``[N]`` discounted Monte-Carlo returns ``G_t``.
        episode_returns, episode_lengths: ``[n_envs]`` undiscounted return and length.
        successes: ``[n_envs]`` bool ``info["is_success"]`` at the end, None if never set.
    """

    obs: Tensor
    actions: Tensor
    masks: Tensor | None
    returns: Tensor
    episode_returns: np.ndarray
    episode_lengths: np.ndarray
    successes: np.ndarray | None


def discounted_returns(rewards: np.ndarray, dones: np.ndarray, gamma: float) -> np.ndarray:
    """``G_t = r_t + gamma (1 - done_t) G_{t+1}`` over ``[T, n_envs]`` arrays."""
    returns = np.zeros_like(rewards, dtype=np.float64)
    future = np.zeros(rewards.shape[1])
    for t in reversed(range(rewards.shape[0])):
        future = rewards[t] + gamma * (1.0 - dones[t]) * future
        returns[t] = future
    return returns


@torch.no_grad()
def collect_episodes(
    envs: SyncVectorEnv, policy: nn.Module, cycle: int, gamma: float, generator: torch.Generator
) -> Batch:
    """Run one episode in every env, sampling actions from ``cycle``'s masked logits.

    The vector env autoresets in ``NEXT_STEP`` mode: an env that has finished is reset on
    the following step and steps on (action 0, no forward pass) until the others finish;
    those transitions are discarded.
    """
    device = generator.device
    space = envs.single_observation_space
    use_masks = callable(getattr(envs.envs[0].unwrapped, "action_masks", None))
    obs, _ = envs.reset()
    running = np.ones(envs.num_envs, dtype=bool)
    success, saw_success = np.zeros(envs.num_envs, dtype=bool), False
    steps: dict[str, list] = {"obs": [], "actions": [], "masks": [], "rewards": [], "dones": []}
    valid = []
    while running.any():
        masks = None
        if use_masks:
            masks = torch.as_tensor(np.stack(envs.call("action_masks")), device=device).bool()
        obs_t = obs_to_tensor(obs, space, device)
        rows = torch.as_tensor(running, device=device)
        logits, _ = policy(obs_t[rows])
        probs = mask_logits(logits[cycle], masks[rows] if use_masks else None).softmax(dim=-1)
        actions = torch.zeros(envs.num_envs, dtype=torch.long, device=device)
        actions[rows] = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        obs, rewards, terminated, truncated, infos = envs.step(actions.cpu().numpy())
        done = terminated | truncated
        if "is_success" in infos:
            saw_success = True
            reported = np.asarray(infos["is_success"], dtype=bool) & infos["_is_success"]
            success |= running & done & reported
        for key, value in zip(steps, (obs_t, actions, masks, rewards, done), strict=True):
            steps[key].append(value)
        valid.append(running.copy())
        running &= ~done

    valid_np = np.stack(valid)
    rewards = np.stack(steps["rewards"])
    returns = discounted_returns(rewards, np.stack(steps["dones"]).astype(np.float64), gamma)
    keep = torch.as_tensor(valid_np, device=device)
    return Batch(
        obs=torch.stack(steps["obs"])[keep],
        actions=torch.stack(steps["actions"])[keep],
        masks=torch.stack(steps["masks"])[keep] if use_masks else None,
        returns=torch.as_tensor(returns, dtype=torch.float32, device=device)[keep],
        episode_returns=(rewards * valid_np).sum(axis=0),
        episode_lengths=valid_np.sum(axis=0),
        successes=success if saw_success else None,
    )


def make_envs(
    env_id: str,
    env_kwargs: dict[str, Any],
    n_envs: int,
    wrapper_class: Callable[[gym.Env], gym.Env] | None = None,
) -> SyncVectorEnv:
    """``n_envs`` copies of ``gym.make(env_id, **env_kwargs)`` (each wrapped in
    ``wrapper_class`` when given), autoreset on the next step."""

    def make() -> gym.Env:
        env = gym.make(env_id, **env_kwargs)
        return wrapper_class(env) if wrapper_class is not None else env

    return SyncVectorEnv([make] * n_envs, autoreset_mode=AutoresetMode.NEXT_STEP)
