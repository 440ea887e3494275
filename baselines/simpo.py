"""SimPO (Meng et al., 2024): a reference-free margin loss on length-normalised log-probs.

loss = -log sigma(beta * (avg log pi(y_w) - avg log pi(y_l)) - gamma), with
gamma = gamma_beta_ratio * beta: the SimPO repository's parametrisation (its
per-setting table gives beta and gamma/beta). TRL 1.16's CPOTrainer with
``loss_type="simpo"``, ``cpo_alpha=0`` and ``simpo_gamma=gamma`` computes the
same, label smoothing included: (1 - ls) * -log sigma(z) + ls * -log sigma(-z).

Logged as TRL's CPOTrainer does: rewards are beta times the *averaged*
log-probs, and ``logps/*`` are the averaged log-probs. (TRL's ``logits/*``
means and its ``nll_loss``, which is 0 for SimPO, are not logged: the first
would keep the full logits alive for a diagnostic.)
"""

from __future__ import annotations

import torch.nn.functional as F

from suite.engine import LossOutput, PreferenceBatch
from suite.methods import NON_NEGATIVE, POSITIVE, Method


def simpo_loss(
    batch: PreferenceBatch, beta: float, gamma_beta_ratio: float, label_smoothing: float = 0.0
) -> LossOutput:
    chosen_sum, rejected_sum = batch.sequence_logps()
    chosen = chosen_sum / batch.chosen_mask.sum(-1).clamp(min=1.0)
    rejected = rejected_sum / batch.rejected_mask.sum(-1).clamp(min=1.0)
    logits = beta * (chosen - rejected) - gamma_beta_ratio * beta
    losses = -F.logsigmoid(logits) * (1 - label_smoothing) - F.logsigmoid(-logits) * label_smoothing
    chosen_rewards, rejected_rewards = beta * chosen.detach(), beta * rejected.detach()
    metrics = {
        "rewards/chosen": chosen_rewards,
        "rewards/rejected": rejected_rewards,
        "rewards/accuracies": (chosen_rewards > rejected_rewards).float(),
        "rewards/margins": chosen_rewards - rejected_rewards,
        "logps/chosen": chosen.detach(),
        "logps/rejected": rejected.detach(),
    }
    return LossOutput(losses.mean(), metrics)


METHOD = Method(
    name="simpo",
    loss=simpo_loss,
    reference="none",
    defaults={"beta": 2.0, "gamma_beta_ratio": 0.5, "label_smoothing": 0.0},
    params_schema={
        "beta": POSITIVE,
        "gamma_beta_ratio": NON_NEGATIVE,
        "label_smoothing": {"type": "number", "minimum": 0, "exclusiveMaximum": 0.5},
    },
    description="SimPO, length-normalised and reference-free (TRL CPOTrainer loss_type='simpo', cpo_alpha=0)",
)
