"""RTO (Zhong et al., 2024, "DPO Meets PPO: Reinforced Token Optimization for RLHF"): PPO with dense token rewards.

A DPO model, trained first, supplies a reward for every token of a sampled
response; PPO then optimises the policy against it. The reward of the t-th
response token y_t (spec, section 4):

    r_t = clip(beta_1 * (log pi_dpo(y_t) - log pi_ref(y_t)), -c, c) - kl_coef * (log pi_theta(y_t) - log pi_ref(y_t))
          + [t is the last response token] * score_coef * RM(x, y)

with beta_1 0.05, c 0.05, kl_coef 0.01 and RM a sequence-level reward model
(trained with TRL's RewardTrainer by :mod:`suite.reward`, or one the config
names). pi_theta is the policy that sampled the response (PPO's "old" policy),
pi_ref the model PPO starts from (also the DPO model's reference).

RTO is not a loss over preference pairs, so it does not train on
:mod:`suite.engine`: :mod:`baselines.rto.trainer` runs the PPO loop (rollouts, these rewards,
:mod:`baselines.rto.ppo`), and the workflow trains it with its own rule
(workflow/rules/baselines.smk). The registry entry exists so that the config,
the tables and the evaluation see RTO like every other method; its defaults
are the hyperparameters ``baselines.rto.trainer`` reads (the config overrides them).
Why the PPO is the suite's own is written in :mod:`baselines.rto.ppo`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from suite.methods import COUNT, NON_NEGATIVE, POSITIVE, UNIT_INTERVAL, Method


def last_token_index(mask: Tensor) -> Tensor:
    """Index of each row's last masked position, (B,) (rows are contiguous spans; an empty row gives 0)."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return (positions * (mask > 0)).amax(dim=1)


@torch.no_grad()
def token_rewards(
    policy_logps: Tensor,
    ref_logps: Tensor,
    dpo_logps: Tensor,
    scores: Tensor,
    mask: Tensor,
    beta_1: float,
    reward_clip: float,
    kl_coef: float,
    score_coef: float = 1.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """RTO's per-token rewards, (B, T), 0 off the mask; and their parts per sequence, (B,) each.

    ``*_logps`` are (B, T) log-probs of the sampled tokens under the sampling
    policy, the reference and the DPO model; ``scores`` (B,) the reward
    model's score of each whole response, added at its last token.
    """
    mask = mask.float()
    dense = torch.clamp(beta_1 * (dpo_logps - ref_logps), -reward_clip, reward_clip) * mask
    kl = (policy_logps - ref_logps) * mask
    rewards = dense - kl_coef * kl
    last = last_token_index(mask)
    rows = torch.arange(mask.shape[0], device=mask.device)
    rewards[rows, last] += score_coef * scores.to(rewards.dtype) * (mask.sum(1) > 0)
    parts = {"dense": dense.sum(1), "kl": kl.sum(1), "score": scores.float(), "return": rewards.sum(1)}
    return rewards * mask, parts


def rto_loss(batch: Any, **params: Any) -> Any:
    raise TypeError(
        "RTO is PPO on sampled responses, not a loss over preference pairs: train it with "
        "`python -m pipeline.rto` (the workflow's train_rto rule), not suite.train"
    )


METHOD = Method(
    name="rto",
    loss=rto_loss,
    reference="none",
    defaults={
        # token rewards (spec, section 4)
        "beta_1": 0.05,
        "reward_clip": 0.05,
        "kl_coef": 0.01,
        "score_coef": 1.0,
        # optimisers: actor = the policy, critic = a value model (see critic_init)
        "actor_lr": 5.0e-7,
        "critic_lr": 9.0e-6,
        # PPO (baselines.rto.ppo.PPOConfig); micro batches are the training block's per_device_train_batch_size
        "rollout_batch_size": 128,  # prompts sampled per PPO iteration (per process)
        "mini_batch_size": 32,
        "ppo_epochs": 1,
        "gamma": 1.0,
        "lam": 0.95,
        "cliprange": 0.2,
        "cliprange_value": 0.2,
        "max_grad_norm": 1.0,
        "whiten_advantages": True,
        "max_new_tokens": 1024,  # rollouts sample at temperature 1 from the full distribution
        # the critic starts from the reward model (as OpenRLHF's PPO does) or from the policy, with a fresh head
        "critic_init": "reward_model",
        # reward model: a name under the config's reward_models, or null = one trained per variant
        # (TRL RewardTrainer, from the variant's start model on its preference data) with these settings
        "reward_model": None,
        "reward_model_training": {},
        "reward_model_held_out": 0.05,
        "reward_batch_size": 8,
    },
    description="RTO: PPO with dense DPO token rewards, a KL penalty and a final reward-model score (rto.trainer)",
    params_schema={
        "beta_1": POSITIVE,
        "reward_clip": POSITIVE,
        "kl_coef": NON_NEGATIVE,
        "score_coef": {"type": "number"},
        "actor_lr": POSITIVE,
        "critic_lr": POSITIVE,
        "rollout_batch_size": COUNT,
        "mini_batch_size": COUNT,
        "ppo_epochs": COUNT,
        "gamma": UNIT_INTERVAL,
        "lam": UNIT_INTERVAL,
        "cliprange": POSITIVE,
        "cliprange_value": POSITIVE,
        "max_grad_norm": POSITIVE,
        "whiten_advantages": {"type": "boolean"},
        "max_new_tokens": COUNT,
        "critic_init": {"enum": ["reward_model", "policy"]},
        "reward_model": {"type": ["string", "null"]},
        # a partial training block over the variant's (checked against the training schema by pipeline.config)
        "reward_model_training": {"type": "object"},
        "reward_model_held_out": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
        "reward_batch_size": COUNT,
    },
)
