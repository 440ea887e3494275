"""IPO (Azar et al., 2023): (h - 1/(2 tau))^2 on per-token averaged log-ratios, as TRL 1.16's DPOTrainer.

TRL's ``loss_type="ipo"`` divides each side's summed log-ratio by its number
of response tokens before taking the difference h (its code comment: the IPO
authors confirmed this normalisation), with ``beta`` in the role of the
paper's tau. Rewards are logged as TRL does: beta (= tau) times the *summed*
log-ratios.
"""

from __future__ import annotations

from baselines.dpo import weighted_logratios
from suite.engine import LossOutput, PreferenceBatch, dpo_metrics
from suite.methods import POSITIVE, Method


def ipo_loss(batch: PreferenceBatch, tau: float) -> LossOutput:
    chosen, rejected = weighted_logratios(batch)
    chosen_avg = chosen / batch.chosen_mask.sum(-1).clamp(min=1.0)
    rejected_avg = rejected / batch.rejected_mask.sum(-1).clamp(min=1.0)
    losses = (chosen_avg - rejected_avg - 1 / (2 * tau)) ** 2
    return LossOutput(losses.mean(), dpo_metrics(batch, tau * chosen, tau * rejected))


METHOD = Method(
    name="ipo",
    loss=ipo_loss,
    reference="precomputed",
    defaults={"tau": 0.1},
    params_schema={"tau": POSITIVE},
    description="Identity Preference Optimisation, token-averaged log-ratios (TRL loss_type='ipo', beta = tau)",
)
