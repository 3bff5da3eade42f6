"""``MaskableOutcomeLearner``: learn each action's chance of being right from the reward.

For environments whose reward after each action says whether that action was right
(``> 0``) or wrong (``<= 0``), and a wrong one cannot be repaired, e.g. TRM Sudoku: +1 for
the solution's digit, 0 and the end of the episode for any other legal digit. The policy's
action logit ``l(s, a)`` is trained as the log-odds of that outcome: binary cross-entropy
between ``sigmoid(l(s, a))`` of each played action and its label ``1[r > 0]`` (a
contextual bandit with a learned outcome model; no bootstrapping, no critic). A proper
scoring rule keeps the logits calibrated: an action the observation cannot decide keeps a
middling probability while a forced one goes to 1, so the greedy action (the masked
argmax) is the legal action most likely to be right, and sampling from the masked
softmax of the logits weights each action by its odds ``p / (1 - p)``.

With ``hindsight`` (a name in :data:`HINDSIGHT_RULES`), a finished episode may tell more:
``"sudoku-solution"`` labels every legal placement at every position of a *solved* Sudoku
episode right or wrong from its final grid (:func:`~trm_rl.envs.sudoku_hindsight.
solved_episode_outcomes`), and those positions are fitted too (a per-position mean of the
cross-entropy over the labelled actions, added to the played actions' loss). Episodes are
followed across rollouts; a resumed run starts with none in flight.

Everything else is sb3-contrib's ``MaskablePPO``: rollouts with action masks, saving and
loading, callbacks and logging. The policy needs one logit per action: SB3's
``MlpPolicy`` or :class:`~trm_rl.agents.sb3.policy.MaskableTRMPolicy` with the joint head
(``factored_actions=False``), not the factored head, whose logits are normalised per token.

Logged each update: ``train/outcome_loss`` (the played actions' cross-entropy),
``train/right_rate`` (the fraction of played actions that were right) and
``train/outcome_accuracy`` (how often ``sigmoid(l) > 1/2`` agrees with the label); with
``hindsight`` also
``train/hindsight_positions`` (positions labelled in the rollout) and
``train/hindsight_loss``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.type_aliases import GymEnv, Schedule
from torch import Tensor
from torch.nn import functional as F

from trm_rl.envs.sudoku_hindsight import solved_episode_outcomes

HINDSIGHT_RULES: dict[str, Callable[..., np.ndarray | None]] = {
    "sudoku-solution": solved_episode_outcomes
}
"""``hindsight`` names: ``rule(observations [T, ...], actions [T], rewards [T], masks [T, A])
-> labels [T, A]`` (1 right, 0 wrong, NaN unknown) for one finished episode, or ``None``
when it teaches nothing beyond its played actions."""

JOINT_HEAD_NEEDED = (
    "MaskableOutcomeLearner needs one logit per action; the factored head normalises them "
    'per token: pass policy_kwargs factored_actions=False (and token_selection="learned")'
)


def check_outcome_settings(hindsight: Any, policy_kwargs: dict[str, Any]) -> None:
    """Raise ``ValueError`` if ``hindsight`` is neither ``None`` nor a name in
    :data:`HINDSIGHT_RULES`, or ``policy_kwargs`` ask for the factored action head."""
    if hindsight is not None and (
        not isinstance(hindsight, str) or hindsight not in HINDSIGHT_RULES
    ):
        raise ValueError(
            f"hindsight must be one of {sorted(HINDSIGHT_RULES)} or None, got {hindsight!r}"
        )
    if policy_kwargs.get("factored_actions"):
        raise ValueError(JOINT_HEAD_NEEDED)


class MaskableOutcomeLearner(MaskablePPO):
    """Train a masked policy's action logits as the log-odds that each action is right.

    Args:
        policy: ``"MlpPolicy"`` or a ``MaskableActorCriticPolicy`` subclass whose action
            logits are one per action (see the module docstring).
        env: the environment; ``Discrete`` actions with ``action_masks()``.
        learning_rate: Adam's learning rate, or a schedule of the remaining progress.
        n_steps: steps per env per rollout.
        batch_size: played actions per gradient step.
        n_epochs: passes over each rollout.
        max_grad_norm: gradient-norm clip.
        hindsight: a name in :data:`HINDSIGHT_RULES`, or ``None`` (played actions only).
        stats_window_size, tensorboard_log, policy_kwargs, verbose, seed, device: as
            ``MaskablePPO``'s.
    """

    def __init__(
        self,
        policy: str | type[MaskableActorCriticPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 1e-3,
        n_steps: int = 128,
        batch_size: int = 128,
        n_epochs: int = 2,
        max_grad_norm: float = 0.5,
        hindsight: str | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: torch.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        check_outcome_settings(hindsight, policy_kwargs or {})
        self.hindsight = hindsight
        self._episodes_in_flight: list[list[tuple[Any, ...]]] = []
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            batch_size=batch_size,
            n_epochs=n_epochs,
            gamma=0.0,
            gae_lambda=1.0,
            normalize_advantage=False,
            ent_coef=0.0,
            vf_coef=0.0,
            max_grad_norm=max_grad_norm,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=_init_setup_model,
        )

    def _setup_model(self) -> None:
        super()._setup_model()
        if not isinstance(self.action_space, spaces.Discrete):
            raise ValueError(
                f"MaskableOutcomeLearner needs a Discrete action space, got {self.action_space}"
            )
        if getattr(self.policy, "factored_actions", False):
            raise ValueError(JOINT_HEAD_NEEDED)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_episodes_in_flight"]

    def hindsight_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """The positions of the episodes that ended in this rollout, labelled by the
        ``hindsight`` rule: observations ``[N, ...]`` and labels ``[N, n_actions]`` (NaN
        unknown). Steps of episodes still running are kept for the next rollout."""
        buffer = self.rollout_buffer
        n_steps, n_envs = buffer.rewards.shape
        if len(self._episodes_in_flight) != n_envs:
            self._episodes_in_flight = [[] for _ in range(n_envs)]
        rule = HINDSIGHT_RULES[self.hindsight]
        observations, labels = [], []
        for env in range(n_envs):
            steps = self._episodes_in_flight[env]
            for t in range(n_steps):
                if buffer.episode_starts[t, env]:
                    steps.clear()
                steps.append(
                    (
                        buffer.observations[t, env],
                        int(buffer.actions[t, env, 0]),
                        float(buffer.rewards[t, env]),
                        buffer.action_masks[t, env].astype(bool),
                    )
                )
                ends = (
                    buffer.episode_starts[t + 1, env]
                    if t + 1 < n_steps
                    else self._last_episode_starts[env]
                )
                if ends:
                    obs, actions, rewards, masks = (np.stack(x) for x in zip(*steps, strict=True))
                    rows = rule(obs, actions, rewards, masks)
                    if rows is not None:
                        observations.append(obs)
                        labels.append(rows)
                    steps.clear()
        if not observations:
            shape = buffer.observations.shape[2:]
            return np.zeros((0, *shape), np.float32), np.zeros((0, self.action_space.n))
        return np.concatenate(observations), np.concatenate(labels)

    def action_logits(self, observations: Tensor) -> Tensor:
        """The policy's raw action logits ``[B, n_actions]`` (the outcome log-odds)."""
        features = self.policy.extract_features(observations, self.policy.pi_features_extractor)
        latent_pi = self.policy.mlp_extractor.forward_actor(features)
        return self.policy.action_net(latent_pi)

    def _hindsight_batches(self, observations: Tensor | None, n_batches: int) -> list[Tensor]:
        """Index batches that spread a shuffled pass over the hindsight positions across the
        rollout's ``n_batches`` minibatches (empty ones without positions)."""
        n = 0 if observations is None else len(observations)
        return list(torch.randperm(n, device=self.device).tensor_split(n_batches))

    def _labelled_loss(self, observations: Tensor, labels: Tensor) -> Tensor:
        """Mean over positions of the cross-entropy averaged over each position's labelled
        actions (``labels`` NaN where unknown)."""
        known = ~labels.isnan()
        logits = self.action_logits(observations)
        entries = F.binary_cross_entropy_with_logits(
            logits, labels.nan_to_num(0.0), reduction="none"
        )
        per_position = (entries * known).sum(1) / known.sum(1).clamp_min(1)
        return per_position.mean()

    def train(self) -> None:
        """Fit the played actions' logits to their outcomes, ``n_epochs`` passes over the
        rollout. The buffer's returns are replaced by the labels ``1[r > 0]`` before its
        first pass (with ``gamma=0`` they equal the rewards up to float rounding)."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        buffer = self.rollout_buffer
        hindsight_obs, hindsight_labels = None, None
        if not buffer.generator_ready:
            if self.hindsight is not None:
                hindsight_obs, hindsight_labels = (
                    torch.as_tensor(array, dtype=torch.float32, device=self.device)
                    for array in self.hindsight_rows()
                )
            buffer.returns = (buffer.rewards > 0).astype(np.float32)
        losses, accuracies, right, hindsight_losses = [], [], [], []
        for _ in range(self.n_epochs):
            batches = list(buffer.get(self.batch_size))
            extra = self._hindsight_batches(hindsight_obs, len(batches))
            for batch, rows in zip(batches, extra, strict=True):
                actions = batch.actions.long().flatten()
                labels = batch.returns
                logits = self.action_logits(batch.observations)
                played = logits.gather(1, actions[:, None]).squeeze(1)
                loss = F.binary_cross_entropy_with_logits(played, labels)
                losses.append(loss.item())
                if len(rows):
                    hindsight_loss = self._labelled_loss(
                        hindsight_obs[rows], hindsight_labels[rows]
                    )
                    hindsight_losses.append(hindsight_loss.item())
                    loss = loss + hindsight_loss
                self.policy.optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()
                accuracies.append(((played > 0).float() == labels).float().mean().item())
                right.append(labels.mean().item())
        self._n_updates += self.n_epochs
        self.logger.record("train/outcome_loss", float(np.mean(losses)))
        self.logger.record("train/outcome_accuracy", float(np.mean(accuracies)))
        self.logger.record("train/right_rate", float(np.mean(right)))
        if hindsight_obs is not None:
            self.logger.record("train/hindsight_positions", len(hindsight_obs))
            if hindsight_losses:
                self.logger.record("train/hindsight_loss", float(np.mean(hindsight_losses)))
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
