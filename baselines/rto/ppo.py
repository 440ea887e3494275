"""A compact PPO core (Schulman et al., 2017) for token-level RLHF: GAE, the clipped surrogate, the clipped value loss.

Everything here works on (B, T) tensors aligned position by position: a
trajectory is the masked span of a row (the response tokens), ``rewards[b, t]``
is the reward of taking token t, ``values[b, t]`` the critic's value of the
state before it, ``logps[b, t]`` the log-probability the policy gave it. The
module knows nothing about language models: :func:`ppo_update` calls back an
``evaluate`` function for the current log-probs and values of a set of
trajectories, so the same code trains the toy policies of the tests and the
language model of :mod:`baselines.rto.trainer`.

Why a PPO of our own: TRL 1.16 has no PPO trainer any more (only GRPO and
RLOO, which have no critic and no per-token rewards), and OpenRLHF, where RTO
was implemented, is a Ray/DeepSpeed/vLLM cluster framework with its own
model wrappers, launchers and data formats that does not run on this suite's
stack (transformers Trainer-style checkpoints, one CPU for the tests,
accelerate on the cluster). RTO needs exactly the pieces below: a value head,
GAE over dense per-token rewards, and the clipped policy and value losses, so
they are written out here and checked on toy problems with a known optimum
(tests/test_baselines_rto.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class PPOConfig:
    """The PPO knobs; the defaults are the usual choices for RLHF with PPO."""

    gamma: float = 1.0  # discount
    lam: float = 0.95  # GAE lambda
    cliprange: float = 0.2  # policy ratio clip
    cliprange_value: float = 0.2  # value clip around the rollout's values
    ppo_epochs: int = 1  # passes over each rollout batch
    mini_batch_size: int = 8  # trajectories per optimizer step
    micro_batch_size: int = 8  # trajectories per forward/backward (gradient accumulation within a mini batch)
    max_grad_norm: float | None = 1.0
    whiten_advantages: bool = True


@dataclass
class Rollout:
    """One batch of trajectories, (B, T) each, from the policy that generated them (no gradients)."""

    logps: Tensor  # log pi_old of each taken token
    values: Tensor  # V_old of the state before each token
    rewards: Tensor  # per-token rewards
    mask: Tensor  # 1 on the trajectory's tokens
    advantages: Tensor | None = None
    returns: Tensor | None = None

    def __len__(self) -> int:
        return self.mask.shape[0]


# ---------------------------------------------------------------- masked statistics


def masked_sum(x: Tensor, mask: Tensor) -> Tensor:
    return (x * mask).sum()


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    return masked_sum(x, mask) / mask.sum().clamp(min=1)


def masked_whiten(x: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """(x - mean) / std over the masked entries (unbiased variance); 0 off the mask."""
    mean = masked_mean(x, mask)
    n = mask.sum()
    var = masked_sum((x - mean) ** 2, mask) / (n - 1).clamp(min=1)
    return (x - mean) * torch.rsqrt(var + eps) * mask


# ---------------------------------------------------------------- GAE and losses


@torch.no_grad()
def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimates and returns (advantages + values), (B, T) each, 0 off the mask.

    Each row's trajectory is its contiguous masked span; the state after its
    last token is terminal (value 0).
    """
    rewards, values, mask = rewards.float(), values.float(), mask.float()
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros_like(rewards[:, 0])
    next_advantage = torch.zeros_like(rewards[:, 0])
    next_mask = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value * next_mask - values[:, t]
        advantage = (delta + gamma * lam * next_mask * next_advantage) * mask[:, t]
        advantages[:, t] = advantage
        next_value, next_advantage, next_mask = values[:, t], advantage, mask[:, t]
    return advantages, (advantages + values) * mask


def policy_loss(
    logps: Tensor, old_logps: Tensor, advantages: Tensor, mask: Tensor, cliprange: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped surrogate, summed over masked tokens (the caller normalises); and its statistics."""
    log_ratio = logps - old_logps
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = masked_sum(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {
            "clipfrac": masked_sum((clipped > unclipped).float(), mask),
            "approx_kl": masked_sum(0.5 * log_ratio**2, mask),
        }
    return loss, stats


def value_loss(values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, cliprange_value: float) -> Tensor:
    """Clipped value loss 0.5 * max((V - R)^2, (clip(V, V_old +- eps) - R)^2), summed over masked tokens."""
    clipped = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    return 0.5 * masked_sum(torch.maximum((values - returns) ** 2, (clipped - returns) ** 2), mask)


def finish_rollout(rollout: Rollout, config: PPOConfig) -> Rollout:
    """Fill in advantages (whitened over the batch if configured) and returns."""
    advantages, returns = gae(rollout.rewards, rollout.values, rollout.mask, config.gamma, config.lam)
    if config.whiten_advantages:
        advantages = masked_whiten(advantages, rollout.mask)
    rollout.advantages, rollout.returns = advantages, returns
    return rollout


Evaluate = Callable[[Tensor], tuple[Tensor, Tensor]]


def ppo_update(
    rollout: Rollout,
    evaluate: Evaluate,
    optimizers: Sequence[torch.optim.Optimizer],
    config: PPOConfig,
    generator: torch.Generator | None = None,
    backward: Callable[[Tensor], None] = Tensor.backward,
    clip_grad: Callable[[float], None] | None = None,
) -> dict[str, float]:
    """``ppo_epochs`` passes over the rollout in shuffled mini batches; returns the mean statistics.

    ``evaluate(indices)`` returns the current policy's log-probs and the
    critic's values of those trajectories, (len(indices), T) each with
    gradients, aligned with the rollout's tensors. Policy and value losses are
    token means over each mini batch; their sum is backpropagated once
    (actor and critic have separate parameters and optimizers, so each gets
    its own loss's gradient), micro batch by micro batch. ``clip_grad(max_norm)``
    clips the gradients before the optimizers step.
    """
    if rollout.advantages is None or rollout.returns is None:
        raise ValueError("call finish_rollout first: the rollout has no advantages")
    totals: dict[str, float] = {"loss/policy": 0.0, "loss/value": 0.0, "clipfrac": 0.0, "approx_kl": 0.0}
    steps = 0
    device = rollout.mask.device
    for _ in range(config.ppo_epochs):
        order = torch.randperm(len(rollout), generator=generator).to(device)
        for start in range(0, len(rollout), config.mini_batch_size):
            mini = order[start : start + config.mini_batch_size]
            tokens = rollout.mask[mini].sum().clamp(min=1)
            for optimizer in optimizers:
                optimizer.zero_grad(set_to_none=True)
            step: dict[str, float] = dict.fromkeys(totals, 0.0)
            for micro_start in range(0, len(mini), config.micro_batch_size):
                idx = mini[micro_start : micro_start + config.micro_batch_size]
                logps, values = evaluate(idx)
                mask = rollout.mask[idx]
                p_loss, stats = policy_loss(logps, rollout.logps[idx], rollout.advantages[idx], mask, config.cliprange)
                v_loss = value_loss(values, rollout.values[idx], rollout.returns[idx], mask, config.cliprange_value)
                backward((p_loss + v_loss) / tokens)
                step["loss/policy"] += (p_loss / tokens).item()
                step["loss/value"] += (v_loss / tokens).item()
                step["clipfrac"] += (stats["clipfrac"] / tokens).item()
                step["approx_kl"] += (stats["approx_kl"] / tokens).item()
            if clip_grad is not None and config.max_grad_norm is not None:
                clip_grad(config.max_grad_norm)
            for optimizer in optimizers:
                optimizer.step()
            for key, value in step.items():
                totals[key] += value
            steps += 1
    return {key: value / max(steps, 1) for key, value in totals.items()}


__all__ = [
    "PPOConfig",
    "Rollout",
    "finish_rollout",
    "gae",
    "masked_mean",
    "masked_sum",
    "masked_whiten",
    "policy_loss",
    "ppo_update",
    "value_loss",
]
