"""Adaptive thresholds: the AW module, a, b = AW(P(y | x, theta)) (method spec 3.4).

A light MLP maps detached per-pair summary statistics of the policy's token
distribution to two logits z = (z_1, z_2), turned into thresholds by

    b = (1 - 2 m) sigma(z_1),        a = b + max((1 - b) sigma(z_2), m),     m = MARGIN

so that 1 >= a > b >= 0 holds by construction for any input, in float32, with
a - b >= m (the spec's b = sigma(z_1), a = b + (1 - b) sigma(z_2), guarded
against saturation: for large |z| a plain sigmoid rounds to exactly 0 or 1 and
a would equal b). The module always computes in float32, whatever dtype the
policy it is attached to was cast to.

Input features ([choice] ``aw_features``), per pair, all detached:

* ``logp``: mean and std of the policy's token log-probs over the chosen and
  over the rejected response's tokens (4 features, free: the batch has them);
* ``logp_entropy`` (default): those plus mean and std of the policy's
  token entropies H_t = -sum_v p_v log p_v on each side (8 features). The
  entropies come from the policy's logits the engine hands over (``needs_logits``:
  views of the forward's logits at the positions that predict each response
  token), detached, for response tokens only, as many at a time as the engine's
  log-probs take (``suite.engine.chunk_positions``: ~128 MiB of float32 per
  chunk, 261 positions of a 128k vocabulary), so no float32 copy of all the
  logits is made and no output layer runs again.
  Features only ever use logits; the similarity only hidden states or embeddings.

Each feature goes through sign(x) log(1 + |x|) before the MLP, which keeps
log-probs (-1e1), entropies (1e1) and pathological inputs (1e4) in one range.
The last layer starts at zero with biases that give a = fixed_a, b = fixed_b,
so training starts from the fixed ablation's thresholds.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aao._model import unwrap
from suite.engine import PreferenceBatch, chunk_positions

MARGIN = 1e-3  # minimum gap a - b, and of b below 1 - MARGIN: exact in float32
LOGIT_CLAMP = 30.0  # |z| beyond which the sigmoid is flat in float32 anyway
ATTRIBUTE = "aao_thresholds"  # name of the AW submodule on the policy
FEATURE_COUNTS = {"logp": 4, "logp_entropy": 8}


def thresholds_from_logits(logits: Tensor, margin: float = MARGIN) -> tuple[Tensor, Tensor]:
    """(B, 2) logits -> thresholds a, b, (B,) each, with 1 >= a >= b + margin and b >= 0.

    NaN-free for any finite input: the logits are clamped to +-LOGIT_CLAMP first.
    """
    z = logits.float().clamp(-LOGIT_CLAMP, LOGIT_CLAMP)
    b = (1.0 - 2.0 * margin) * torch.sigmoid(z[..., 0])  # in [0, 1 - 2m]
    gap = ((1.0 - b) * torch.sigmoid(z[..., 1])).clamp_min(margin)  # in [m, 1 - b]
    a = (b + gap).clamp_max(1.0)
    return a, b


def logits_for(a: float, b: float, margin: float = MARGIN) -> tuple[float, float]:
    """The logits (z_1, z_2) that :func:`thresholds_from_logits` maps to (a, b); 0 <= b < a <= 1."""
    sb = b / (1.0 - 2.0 * margin)
    sa = (a - b) / (1.0 - b)
    return _logit(sb), _logit(sa)


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1.0 - 1e-6)
    return math.log(p / (1.0 - p))


class AmbiguityThresholds(nn.Module):
    """The AW module: features (B, F) -> thresholds a, b (B,) each, 1 >= a > b >= 0."""

    def __init__(self, in_features: int = 8, hidden: int = 32, init_a: float = 0.7, init_b: float = 0.3) -> None:
        super().__init__()
        self.hidden = nn.Linear(in_features, hidden)
        self.out = nn.Linear(hidden, 2)
        nn.init.zeros_(self.out.weight)
        with torch.no_grad():
            self.out.bias.copy_(torch.tensor(logits_for(init_a, init_b)))

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        x = features.float()  # (B, F)
        x = torch.nan_to_num(x, nan=0.0, posinf=1e4, neginf=-1e4)
        x = torch.sign(x) * torch.log1p(x.abs())
        h = torch.tanh(F.linear(x, self.hidden.weight.float(), self.hidden.bias.float()))  # (B, H)
        z = F.linear(h, self.out.weight.float(), self.out.bias.float())  # (B, 2)
        return thresholds_from_logits(z)


def fixed_thresholds(batch_size: int, a: float, b: float, device: torch.device) -> tuple[Tensor, Tensor]:
    """The ablation's constant thresholds, (B,) each."""
    return (
        torch.full((batch_size,), a, dtype=torch.float32, device=device),
        torch.full((batch_size,), b, dtype=torch.float32, device=device),
    )


# ---------------------------------------------------------------- features


def masked_mean_std(values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and (population) std over real tokens, (B,) each; 0 for a response without tokens."""
    mask = mask.float()
    count = mask.sum(-1).clamp_min(1.0)
    values = values.float() * mask
    mean = values.sum(-1) / count
    var = (((values - mean.unsqueeze(-1)) * mask) ** 2).sum(-1) / count
    return mean, var.clamp_min(0.0).sqrt()


@torch.no_grad()
def token_entropies(logits: Tensor, mask: Tensor, chunk: int | None = None) -> Tensor:
    """Entropy of the policy's next-token distribution at every response position, (B, T); 0 elsewhere.

    logits: (B, T, V) the policy's logits at the positions predicting each token (any dtype, possibly a
    view of the forward's logits); only real (masked) positions are read, ``chunk`` at a time in float32
    (default: the engine's :func:`~suite.engine.chunk_positions`), detached, so at most (chunk, V) float32
    values exist at once.
    """
    chunk = chunk or chunk_positions(logits.shape[-1])
    real = mask.bool()
    entropies = torch.zeros(mask.shape, dtype=torch.float32, device=logits.device)
    rows, cols = real.nonzero(as_tuple=True)  # (N,) each
    logits = logits.detach()
    values = []
    for start in range(0, rows.shape[0], chunk):
        part = logits[rows[start : start + chunk], cols[start : start + chunk]].float()  # (n, V)
        logp = torch.log_softmax(part, dim=-1)
        values.append(-(logp.exp() * logp).sum(-1))
    if values:
        entropies[rows, cols] = torch.cat(values)
    return entropies


def policy_features(batch: PreferenceBatch, kind: str) -> Tensor:
    """Detached per-pair statistics of the policy's token distribution, (B, F) (see module docstring)."""
    stats = [
        *masked_mean_std(batch.chosen_logps.detach(), batch.chosen_mask),
        *masked_mean_std(batch.rejected_logps.detach(), batch.rejected_mask),
    ]
    if kind == "logp_entropy":
        if batch.chosen_logits is None or batch.rejected_logits is None:
            raise ValueError("aao: aw_features 'logp_entropy' needs the policy's logits in the batch (needs_logits)")
        for logits, mask in (
            (batch.chosen_logits, batch.chosen_mask),
            (batch.rejected_logits, batch.rejected_mask),
        ):
            stats.extend(masked_mean_std(token_entropies(logits, mask), mask))
    elif kind != "logp":
        raise ValueError(f"aao: unknown aw_features {kind!r}")
    return torch.stack(stats, dim=-1).detach()  # (B, F)


def find_thresholds_module(model: nn.Module | None) -> AmbiguityThresholds:
    """The AW module attached to the policy as ``aao_thresholds``; a clear error when it is missing."""
    module = getattr(unwrap(model), ATTRIBUTE, None) if model is not None else None
    if not isinstance(module, AmbiguityThresholds):
        raise RuntimeError(
            "aao: thresholds 'adaptive' needs the AW module attached to the policy as "
            f"'{ATTRIBUTE}' before the optimizer is created (see aao.method.build_modules), so that "
            "it is trained and checkpointed with the policy; use thresholds 'fixed' for the ablation"
        )
    return module


def attach_thresholds_module(model: nn.Module, module: AmbiguityThresholds) -> None:
    """Register the AW module as a submodule of the policy: it then moves, trains and saves with it."""
    unwrap(model).add_module(ATTRIBUTE, module)


__all__ = [
    "ATTRIBUTE",
    "FEATURE_COUNTS",
    "MARGIN",
    "AmbiguityThresholds",
    "attach_thresholds_module",
    "find_thresholds_module",
    "fixed_thresholds",
    "logits_for",
    "masked_mean_std",
    "policy_features",
    "thresholds_from_logits",
    "token_entropies",
]
