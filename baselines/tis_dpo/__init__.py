"""TIS-DPO (Liu et al., 2024, token-level importance sampling for DPO): DPO with token weights from contrastive models.

Two models trained on the same pairs, a DPO model and a "reverse" DPO model
(chosen and rejected swapped), disagree most on the tokens that carry the
preference. Each response token gets a raw score from their log-prob
difference (spec, section 4):

    chosen tokens:   s_t = log p_dpo(y_t) - log p_rev(y_t)
    rejected tokens: s_t = log p_rev(y_t) - log p_dpo(y_t)

and a weight in [low, high] = [0.7, 1.3] by one of two transforms:

* ``rank``: the tokens of each response are ranked by score (ties share
  their mean rank) and spread linearly over [low, high]; a one-token response
  gets the midpoint. [choice] Ranks are taken within each response, so every
  response's weights average to (low + high) / 2 = 1: the weights move the
  emphasis between tokens without rescaling a sequence's log-ratio.
* ``clip``: s is clipped to [-clip, clip] (clip 1.5) and mapped linearly onto
  [low, high] (s = 0, where the models agree, gives the midpoint).

The weights are computed once per variant by ``python -m pipeline.tis_weights``
(the workflow's ``tis_weights`` rule, after the reverse-DPO rule; the DPO model
is the DPO run of the same variant) and stored keyed by record id with the
tokenisation fingerprint. ``suite.train --artifact`` loads them and passes
them to the loss, which places each record's weights on its response tokens
(as DPO-Random does with its seeded weights) and takes DPO's loss on the
weighted log-ratios.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from baselines.dpo import weighted_dpo_by_record
from suite.engine import LossOutput, PreferenceBatch
from suite.methods import NON_NEGATIVE, POSITIVE, Method, ordered

TRANSFORMS = ("rank", "clip")
# The parameters that decide the weights; the stored artifact records them and the loss checks they still hold.
WEIGHT_PARAMS = ("contrastive_beta", "transform", "low", "high", "clip")


def raw_scores(dpo_logps: Tensor, reverse_logps: Tensor, side: str) -> Tensor:
    """Per-token scores of one response from the two models' log-probs of its tokens."""
    if side == "chosen":
        return dpo_logps - reverse_logps
    if side == "rejected":
        return reverse_logps - dpo_logps
    raise ValueError(f"side must be 'chosen' or 'rejected', got {side!r}")


def average_ranks(scores: Tensor) -> Tensor:
    """0-based ranks of a 1-D tensor (smallest 0), ties sharing their mean rank."""
    n = scores.numel()
    order = torch.argsort(scores, stable=True)
    ranks = torch.empty(n, dtype=torch.float64)
    ranks[order] = torch.arange(n, dtype=torch.float64)
    values, inverse = torch.unique(scores, return_inverse=True)
    sums = torch.zeros(len(values), dtype=torch.float64).index_add_(0, inverse, ranks)
    counts = torch.zeros(len(values), dtype=torch.float64).index_add_(0, inverse, torch.ones(n, dtype=torch.float64))
    return (sums / counts)[inverse]


def score_weights(scores: Tensor, transform: str, low: float, high: float, clip: float) -> Tensor:
    """Weights in [low, high] of one response's token scores, (n,) float32."""
    if not low <= high:
        raise ValueError(f"tis_dpo: need low <= high, got low={low}, high={high}")
    scores = scores.detach().double().cpu().reshape(-1)
    if transform == "rank":
        n = scores.numel()
        if n == 0:
            return torch.zeros(0)
        position = average_ranks(scores) / (n - 1) if n > 1 else torch.full((1,), 0.5, dtype=torch.float64)
    elif transform == "clip":
        if clip <= 0:
            raise ValueError(f"tis_dpo: clip must be positive, got {clip}")
        position = (scores.clamp(-clip, clip) + clip) / (2 * clip)
    else:
        raise ValueError(f"tis_dpo: unknown transform {transform!r}; valid: {', '.join(TRANSFORMS)}")
    return (low + (high - low) * position).float()


def token_weights(
    dpo_logps: Mapping[str, Mapping[str, Tensor]],
    reverse_logps: Mapping[str, Mapping[str, Tensor]],
    transform: str,
    low: float,
    high: float,
    clip: float,
) -> dict[str, dict[str, Tensor]]:
    """Weights of every record's response tokens, keyed by record id then side, from the two models' log-probs."""
    if set(dpo_logps) != set(reverse_logps):
        raise ValueError("the DPO and reverse-DPO log-probs cover different records")
    weights = {}
    for record_id, dpo in dpo_logps.items():
        weights[record_id] = {}
        for side in ("chosen", "rejected"):
            if dpo[side].shape != reverse_logps[record_id][side].shape:
                raise ValueError(f"record {record_id!r} ({side}): the two models saw different tokenisations")
            scores = raw_scores(dpo[side], reverse_logps[record_id][side], side)
            weights[record_id][side] = score_weights(scores, transform, low, high, clip)
    return weights


def place_weights(values: Mapping[str, Mapping[str, Tensor]], ids: list[str], mask: Tensor, side: str) -> Tensor:
    """(B, T) weights for a (B, T) response mask from stored per-record weights; 0 off the response."""
    weights = torch.zeros(mask.shape, dtype=torch.float32)
    positions = mask.detach().cpu().bool()
    for row, record_id in enumerate(ids):
        if record_id not in values:
            raise KeyError(f"tis_dpo: no token weights for record {record_id!r}: rerun the tis_weights rule")
        stored = torch.as_tensor(values[record_id][side], dtype=torch.float32)
        n_tokens = int(positions[row].sum())
        if len(stored) != n_tokens:
            raise ValueError(
                f"tis_dpo: record {record_id!r} ({side}) has {len(stored)} stored weights and {n_tokens} "
                "response tokens: the weights were computed with another tokenisation"
            )
        weights[row, positions[row]] = stored
    return weights.to(device=mask.device, dtype=mask.dtype)


def tis_dpo_loss(
    batch: PreferenceBatch,
    beta: float,
    artifact: Mapping[str, Any] | None = None,
    **weight_params: Any,
) -> LossOutput:
    """Weighted DPO with the stored TIS weights; ``weight_params`` must match the ones the weights were built with."""
    if artifact is None:
        raise ValueError("tis_dpo needs its token weights (suite.train --artifact results/tis_weights/<variant>.pt)")
    unknown = set(weight_params) - set(WEIGHT_PARAMS)
    if unknown:
        raise TypeError(f"tis_dpo: unknown parameters {sorted(unknown)}")
    stored = artifact.get("params", {})
    stale = {k: (stored.get(k), v) for k, v in weight_params.items() if k in stored and stored[k] != v}
    if stale:
        raise ValueError(f"tis_dpo: the token weights were built with other settings (stored, asked): {stale}")
    return weighted_dpo_by_record(
        batch, beta, "tis_dpo", lambda ids, mask, side: place_weights(artifact["values"], ids, mask, side)
    )


METHOD = Method(
    name="tis_dpo",
    loss=tis_dpo_loss,
    reference="precomputed",
    defaults={"beta": 0.1, "contrastive_beta": 0.1, "transform": "rank", "low": 0.7, "high": 1.3, "clip": 1.5},
    params_schema={
        "beta": POSITIVE,
        "contrastive_beta": POSITIVE,
        "transform": {"enum": list(TRANSFORMS)},
        "low": NON_NEGATIVE,
        "high": NON_NEGATIVE,
        "clip": POSITIVE,
    },
    check_params=ordered("low", "high"),
    description="DPO with token weights from a DPO and a reverse-DPO model (weights: baselines.tis_dpo.weights)",
    artifact="tis_weights",
)
