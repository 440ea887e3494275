"""DPO-Random: token-weighted DPO with i.i.d. U(low, high) weights, the control for informed token weights.

If AAO's (or TIS-DPO's) gains came from any re-weighting of tokens rather than
from *informed* weights, random weights in the same range would show them too.

The weights are a pure function of (seed, record id, side, response-token
index): each record draws its own stream from a generator seeded by a hash of
(seed, id, side), and the k-th response token takes the k-th draw. So a
record's weights do not depend on the other records in its batch, on padding,
or on the step (a resumed run, another batch size or another number of GPUs
sees the same weights), and cutting a response shorter keeps the weights of
the tokens that remain. A token keeps its weight in every epoch.
"""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor

from baselines.dpo import weighted_dpo_by_record
from suite.engine import LossOutput, PreferenceBatch
from suite.methods import NON_NEGATIVE, POSITIVE, Method, ordered


def record_weights(record_id: str, side: str, n_tokens: int, seed: int, low: float, high: float) -> Tensor:
    """The weights of one response's ``n_tokens`` tokens, (n_tokens,) float32 on the CPU."""
    digest = hashlib.sha256(f"dpo_random\0{seed}\0{record_id}\0{side}".encode()).digest()
    generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)
    return low + (high - low) * torch.rand(n_tokens, generator=generator, dtype=torch.float32)


def random_weights(ids: list[str], mask: Tensor, side: str, seed: int, low: float, high: float) -> Tensor:
    """(B, T) weights for a (B, T) response mask; 0 off the response."""
    weights = torch.zeros(mask.shape, dtype=torch.float32)
    positions = mask.detach().cpu().bool()
    for row, record_id in enumerate(ids):
        n_tokens = int(positions[row].sum())
        weights[row, positions[row]] = record_weights(record_id, side, n_tokens, seed, low, high)
    return weights.to(device=mask.device, dtype=mask.dtype)


def dpo_random_loss(batch: PreferenceBatch, beta: float, low: float, high: float, seed: int) -> LossOutput:
    if not 0 <= low <= high:
        raise ValueError(f"dpo_random: need 0 <= low <= high, got low={low}, high={high}")
    return weighted_dpo_by_record(
        batch, beta, "dpo_random", lambda ids, mask, side: random_weights(ids, mask, side, seed, low, high)
    )


METHOD = Method(
    name="dpo_random",
    loss=dpo_random_loss,
    reference="precomputed",
    defaults={"beta": 0.01, "low": 0.7, "high": 1.3, "seed": 42},
    params_schema={"beta": POSITIVE, "low": NON_NEGATIVE, "high": NON_NEGATIVE, "seed": {"type": "integer"}},
    check_params=ordered("low", "high"),
    description="DPO with i.i.d. U(low, high) token weights, seeded per (record, side, token): the random control",
)
