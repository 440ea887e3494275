"""AAO's loss terms (method spec 3.5).

    L_pref = -log sigma( beta [ sum_t w_t^w l_t(y_w) - sum_t w_t^l l_t(y_l) ] )      weighted DPO
    S_pref = 1/(T_w T_l) sum_i sum_j w_i^w c_ij,   S_dis = 1/(T_l T_w) sum_j sum_i w_j^l c_ij
    L_con  = S_pref + S_dis                                                          contrastive suppression
    L_rew  = -E[ R_chosen ],  R_chosen = sum_t log pi_theta(y_w,t | x, y_w,<t)       reward enhancement
    L      = L_pref + lambda_con L_con + lambda_rew L_rew

T_w, T_l are the real token counts of the pair's responses; c_ij is the
(detached) cosine matrix of Eq. 7. The weights multiply the similarity terms:
scaling the vectors inside a cosine by positive weights would not change it.
Every term is averaged over the B pairs of the batch.
"""

from __future__ import annotations

from torch import Tensor

from baselines.dpo import weighted_dpo_loss
from suite.engine import LossOutput, PreferenceBatch


def preference_term(
    batch: PreferenceBatch, beta: float, chosen_weights: Tensor | None, rejected_weights: Tensor | None
) -> LossOutput:
    """L_pref: DPO's sigmoid loss on token-weighted log-ratios (weights (B, T) or None for 1), TRL metrics."""
    return weighted_dpo_loss(batch, beta, chosen_weights, rejected_weights)


def contrastive_terms(
    cosine: Tensor,
    chosen_weights: Tensor,
    rejected_weights: Tensor,
    chosen_mask: Tensor,
    rejected_mask: Tensor,
) -> tuple[Tensor, Tensor]:
    """S_pref and S_dis per pair, (B,) each.

    cosine: (B, T, T), rows chosen, columns rejected, zero off real (i, j) pairs;
    weights: (B, T), zero off the masks; masks (B, T). A pair with an empty side gives 0.
    """
    chosen_count = chosen_mask.float().sum(-1)  # (B,) T_w
    rejected_count = rejected_mask.float().sum(-1)  # (B,) T_l
    norm = (chosen_count * rejected_count).clamp_min(1.0)  # (B,)
    s_pref = (chosen_weights.unsqueeze(2) * cosine).sum((1, 2)) / norm  # sum_i w_i^w sum_j c_ij
    s_dis = (rejected_weights.unsqueeze(1) * cosine).sum((1, 2)) / norm  # sum_j w_j^l sum_i c_ij
    return s_pref, s_dis


def contrastive_loss(
    cosine: Tensor,
    chosen_weights: Tensor,
    rejected_weights: Tensor,
    chosen_mask: Tensor,
    rejected_mask: Tensor,
) -> Tensor:
    """L_con = mean over pairs of S_pref + S_dis (scalar)."""
    s_pref, s_dis = contrastive_terms(cosine, chosen_weights, rejected_weights, chosen_mask, rejected_mask)
    return (s_pref + s_dis).mean()


def chosen_reward(batch: PreferenceBatch, reduction: str = "sum") -> Tensor:
    """R_chosen per pair, (B,): the sum (or mean) of the policy's log-probs of the chosen tokens."""
    total = (batch.chosen_logps * batch.chosen_mask).sum(-1)
    if reduction == "sum":
        return total
    if reduction == "mean":
        return total / batch.chosen_mask.sum(-1).clamp_min(1.0)
    raise ValueError(f"reward_reduction must be 'sum' or 'mean', got {reduction!r}")


def reward_loss(batch: PreferenceBatch, reduction: str = "sum") -> Tensor:
    """L_rew = -E[R_chosen] (scalar)."""
    return -chosen_reward(batch, reduction).mean()


def total_loss(
    pref: Tensor,
    con: Tensor | None,
    rew: Tensor | None,
    lambda_con: float,
    lambda_rew: float,
) -> Tensor:
    """L = L_pref + lambda_con L_con + lambda_rew L_rew; a term that is switched off is None."""
    loss = pref
    if con is not None:
        loss = loss + lambda_con * con
    if rew is not None:
        loss = loss + lambda_rew * rew
    return loss


__all__ = [
    "chosen_reward",
    "contrastive_loss",
    "contrastive_terms",
    "preference_term",
    "reward_loss",
    "total_loss",
]
