"""Token similarity against the other response of the pair (paper Eq. 7; method spec 3.1).

For pair b, chosen token i and rejected token j:

    c_ij = cos(h_i(y_w), h_j(y_l))
    s_i^w = max_j c_ij            s_j^l = max_i c_ij          (reduction "max"; "mean" averages)
    s <- (s - min s) / (max s - min s + eps)                  (per response, over its real tokens)

Everything works on the engine's layout: per-pair tensors over the same T
shifted positions for chosen and rejected, with response masks that are 1 on
response tokens only. The cosine matrix is therefore (B, T, T) over positions
(rows: chosen positions, columns: rejected positions) and is zero wherever
either position is a prompt or padding token, so that such tokens never enter
a max, mean, min or max. One batched matrix product per batch, no loops.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from aao._model import unwrap
from suite.engine import IGNORE, PreferenceBatch, forward_batch, split_pairs


@dataclass
class SimilarityOutput:
    """Eq. 7's quantities for a batch of B pairs over T positions."""

    cosine: Tensor  # (B, T, T) c_ij, rows chosen, columns rejected; 0 outside real (i, j) pairs
    chosen_scores: Tensor  # (B, T) normalised s^w in [0, 1]; 0 on non-response positions
    rejected_scores: Tensor  # (B, T) normalised s^l in [0, 1]
    chosen_raw: Tensor  # (B, T) s^w before min-max normalisation
    rejected_raw: Tensor  # (B, T)


def cosine_matrix(chosen_repr: Tensor, rejected_repr: Tensor, chosen_mask: Tensor, rejected_mask: Tensor) -> Tensor:
    """c_ij = cos(h_i^w, h_j^l) for every pair, (B, T, T); zero unless both i and j are response tokens.

    chosen_repr, rejected_repr: (B, T, D); masks (B, T). Computed in float32.
    """
    chosen = F.normalize(chosen_repr.float(), dim=-1)  # (B, T, D)
    rejected = F.normalize(rejected_repr.float(), dim=-1)  # (B, T, D)
    cosine = torch.bmm(chosen, rejected.transpose(1, 2))  # (B, T, T)
    return cosine * pair_mask(chosen_mask, rejected_mask)


def pair_mask(chosen_mask: Tensor, rejected_mask: Tensor) -> Tensor:
    """1 where chosen position i and rejected position j are both response tokens, (B, T, T) float."""
    return chosen_mask.float().unsqueeze(2) * rejected_mask.float().unsqueeze(1)


def reduce_scores(cosine: Tensor, pairs: Tensor, dim: int, reduction: str) -> Tensor:
    """One raw score per token against the other response: max or mean of c over real partners.

    cosine, pairs: (B, T, T); ``dim`` is the partner axis (2 for chosen tokens, 1 for rejected).
    Returns (B, T); a token with no real partner (the other response is empty) gets 0.
    """
    valid = pairs.bool()
    has_partner = valid.any(dim)  # (B, T)
    if reduction == "max":
        scores = cosine.masked_fill(~valid, float("-inf")).amax(dim)
    elif reduction == "mean":
        scores = (cosine * pairs).sum(dim) / pairs.sum(dim).clamp_min(1.0)
    else:
        raise ValueError(f"reduction must be 'max' or 'mean', got {reduction!r}")
    return torch.where(has_partner, scores, torch.zeros_like(scores))


def minmax_normalise(scores: Tensor, mask: Tensor, eps: float) -> Tensor:
    """(s - min s) / (max s - min s + eps) per response, min and max over its real tokens only, (B, T).

    Non-response positions come out 0; a response without tokens is all 0; a
    response whose scores are all equal (max = min) is all 0 (finite). ``eps``
    should exceed the float32 noise of the raw scores (~1e-7), or equal scores
    that differ in their last bit would be spread over [0, 1].
    """
    real = mask.bool()
    any_real = real.any(-1, keepdim=True)  # (B, 1)
    low = scores.masked_fill(~real, float("inf")).amin(-1, keepdim=True)
    high = scores.masked_fill(~real, float("-inf")).amax(-1, keepdim=True)
    low = torch.where(any_real, low, torch.zeros_like(low))
    high = torch.where(any_real, high, torch.zeros_like(high))
    normalised = ((scores - low) / (high - low + eps)).clamp(0.0, 1.0)
    return torch.where(real, normalised, torch.zeros_like(normalised))


def token_similarity(
    chosen_repr: Tensor,
    rejected_repr: Tensor,
    chosen_mask: Tensor,
    rejected_mask: Tensor,
    reduction: str = "max",
    eps: float = 1e-4,
) -> SimilarityOutput:
    """Eq. 7 for a batch: cosine matrix, per-token scores against the other response, normalised.

    chosen_repr, rejected_repr: (B, T, D) representations (the caller detaches them);
    chosen_mask, rejected_mask: (B, T) response masks.
    """
    cosine = cosine_matrix(chosen_repr, rejected_repr, chosen_mask, rejected_mask)  # (B, T, T)
    pairs = pair_mask(chosen_mask, rejected_mask)  # (B, T, T)
    chosen_raw = reduce_scores(cosine, pairs, dim=2, reduction=reduction) * chosen_mask  # (B, T)
    rejected_raw = reduce_scores(cosine, pairs, dim=1, reduction=reduction) * rejected_mask  # (B, T)
    return SimilarityOutput(
        cosine=cosine,
        chosen_scores=minmax_normalise(chosen_raw, chosen_mask, eps),
        rejected_scores=minmax_normalise(rejected_raw, rejected_mask, eps),
        chosen_raw=chosen_raw,
        rejected_raw=rejected_raw,
    )


# ---------------------------------------------------------------- representations


def response_representations(batch: PreferenceBatch, representation: str) -> tuple[Tensor, Tensor]:
    """The detached token representations h of chosen and rejected, (B, T, D) each (spec 3.1 [choice]).

    * ``hidden``: the policy's last-layer hidden states the engine hands over
      (at each response token's predicting position, as the engine aligns them);
    * ``embedding``: the policy's input embedding vectors of the response tokens
      (needs the collated inputs in ``batch.extras["inputs"]``);
    * ``reference``: the reference model's last hidden states (needs a live
      reference: ``batch.extras["ref_model"]`` and ``batch.extras["inputs"]``).
    """
    if representation == "hidden":
        if batch.chosen_hidden is None or batch.rejected_hidden is None:
            raise ValueError("aao: representation 'hidden' needs the policy's hidden states in the batch")
        return batch.chosen_hidden.detach(), batch.rejected_hidden.detach()
    if representation == "embedding":
        inputs = batch.extras.get("inputs")
        model = batch.extras.get("model")
        if inputs is None or model is None:
            raise NotImplementedError(
                "aao: representation 'embedding' needs the collated inputs (batch.extras['inputs']) and the "
                "policy (batch.extras['model']), which PreferenceTrainer provides"
            )
        with torch.no_grad():
            targets = inputs["labels"][:, 1:]  # (2B, T): the token each shifted position predicts
            ids = targets.masked_fill(targets == IGNORE, 0)
            embedded = unwrap(model).get_input_embeddings()(ids).detach()  # (2B, T, D)
        chosen, rejected = split_pairs(embedded)
        return chosen, rejected
    if representation == "reference":
        ref_model = batch.extras.get("ref_model")
        inputs = batch.extras.get("inputs")
        if ref_model is None or inputs is None:
            raise NotImplementedError(
                "aao: representation 'reference' needs a live reference model (batch.extras['ref_model'] and "
                "['inputs']); the registered 'aao' method uses precomputed reference log-probs only"
            )
        with torch.no_grad():
            _, _, hidden = forward_batch(ref_model, inputs, hidden_states=True)  # (2B, T, D)
        chosen, rejected = split_pairs(hidden)
        return chosen.detach(), rejected.detach()
    raise ValueError(f"aao: unknown representation {representation!r}")


__all__ = [
    "SimilarityOutput",
    "cosine_matrix",
    "minmax_normalise",
    "pair_mask",
    "reduce_scores",
    "response_representations",
    "token_similarity",
]
