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

Everything else is sb3-contrib's ``MaskablePPO``: rollouts with action masks, saving and
loading, callbacks and logging. The policy needs one logit per action: SB3's
``MlpPolicy`` or :class:`~trm_rl.agents.sb3.policy.MaskableTRMPolicy` with the joint head
(``factored_actions=False``), not the factored head, whose logits are normalised per token.

Logged each update: ``train/outcome_loss`` (the cross-entropy), ``train/right_rate``
(the fraction of played actions that were right) and ``train/outcome_accuracy`` (how often
``sigmoid(l) > 1/2`` agrees with the label).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.type_aliases import GymEnv, Schedule
from torch import Tensor
from torch.nn import functional as F


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
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: torch.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
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
            raise ValueError(
                "MaskableOutcomeLearner needs one logit per action; the factored head "
                "normalises them per token: pass policy_kwargs factored_actions=False "
                '(and token_selection="learned")'
            )

    def action_logits(self, observations: Tensor) -> Tensor:
        """The policy's raw action logits ``[B, n_actions]`` (the outcome log-odds)."""
        features = self.policy.extract_features(observations, self.policy.pi_features_extractor)
        latent_pi = self.policy.mlp_extractor.forward_actor(features)
        return self.policy.action_net(latent_pi)

    def train(self) -> None:
        """Fit the played actions' logits to their outcomes, ``n_epochs`` passes over the
        rollout. The buffer's returns are replaced by the labels ``1[r > 0]`` before its
        first pass (with ``gamma=0`` they equal the rewards up to float rounding)."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        buffer = self.rollout_buffer
        if not buffer.generator_ready:
            buffer.returns = (buffer.rewards > 0).astype(np.float32)
        losses, accuracies, right = [], [], []
        for _ in range(self.n_epochs):
            for batch in buffer.get(self.batch_size):
                actions = batch.actions.long().flatten()
                labels = batch.returns
                logits = self.action_logits(batch.observations)
                played = logits.gather(1, actions[:, None]).squeeze(1)
                loss = F.binary_cross_entropy_with_logits(played, labels)
                self.policy.optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()
                losses.append(loss.item())
                accuracies.append(((played > 0).float() == labels).float().mean().item())
                right.append(labels.mean().item())
        self._n_updates += self.n_epochs
        self.logger.record("train/outcome_loss", float(np.mean(losses)))
        self.logger.record("train/outcome_accuracy", float(np.mean(accuracies)))
        self.logger.record("train/right_rate", float(np.mean(right)))
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
