"""REINFORCE with deep supervision: a policy-gradient loss at every recursive cycle.

One update, with ``H`` cycles of which the first ``n`` are supervised (``n = H`` unless a
curriculum is on) and the agent acting from cycle ``n``::

    run one episode per env, a_t ~ softmax(mask(logits_n(s_t)))
    G_t = r_t + gamma G_{t+1}                              # Monte-Carlo returns
    A_t = G_t - b(s_t)         (normalised)                # value head or running mean
    L_k = -mean_t c_kt A_t log pi_k(a_t | s_t) - ent_coef mean_t H(pi_k(. | s_t)),  k = 1..n
    loss = sum_k w_k L_k - improvement_scale * bonus       # w: ReinforceConfig.cycle_weights
    Adam step (linear LR warm-up), gradient norm clipped

Every cycle learns from the actions the acting cycle ``n`` chose; ``c_nt = 1`` (the plain
policy gradient), and for an earlier cycle ``k`` (``ReinforceConfig.cycle_loss``):

- ``"imitate"`` (the signal the original write-up meant its deep supervision to give):
  ``c = 1``. Cycle ``k`` is pushed towards the acting cycle's actions with positive
  advantage and *away* from the others, including actions it already gives almost no
  probability: off-policy, that push does not fade, and it sharpens the early cycles' logits.
- ``"importance"``: ``c = sg[min(rho_bar, pi_k(a_t) / pi_n(a_t))]``, so ``L_k`` estimates
  cycle ``k``'s own policy gradient; it fades where cycle ``k`` disagrees with the acting one.
- ``"positive"``: ``c = 1[A_t > 0]``, imitation of the better-than-baseline actions only.

Unlike the original, each cycle's loss is applied to that cycle's own logits. Truncated
episodes are not bootstrapped (pure Monte-Carlo returns).

References: the original TRM-for-RL write-up (REINFORCE, ``1 + 0.1 k`` cycle weights) and the
TRM progressive-refinement guide (exponential weights, improvement reward, warm-up,
gradient clipping, curriculum).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
import torch.nn.functional as F
from stable_baselines3.common.utils import get_device
from torch import Tensor, nn
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from trm_rl import __version__
from trm_rl.agents.loading import read_config, safe_torch_load
from trm_rl.agents.reinforce.agent import ReinforceAgent, build_policy, mask_logits
from trm_rl.agents.reinforce.config import CYCLE_LOSSES, ReinforceConfig
from trm_rl.agents.reinforce.rollout import collect_episodes, make_envs
from trm_rl.agents.sb3.policy import POLICY_DEFAULTS, TRM_FIELDS, resolve_mixer
from trm_rl.atomic import atomic_path
from trm_rl.config import TRMConfig, require_choice, require_int

TRM_DEFAULTS: dict[str, Any] = {
    **{name: POLICY_DEFAULTS[name] for name in TRM_FIELDS},
    "grad_mode": "full",
}
"""The core by default: ``TRMPolicy``'s defaults (``mixer="auto"``: conv on grids, none on
vectors), but ``grad_mode="full"``, since deep supervision needs every cycle's gradient."""

Callback = Callable[[dict[str, Any]], bool | None]
"""Called after every update with its statistics; returning False stops training."""

__all__ = ["ReinforceAgent", "ReinforceConfig", "improvement_bonus", "resume", "train"]


def cycle_losses(
    logits: Tensor,
    actions: Tensor,
    advantages: Tensor,
    acting: int | None = None,
    mode: str = "importance",
    importance_clip: float = 1.0,
) -> tuple[Tensor, ...]:
    """Per-cycle policy-gradient losses and entropies.

    Args:
        logits: ``[H, N, A]`` every cycle's (already masked) logits.
        actions: ``[N]`` the actions taken.
        advantages: ``[N]`` (treated as constants).
        acting: the cycle that chose the actions (default: the last). Its term is always
            ``-A_t log pi(a_t)``.
        mode: the other cycles' coefficient ``c_kt`` (see the module docstring):
            "importance" (``min(importance_clip, pi_k(a_t) / pi_acting(a_t))``, detached; the
            default, as :class:`ReinforceConfig`'s), "positive" (``1[A_t > 0]``) or
            "imitate" (1).
        importance_clip: the truncation of the ratios (> 0).

    Returns:
        ``pg [H]`` (``-mean_t c_kt A_t log pi_k(a_t)``), ``entropy [H]`` (mean over steps)
        and ``log_probs [H, N]`` of the taken actions.
    """
    require_choice("mode", mode, CYCLE_LOSSES)
    log_pi = logits.log_softmax(dim=-1)
    log_probs = log_pi.gather(-1, actions.expand(logits.shape[0], -1).unsqueeze(-1)).squeeze(-1)
    entropy = -(log_pi.exp() * log_pi).sum(dim=-1).mean(dim=-1)
    advantages = advantages.detach()
    acting = logits.shape[0] - 1 if acting is None else acting
    if mode == "imitate":
        weighted = advantages.expand_as(log_probs)
    elif mode == "importance":
        ratios = (log_probs - log_probs[acting]).detach().exp().clamp(max=importance_clip)
        weighted = ratios * advantages
    else:
        weighted = advantages.clamp(min=0.0).expand_as(log_probs).clone()
        weighted[acting] = advantages
    pg = -(weighted * log_probs).mean(dim=-1)
    return pg, entropy, log_probs


def improvement_bonus(log_probs: Tensor, advantages: Tensor) -> Tensor:
    """How much each cycle improves on the one before, ``(1/(n-1)) sum_k mean_t tanh(g_kt)``.

    ``g_kt = A_t (log pi_k(a_t|s_t) - sg[log pi_{k-1}(a_t|s_t)])``, ``k = 1 .. n-1``: positive
    when cycle ``k`` puts more probability than cycle ``k-1`` on an action with positive
    advantage (or less on one with negative advantage). Unlike the refinement guide's
    ``(L_{k-1} - L_k) / L_{k-1}``, it never divides by a loss, so it stays defined and
    bounded (in [-1, 1]) when policy-gradient losses change sign or cross zero; ``sg``
    (stop-gradient) on the earlier cycle means no cycle is pushed down to flatter the next;
    and ``tanh`` saturates, so the push fades once a cycle is clearly ahead. The trainer
    subtracts ``improvement_scale`` times it from the loss.

    Args:
        log_probs: ``[n, N]`` log-probabilities of the taken actions at the supervised cycles.
        advantages: ``[N]`` (treated as constants).

    Returns:
        A scalar; 0 when ``n < 2``.
    """
    if log_probs.shape[0] < 2:
        return log_probs.new_zeros(())
    gain = advantages.detach() * (log_probs[1:] - log_probs[:-1].detach())
    return torch.tanh(gain).mean()


class ValueBaseline(nn.Module):
    """``b(s)``: an MLP on the last cycle's *detached* features, fitted to returns by MSE.

    Detached, so the baseline never shapes the core: the per-cycle policy losses alone do.
    """

    def __init__(self, features_dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(features_dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, features: Tensor) -> Tensor:
        """``features [N, F]`` -> ``[N]``."""
        return self.net(features.detach()).squeeze(-1)

    def fit(self, features: Tensor, returns: Tensor) -> Tensor:
        """The loss to minimise: ``mean (b(s_t) - G_t)^2``."""
        return F.mse_loss(self(features), returns)


class MeanBaseline(nn.Module):
    """``b``: an exponential moving average of the returns (state-independent)."""

    def __init__(self, momentum: float) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("started", torch.zeros((), dtype=torch.bool))

    def forward(self, features: Tensor) -> Tensor:
        """``features [N, F]`` -> the running mean, ``[N]``."""
        return self.mean.expand(features.shape[0])

    @torch.no_grad()
    def fit(self, features: Tensor, returns: Tensor) -> Tensor:
        """Fold the batch's mean return into the average; nothing to backpropagate (0)."""
        momentum = self.momentum if bool(self.started) else 0.0
        self.mean.mul_(momentum).add_((1.0 - momentum) * returns.mean())
        self.started.fill_(True)
        return returns.new_zeros(())


def train(
    env_id: str,
    config: ReinforceConfig | None = None,
    *,
    env_kwargs: dict[str, Any] | None = None,
    policy: str = "trm",
    trm: TRMConfig | None = None,
    focus_channel: int | None = None,
    n_envs: int = 8,
    timesteps: int | None = None,
    seed: int = 0,
    out_dir: str | Path | None = None,
    tensorboard_dir: str | Path | None = None,
    progress_bar: bool = False,
    callback: Callback | None = None,
    wrapper_class: Callable[[gym.Env], gym.Env] | None = None,
) -> ReinforceAgent:
    """Train a per-cycle policy with REINFORCE and deep supervision.

    Args:
        env_id: a registered Gymnasium id with a ``Discrete`` action space.
        config: the algorithm's hyperparameters (``ReinforceConfig()`` if None).
        env_kwargs: passed to ``gym.make``.
        policy: "trm" (recursive core) or "mlp" (a baseline with the TRM's parameter count).
        trm: the core's config (None: :data:`TRM_DEFAULTS`, the mixer chosen for the
            observations); for "mlp", the size to match.
        focus_channel: grid channel the TRM readout pools at (1: the agent in a maze);
            None learns the pool.
        n_envs: parallel envs, i.e. episodes per update.
        timesteps: stop once this many env steps were trained on; None: ``config.episodes``.
        seed: seeds the network, the action sampling and the envs' first reset.
        out_dir: the agent directory (``config.json``, ``model.pt``, ``checkpoint.pt``,
            TensorBoard logs under ``tb/``); None writes nothing.
        tensorboard_dir: TensorBoard directory instead of ``out_dir/tb``.
        progress_bar: show a tqdm bar.
        callback: called after every update with a dict of the counters (``update``,
            ``env_steps``, ``episodes``) and the update's TensorBoard scalars (names as
            logged, e.g. ``"rollout/success_rate"``); returning ``False`` stops training
            (after a checkpoint).
        wrapper_class: wraps every training env (as SB3's ``make_vec_env``), e.g. to record
            the layouts seen; not saved, so :func:`resume` does not reapply it.

    Raises:
        ValueError: no budget, or per-cycle training (deep supervision, improvement bonus or
            curriculum) with ``trm.grad_mode="last"``, whose early cycles carry no gradient.
    """
    config = config or ReinforceConfig()
    if timesteps is None and config.episodes is None:
        raise ValueError("set a budget: timesteps (env steps) or config.episodes")
    require_int("timesteps", timesteps, 1, allow_none=True)
    require_int("n_envs", n_envs, 1)
    probe = gym.make(env_id, **(env_kwargs or {}))
    spaces = (probe.observation_space, probe.action_space)
    probe.close()
    if trm is None:
        mixer = resolve_mixer(spaces[0], TRM_DEFAULTS["mixer"], "single")
        trm = TRMConfig(**{**TRM_DEFAULTS, "mixer": mixer})
    per_cycle = config.deep_supervision or config.curriculum_updates > 0
    if policy == "trm" and trm.grad_mode == "last" and per_cycle:
        raise ValueError(
            'trm.grad_mode="last" runs the early cycles without gradients, so their losses '
            'cannot train the core: use grad_mode="full", or deep_supervision=False and '
            "curriculum_updates=0"
        )
    mlp_hidden = None
    if policy == "mlp":
        mlp_hidden = build_policy(*spaces, "mlp", trm, None, focus_channel).features_dim
    if out_dir is not None and tensorboard_dir is None:
        tensorboard_dir = Path(out_dir) / "tb"
    run_config = {
        "algo": "reinforce",
        "policy": policy,
        "env_id": env_id,
        "env_kwargs": dict(env_kwargs or {}),
        "seed": seed,
        "timesteps": timesteps,
        "n_envs": n_envs,
        "trm": trm.to_dict() if policy == "trm" else None,
        "mlp_hidden": mlp_hidden,
        "focus_channel": focus_channel,
        "reinforce": config.to_dict(),
        "tensorboard": str(tensorboard_dir) if tensorboard_dir is not None else None,
        "trm_rl_version": __version__,
    }
    return _learn(run_config, out_dir, progress_bar, None, callback, wrapper_class)


def resume(
    directory: str | Path,
    *,
    timesteps: int | None = None,
    episodes: int | None = None,
    progress_bar: bool = False,
    callback: Callback | None = None,
) -> ReinforceAgent:
    """Continue the run saved in ``directory`` from its last checkpoint.

    Everything comes from ``directory/config.json`` except the budgets: ``timesteps`` and
    ``episodes``, when given, set new totals counted from the start of the original run.
    An interrupted run resumed this way gives the same numbers as an uninterrupted one.
    ``callback`` is :func:`train`'s.
    """
    directory = Path(directory)
    if not (directory / "checkpoint.pt").is_file():
        raise ValueError(f"{directory} has no checkpoint.pt to resume from")
    run_config = read_config(directory)
    if timesteps is not None:
        run_config["timesteps"] = timesteps
    if episodes is not None:
        run_config["reinforce"]["episodes"] = episodes
    ReinforceConfig(**run_config["reinforce"])
    checkpoint = safe_torch_load(directory / "checkpoint.pt")
    return _learn(run_config, directory, progress_bar, checkpoint, callback, None)


def _learn(
    run_config: dict[str, Any],
    out_dir: str | Path | None,
    progress_bar: bool,
    checkpoint: dict[str, Any] | None,
    callback: Callback | None,
    wrapper_class: Callable[[gym.Env], gym.Env] | None,
) -> ReinforceAgent:
    """The training loop of :func:`train` and :func:`resume`."""
    config = ReinforceConfig(**run_config["reinforce"])
    device = get_device(config.device)
    seed, timesteps = run_config["seed"], run_config["timesteps"]
    torch.manual_seed(seed)
    envs = make_envs(
        run_config["env_id"], run_config["env_kwargs"], run_config["n_envs"], wrapper_class
    )
    envs.reset(seed=seed)
    policy = build_policy(
        envs.single_observation_space,
        envs.single_action_space,
        run_config["policy"],
        TRMConfig(**run_config["trm"]) if run_config["trm"] is not None else None,
        run_config["mlp_hidden"],
        run_config["focus_channel"],
    ).to(device)
    baseline = (
        ValueBaseline(policy.features_dim)
        if config.baseline == "value"
        else MeanBaseline(config.baseline_momentum)
    ).to(device)
    optimizer = torch.optim.Adam(
        [*policy.parameters(), *baseline.parameters()], lr=config.learning_rate
    )
    warmup = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda update: min(1.0, (update + 1) / config.warmup_updates)
    )
    generator = torch.Generator(device).manual_seed(seed)
    progress = {"update": 0, "env_steps": 0, "episodes": 0}
    if checkpoint is not None:
        policy.load_state_dict(checkpoint["policy"])
        baseline.load_state_dict(checkpoint["baseline"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        warmup.load_state_dict(checkpoint["warmup"])
        generator.set_state(checkpoint["generator"])
        for rng, state in zip(envs.np_random, checkpoint["env_rng"], strict=True):
            rng.bit_generator.state = state
        progress = dict(checkpoint["progress"])
    agent = ReinforceAgent(
        policy, envs.single_observation_space, envs.single_action_space, run_config
    )
    writer = None
    if run_config["tensorboard"] is not None:
        writer = SummaryWriter(run_config["tensorboard"], purge_step=progress["env_steps"])
    budget, done_key = (
        (timesteps, "env_steps") if timesteps is not None else (config.episodes, "episodes")
    )
    bar = tqdm(total=budget, initial=progress[done_key], unit=done_key, disable=not progress_bar)

    def budget_left() -> bool:
        steps_left = timesteps is None or progress["env_steps"] < timesteps
        episodes_left = config.episodes is None or progress["episodes"] < config.episodes
        return steps_left and episodes_left

    def save() -> None:
        agent.save(out_dir)
        state = {
            "policy": policy.state_dict(),
            "baseline": baseline.state_dict(),
            "optimizer": optimizer.state_dict(),
            "warmup": warmup.state_dict(),
            "generator": generator.get_state(),
            "env_rng": [rng.bit_generator.state for rng in envs.np_random],
            "progress": progress,
        }
        with atomic_path(Path(out_dir) / "checkpoint.pt") as temporary:
            torch.save(state, temporary)

    while budget_left():
        # 1. Roll out one episode per env, acting from the last supervised cycle.
        n_supervised = config.supervised_cycles(progress["update"], policy.n_cycles)
        batch = collect_episodes(envs, policy, n_supervised - 1, config.gamma, generator)

        # 2. Advantages against the baseline.
        logits, features = policy(batch.obs)
        logits = mask_logits(logits, batch.masks)
        advantages = batch.returns - baseline(features[-1]).detach()
        if config.normalize_advantages:
            advantages = (advantages - advantages.mean()) / (advantages.std(False) + 1e-8)

        # 3. Weighted per-cycle policy-gradient loss, entropy and improvement bonuses.
        pg, entropy, log_probs = cycle_losses(
            logits,
            batch.actions,
            advantages,
            n_supervised - 1,
            config.cycle_loss,
            config.importance_clip,
        )
        weights = torch.zeros(policy.n_cycles, device=device)
        weights[:n_supervised] = config.cycle_weights(n_supervised).to(device)
        bonus = improvement_bonus(log_probs[:n_supervised], advantages)
        loss = (weights * (pg - config.ent_coef * entropy)).sum()
        loss = loss - config.improvement_scale * bonus
        baseline_loss = baseline.fit(features[-1], batch.returns)

        # 4. One Adam step, gradients clipped (policy and baseline separately).
        optimizer.zero_grad()
        (loss + baseline_loss).backward()
        grad_norm = nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
        if config.baseline == "value":
            nn.utils.clip_grad_norm_(baseline.parameters(), config.max_grad_norm)
        optimizer.step()
        warmup.step()

        # 5. Bookkeeping: counters, TensorBoard, callback, progress bar, checkpoint.
        progress["update"] += 1
        progress["env_steps"] += int(batch.actions.shape[0])
        progress["episodes"] += len(batch.episode_lengths)
        stats = {
            **{f"cycles/policy_loss_{k}": pg[k].item() for k in range(policy.n_cycles)},
            **{f"cycles/entropy_{k}": entropy[k].item() for k in range(policy.n_cycles)},
            "rollout/return": float(batch.episode_returns.mean()),
            "rollout/episode_length": float(batch.episode_lengths.mean()),
            "train/loss": loss.item(),
            "train/baseline_loss": baseline_loss.item(),
            "train/improvement_bonus": bonus.item(),
            "train/grad_norm": grad_norm.item(),
            "train/learning_rate": warmup.get_last_lr()[0],
            "train/supervised_cycles": n_supervised,
            "train/episodes": progress["episodes"],
        }
        if batch.successes is not None:
            stats["rollout/success_rate"] = float(batch.successes.mean())
            bar.set_postfix(success=f"{stats['rollout/success_rate']:.2f}")
        if writer is not None:
            for name, value in stats.items():
                writer.add_scalar(name, value, progress["env_steps"])
        bar.update(progress[done_key] - bar.n)
        stop = callback is not None and callback({**progress, **stats}) is False
        if out_dir is not None and (
            stop or progress["update"] % config.checkpoint_every == 0 or not budget_left()
        ):
            save()
        if stop:
            break

    bar.close()
    envs.close()
    if writer is not None:
        writer.close()
    policy.eval()
    return agent
