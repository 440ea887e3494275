"""Token classes and weights from the normalised similarity (paper Eqs. 14-16, soft form Eq. 17; spec 3.2-3.3).

With thresholds 1 >= a > b >= 0 on the normalised score s in [0, 1]:

    ambiguous     s > a:       w(s) = 1 - (1 - w_min) (s - a) / (1 - a)     (Eq. 14)
    transitional  b <= s <= a: w(s) = 1                                     (Eq. 15)
    key           s < b:       w(s) = 1 + (w_max - 1) (b - s) / b           (Eq. 16)

Eq. 17 replaces the class indicators by soft gates g_amb = sigma((s - a) / tau),
g_key = sigma((b - s) / tau) and blends the branches:

    w(s) = 1 + g_amb(s) (w_amb(s) - 1) + g_key(s) (w_key(s) - 1)

where each branch's ramp (s - a)/(1 - a), (b - s)/b is clipped to [0, 1]: the
clip changes nothing inside a branch's own region, keeps every weight within
[w_min, w_max], and makes the soft weight exactly 1 on [b, a], so that the only
effect of tau is to smooth the two class boundaries; tau -> 0 gives the hard
curve. Thresholds a, b broadcast against s: a scalar, or (B, 1) per pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

DIVISION_EPS = 1e-6  # floor of the ramp denominators 1 - a and b


def _ramp(numerator: Tensor, denominator: Tensor) -> Tensor:
    """numerator / denominator clipped to [0, 1], safe for a denominator of 0."""
    return (numerator / denominator.clamp_min(DIVISION_EPS)).clamp(0.0, 1.0)


def _as_tensor(value: Tensor | float, like: Tensor) -> Tensor:
    return value if isinstance(value, Tensor) else torch.tensor(value, dtype=like.dtype, device=like.device)


def ambiguous_branch(scores: Tensor, a: Tensor | float, w_min: float) -> Tensor:
    """Eq. 14's line, w_amb(s) = 1 - (1 - w_min) clip((s - a)/(1 - a)): 1 at s <= a, w_min at s = 1."""
    a = _as_tensor(a, scores)
    return 1.0 - (1.0 - w_min) * _ramp(scores - a, 1.0 - a)


def key_branch(scores: Tensor, b: Tensor | float, w_max: float) -> Tensor:
    """Eq. 16's line, w_key(s) = 1 + (w_max - 1) clip((b - s)/b): 1 at s >= b, w_max at s = 0."""
    b = _as_tensor(b, scores)
    return 1.0 + (w_max - 1.0) * _ramp(b - scores, b)


def hard_weights(
    scores: Tensor, a: Tensor | float, b: Tensor | float, w_min: float = 0.5, w_max: float = 1.5
) -> Tensor:
    """Eqs. 14-16 with hard class indicators; scores (B, T), a and b scalar or (B, 1); returns (B, T)."""
    a, b = _as_tensor(a, scores), _as_tensor(b, scores)
    ones = torch.ones_like(scores)
    return torch.where(
        scores > a,
        ambiguous_branch(scores, a, w_min),
        torch.where(scores < b, key_branch(scores, b, w_max), ones),
    )


def soft_weights(
    scores: Tensor,
    a: Tensor | float,
    b: Tensor | float,
    w_min: float = 0.5,
    w_max: float = 1.5,
    tau: float = 0.05,
) -> Tensor:
    """Eq. 17: the three branches blended by sigmoid gates, differentiable in a and b; (B, T)."""
    if tau <= 0:
        raise ValueError(f"tau must be > 0 (use gating 'hard' for the limit), got {tau}")
    a, b = _as_tensor(a, scores), _as_tensor(b, scores)
    gate_ambiguous = torch.sigmoid((scores - a) / tau)
    gate_key = torch.sigmoid((b - scores) / tau)
    return (
        1.0
        + gate_ambiguous * (ambiguous_branch(scores, a, w_min) - 1.0)
        + gate_key * (key_branch(scores, b, w_max) - 1.0)
    )


def renormalise(weights: Tensor, mask: Tensor, eps: float = 1e-6) -> Tensor:
    """Rescale to mean 1 over each response's real tokens, (B, T); zero off the mask.

    A response without tokens stays all 0. Differentiable (the mean is not detached).
    """
    mask = mask.to(weights.dtype)
    count = mask.sum(-1, keepdim=True)  # (B, 1)
    mean = (weights * mask).sum(-1, keepdim=True) / count.clamp_min(1.0)  # (B, 1)
    return weights * mask / mean.clamp_min(eps)


def token_weights(
    scores: Tensor,
    mask: Tensor,
    a: Tensor | float,
    b: Tensor | float,
    *,
    w_min: float = 0.5,
    w_max: float = 1.5,
    gating: str = "soft",
    tau: float = 0.05,
    renormalise_weights: bool = True,
) -> Tensor:
    """Per-token weights of one side, (B, T), zero on prompt and padding positions.

    scores: (B, T) normalised similarity; mask: (B, T) response mask; a, b: scalar or (B, 1).
    """
    if gating == "soft":
        weights = soft_weights(scores, a, b, w_min, w_max, tau)
    elif gating == "hard":
        weights = hard_weights(scores, a, b, w_min, w_max)
    else:
        raise ValueError(f"gating must be 'soft' or 'hard', got {gating!r}")
    if renormalise_weights:
        return renormalise(weights, mask)
    return weights * mask.to(weights.dtype)


# ---------------------------------------------------------------- classes, for logging


@dataclass
class TokenClasses:
    """Hard class membership of each response token, (B, T) bool each; all False off the mask."""

    ambiguous: Tensor
    transitional: Tensor
    key: Tensor

    def items(self) -> list[tuple[str, Tensor]]:
        return [("ambiguous", self.ambiguous), ("transitional", self.transitional), ("key", self.key)]


def token_classes(scores: Tensor, mask: Tensor, a: Tensor | float, b: Tensor | float) -> TokenClasses:
    """Ambiguous s > a, key s < b, transitional otherwise, on real tokens only."""
    a, b = _as_tensor(a, scores), _as_tensor(b, scores)
    real = mask.bool()
    ambiguous = (scores > a) & real
    key = (scores < b) & real
    return TokenClasses(ambiguous=ambiguous, transitional=real & ~ambiguous & ~key, key=key)


def class_statistics(weights: Tensor, classes: TokenClasses, mask: Tensor) -> dict[str, Tensor]:
    """Share of each class among the batch's real tokens and the mean weight per class (scalars).

    The mean weight of a class with no token in the batch is reported as 0
    (its share is 0 then), so that every step logs the same keys.
    """
    total = mask.float().sum().clamp_min(1.0)
    stats = {}
    for name, members in classes.items():
        count = members.float().sum()
        stats[f"share_{name}"] = count / total
        stats[f"weight_{name}"] = (weights.detach() * members).sum() / count.clamp_min(1.0)
    return stats


__all__ = [
    "TokenClasses",
    "ambiguous_branch",
    "class_statistics",
    "hard_weights",
    "key_branch",
    "renormalise",
    "soft_weights",
    "token_classes",
    "token_weights",
]
