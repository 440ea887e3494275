"""DPO (Rafailov et al., 2023): -log sigma(beta * (log-ratio chosen - log-ratio rejected)).

The token-weighted form lives here too, because AAO, TIS-DPO and DPO-Random
are all DPO with per-token weights on the log-ratios.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch.nn.functional as F
from torch import Tensor

from suite.engine import LossOutput, PreferenceBatch, dpo_metrics
from suite.methods import POSITIVE, Method


def weighted_logratios(
    batch: PreferenceBatch, chosen_weights: Tensor | None = None, rejected_weights: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """sum_t w_t * (log pi - log pi_ref) over response tokens, per side; weights (B, T) or None for 1."""
    if batch.ref_chosen_logps is None or batch.ref_rejected_logps is None:
        raise ValueError("DPO-style losses need reference log-probs")
    chosen = (batch.chosen_logps - batch.ref_chosen_logps) * batch.chosen_mask
    rejected = (batch.rejected_logps - batch.ref_rejected_logps) * batch.rejected_mask
    if chosen_weights is not None:
        chosen = chosen * chosen_weights
    if rejected_weights is not None:
        rejected = rejected * rejected_weights
    return chosen.sum(-1), rejected.sum(-1)


def weighted_dpo_loss(
    batch: PreferenceBatch,
    beta: float,
    chosen_weights: Tensor | None = None,
    rejected_weights: Tensor | None = None,
) -> LossOutput:
    """DPO's sigmoid loss on (optionally token-weighted) log-ratios, with TRL's metrics."""
    chosen, rejected = weighted_logratios(batch, chosen_weights, rejected_weights)
    losses = -F.logsigmoid(beta * (chosen - rejected))
    return LossOutput(losses.mean(), dpo_metrics(batch, beta * chosen, beta * rejected))


def weighted_dpo_by_record(
    batch: PreferenceBatch, beta: float, method: str, side_weights: Callable[[Sequence[str], Tensor, str], Tensor]
) -> LossOutput:
    """Weighted DPO whose token weights are looked up per record (DPO-Random, TIS-DPO), with their means logged.

    ``side_weights(ids, mask, side)`` returns the (B, T) weights of one side
    of the batch's records; record ids come from the engine's collator.
    """
    ids = batch.extras.get("ids")
    if ids is None:
        raise ValueError(f"{method} needs the record ids in batch.extras['ids'] (the engine's collator adds them)")
    chosen = side_weights(ids, batch.chosen_mask, "chosen")
    rejected = side_weights(ids, batch.rejected_mask, "rejected")
    output = weighted_dpo_loss(batch, beta, chosen, rejected)
    for side, weights, mask in (("chosen", chosen, batch.chosen_mask), ("rejected", rejected, batch.rejected_mask)):
        output.metrics[f"weights/{side}_mean"] = weights.sum(-1) / mask.sum(-1).clamp(min=1)
    return output


def dpo_loss(batch: PreferenceBatch, beta: float) -> LossOutput:
    return weighted_dpo_loss(batch, beta)


METHOD = Method(
    name="dpo",
    loss=dpo_loss,
    reference="precomputed",
    defaults={"beta": 0.01},
    params_schema={"beta": POSITIVE},
    description="Direct Preference Optimization, sigmoid loss (TRL loss_type='sigmoid')",
)
