"""TDPO (Zeng et al., 2024, Token-level DPO): DPO regularised by the sequential token-level KL.

With m(y) the summed log-ratio and KL(y) = sum_t KL(pi_ref(.|x, y_<t) || pi(.|x, y_<t))
over the response positions (a full-vocabulary KL at every position):

    TDPO1: -log sigma(beta * (m_w - m_l + KL_w - KL_l))
    TDPO2: -log sigma(beta * (m_w - m_l + alpha * (sg(KL_w) - KL_l)))

sg stops the gradient: TDPO2 only pushes the rejected side's KL. The KL needs
both full distributions, so the method asks the engine for the policy's and
the live reference's logits (one reference forward gives both its log-probs
and its logits). The KL is computed by :class:`TokenKL`, position chunk by
position chunk, so no full-vocabulary float32 copy of the batch's logits is
ever made, in the forward or the backward pass.

Rewards are logged as DPO's (beta times the summed log-ratios), so they read
alike across methods; ``kl/chosen`` and ``kl/rejected`` are the sequence KLs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from baselines.dpo import weighted_logratios
from suite.engine import LossOutput, PreferenceBatch, dpo_metrics
from suite.methods import COUNT, NON_NEGATIVE, POSITIVE, Method


class TokenKL(torch.autograd.Function):
    """KL(softmax(ref) || softmax(logits)) at each masked position, (N, T) float32; 0 elsewhere.

    Gradient with respect to the policy logits: g * (softmax(logits) - softmax(ref)).
    Only the masked positions are visited, ``chunk`` of them at a time; the
    backward recomputes the two softmaxes chunk by chunk instead of storing them.
    """

    @staticmethod
    def forward(ctx, logits: Tensor, ref_logits: Tensor, mask: Tensor, chunk: int) -> Tensor:
        rows, cols = mask.nonzero(as_tuple=True)
        out = torch.zeros(mask.shape, dtype=torch.float32, device=logits.device)
        for start in range(0, len(rows), chunk):
            r, c = rows[start : start + chunk], cols[start : start + chunk]
            logp = F.log_softmax(logits[r, c].float(), dim=-1)
            ref_logp = F.log_softmax(ref_logits[r, c].float(), dim=-1)
            out[r, c] = (ref_logp.exp() * (ref_logp - logp)).sum(-1)
        ctx.save_for_backward(logits, ref_logits, rows, cols)
        ctx.chunk = chunk
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        logits, ref_logits, rows, cols = ctx.saved_tensors
        grad = torch.zeros_like(logits)
        for start in range(0, len(rows), ctx.chunk):
            r, c = rows[start : start + ctx.chunk], cols[start : start + ctx.chunk]
            probs = F.softmax(logits[r, c].float(), dim=-1)
            ref_probs = F.softmax(ref_logits[r, c].float(), dim=-1)
            grad[r, c] = (grad_out[r, c].float().unsqueeze(-1) * (probs - ref_probs)).to(grad.dtype)
        return grad, None, None, None


def sequence_kl(logits: Tensor, ref_logits: Tensor, mask: Tensor, chunk: int = 256) -> Tensor:
    """sum_t KL(pi_ref || pi) over the response positions of each row, (N,)."""
    return TokenKL.apply(logits, ref_logits.detach(), mask.bool(), int(chunk)).sum(-1)


def tdpo_loss(batch: PreferenceBatch, beta: float, alpha: float, variant: int, kl_chunk_size: int = 256) -> LossOutput:
    if variant not in (1, 2):
        raise ValueError(f"tdpo: variant must be 1 or 2, got {variant!r}")
    if batch.chosen_logits is None or batch.ref_chosen_logits is None:
        raise ValueError("tdpo needs policy and reference logits (Method.needs_logits with a live reference)")
    chosen, rejected = weighted_logratios(batch)
    kl_chosen = sequence_kl(batch.chosen_logits, batch.ref_chosen_logits, batch.chosen_mask, kl_chunk_size)
    kl_rejected = sequence_kl(batch.rejected_logits, batch.ref_rejected_logits, batch.rejected_mask, kl_chunk_size)
    if variant == 1:
        logits = chosen - rejected + (kl_chosen - kl_rejected)
    else:
        logits = chosen - rejected + alpha * (kl_chosen.detach() - kl_rejected)
    losses = -F.logsigmoid(beta * logits)
    metrics = dpo_metrics(batch, beta * chosen, beta * rejected)
    metrics["kl/chosen"] = kl_chosen.detach()
    metrics["kl/rejected"] = kl_rejected.detach()
    return LossOutput(losses.mean(), metrics)


METHOD = Method(
    name="tdpo",
    loss=tdpo_loss,
    reference="live",
    defaults={"beta": 0.1, "alpha": 0.5, "variant": 2, "kl_chunk_size": 256},
    params_schema={"beta": POSITIVE, "alpha": NON_NEGATIVE, "variant": {"enum": [1, 2]}, "kl_chunk_size": COUNT},
    description="Token-level DPO (TDPO1 / TDPO2 by `variant`), full-vocabulary sequential KL to a live reference",
    needs_logits=True,
)
