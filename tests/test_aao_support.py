"""Shared helpers of the AAO tests (no tests here): random batches in the engine's layout, padding,
a stand-in policy, and slow loop transcriptions of the spec's equations to test the batched code against."""

from __future__ import annotations

import math

import torch
from torch import nn

from aao.thresholds import ATTRIBUTE, AmbiguityThresholds
from suite.engine import PreferenceBatch

VOCAB = 11


class StandInPolicy(nn.Module):
    """What the AAO loss needs of the policy: input embeddings, and room for the AW module."""

    def __init__(self, dim: int, vocab: int = VOCAB, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.embed = nn.Embedding(vocab, dim)
        with torch.no_grad():
            self.embed.weight.copy_(torch.randn(vocab, dim, generator=generator))

    def get_input_embeddings(self) -> nn.Module:
        return self.embed


def policy_with_thresholds(dim: int, features: int = 8, seed: int = 0, perturb: float = 0.5) -> StandInPolicy:
    """A stand-in policy carrying an AW module whose last layer is not at its zero init."""
    policy = StandInPolicy(dim, seed=seed)
    module = AmbiguityThresholds(in_features=features)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        module.out.weight.copy_(perturb * torch.randn(module.out.weight.shape, generator=generator))
    policy.add_module(ATTRIBUTE, module)
    return policy


def response_masks(
    batch: int, length: int, generator: torch.Generator, lengths: list[tuple[int, int, int]] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) masks with a prompt region, a response and padding; ``lengths`` = [(prompt, chosen, rejected)]."""
    chosen = torch.zeros(batch, length)
    rejected = torch.zeros(batch, length)
    for row in range(batch):
        if lengths is not None:
            prompt, n_chosen, n_rejected = lengths[row]
        else:
            prompt = int(torch.randint(0, min(3, length), (1,), generator=generator))
            n_chosen = int(torch.randint(1, length - prompt + 1, (1,), generator=generator))
            n_rejected = int(torch.randint(1, length - prompt + 1, (1,), generator=generator))
        chosen[row, prompt : prompt + n_chosen] = 1.0
        rejected[row, prompt : prompt + n_rejected] = 1.0
    return chosen, rejected


def random_batch(
    batch: int = 3,
    length: int = 9,
    dim: int = 6,
    seed: int = 0,
    lengths: list[tuple[int, int, int]] | None = None,
    policy: nn.Module | None = None,
) -> PreferenceBatch:
    """A PreferenceBatch like the engine's: garbage (not zeros) off the masks, so masking is tested.

    Hidden states (B, T, D) and policy logits (B, T, VOCAB) are independent draws, as in the engine they
    come from different positions (a token's own, the one predicting it)."""
    generator = torch.Generator().manual_seed(seed)
    chosen_mask, rejected_mask = response_masks(batch, length, generator, lengths)

    def logps() -> torch.Tensor:
        return -torch.rand(batch, length, generator=generator) * 4.0 - 0.05

    result = PreferenceBatch(
        chosen_logps=logps(),
        rejected_logps=logps(),
        chosen_mask=chosen_mask,
        rejected_mask=rejected_mask,
        ref_chosen_logps=logps(),
        ref_rejected_logps=logps(),
        chosen_hidden=torch.randn(batch, length, dim, generator=generator),
        rejected_hidden=torch.randn(batch, length, dim, generator=generator),
        chosen_logits=torch.randn(batch, length, VOCAB, generator=generator) * 3.0,
        rejected_logits=torch.randn(batch, length, VOCAB, generator=generator) * 3.0,
    )
    result.extras["model"] = policy if policy is not None else policy_with_thresholds(dim, seed=seed)
    return result


def pad_batch(batch: PreferenceBatch, extra: int, seed: int = 99) -> PreferenceBatch:
    """The same pairs with ``extra`` more padding positions at the end, filled with garbage."""
    generator = torch.Generator().manual_seed(seed)

    def grow(tensor: torch.Tensor | None, fill: str) -> torch.Tensor | None:
        if tensor is None:
            return None
        shape = (tensor.shape[0], extra, *tensor.shape[2:])
        tail = torch.zeros(shape) if fill == "zeros" else torch.randn(shape, generator=generator) * 7.0
        return torch.cat([tensor, tail], dim=1)

    padded = PreferenceBatch(
        chosen_logps=grow(batch.chosen_logps, "garbage"),
        rejected_logps=grow(batch.rejected_logps, "garbage"),
        chosen_mask=grow(batch.chosen_mask, "zeros"),
        rejected_mask=grow(batch.rejected_mask, "zeros"),
        ref_chosen_logps=grow(batch.ref_chosen_logps, "garbage"),
        ref_rejected_logps=grow(batch.ref_rejected_logps, "garbage"),
        chosen_hidden=grow(batch.chosen_hidden, "garbage"),
        rejected_hidden=grow(batch.rejected_hidden, "garbage"),
        chosen_logits=grow(batch.chosen_logits, "garbage"),
        rejected_logits=grow(batch.rejected_logits, "garbage"),
    )
    padded.extras.update(batch.extras)
    return padded


# ---------------------------------------------------------------- slow transcriptions of the spec


def real_positions(mask_row: torch.Tensor) -> list[int]:
    return [t for t in range(mask_row.shape[0]) if mask_row[t] > 0]


def cosine(x: list[float], y: list[float]) -> float:
    dot = sum(p * q for p, q in zip(x, y, strict=True))
    nx = math.sqrt(sum(p * p for p in x))
    ny = math.sqrt(sum(q * q for q in y))
    return dot / (max(nx, 1e-12) * max(ny, 1e-12))


def loop_similarity(
    chosen_hidden: torch.Tensor,
    rejected_hidden: torch.Tensor,
    chosen_mask: torch.Tensor,
    rejected_mask: torch.Tensor,
    reduction: str,
    eps: float,
) -> tuple[list[dict[tuple[int, int], float]], list[dict[int, float]], list[dict[int, float]]]:
    """Eq. 7 token by token: c_ij, then s per token (max/mean over the other side), min-max per response."""
    all_cos, all_chosen, all_rejected = [], [], []
    for b in range(chosen_hidden.shape[0]):
        iw, il = real_positions(chosen_mask[b]), real_positions(rejected_mask[b])
        c = {(i, j): cosine(chosen_hidden[b, i].tolist(), rejected_hidden[b, j].tolist()) for i in iw for j in il}

        def reduce(values: list[float]) -> float:
            if not values:
                return 0.0
            return max(values) if reduction == "max" else sum(values) / len(values)

        raw_w = {i: reduce([c[i, j] for j in il]) for i in iw}
        raw_l = {j: reduce([c[i, j] for i in iw]) for j in il}
        all_cos.append(c)
        all_chosen.append(loop_minmax(raw_w, eps))
        all_rejected.append(loop_minmax(raw_l, eps))
    return all_cos, all_chosen, all_rejected


def loop_minmax(raw: dict[int, float], eps: float) -> dict[int, float]:
    if not raw:
        return {}
    low, high = min(raw.values()), max(raw.values())
    return {t: (v - low) / (high - low + eps) for t, v in raw.items()}


def loop_weight(s: float, a: float, b: float, w_min: float, w_max: float, tau: float | None) -> float:
    """Eqs. 14-16 (tau None) or Eq. 17 (soft gates) for one token."""
    if tau is None:  # the spec's curve, literally
        if s > a:
            return 1.0 - (1.0 - w_min) * (s - a) / (1.0 - a)
        if s < b:
            return 1.0 + (w_max - 1.0) * (b - s) / b
        return 1.0
    # soft gates blend the branches, whose ramps are clipped to [0, 1] (aao.weights docstring)
    w_amb = 1.0 - (1.0 - w_min) * min(max((s - a) / max(1.0 - a, 1e-6), 0.0), 1.0)
    w_key = 1.0 + (w_max - 1.0) * min(max((b - s) / max(b, 1e-6), 0.0), 1.0)
    g_amb = 1.0 / (1.0 + math.exp(-(s - a) / tau))
    g_key = 1.0 / (1.0 + math.exp(-(b - s) / tau))
    return 1.0 + g_amb * (w_amb - 1.0) + g_key * (w_key - 1.0)


def loop_weights(
    scores: dict[int, float], a: float, b: float, w_min: float, w_max: float, tau: float | None, renorm: bool
) -> dict[int, float]:
    weights = {t: loop_weight(s, a, b, w_min, w_max, tau) for t, s in scores.items()}
    if renorm and weights:
        mean = sum(weights.values()) / len(weights)
        weights = {t: w / mean for t, w in weights.items()}
    return weights


def loop_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return 0.0, 0.0
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def loop_features(batch: PreferenceBatch, entropy: bool) -> list[list[float]]:
    """AW inputs per pair: mean/std of log-probs (chosen, rejected), then of the entropies of the policy's
    logits (chosen, rejected)."""
    rows = []
    for b in range(batch.chosen_mask.shape[0]):
        iw, il = real_positions(batch.chosen_mask[b]), real_positions(batch.rejected_mask[b])
        row = [*loop_std([float(batch.chosen_logps[b, t]) for t in iw])]
        row += [*loop_std([float(batch.rejected_logps[b, t]) for t in il])]
        if entropy:
            for all_logits, positions in ((batch.chosen_logits, iw), (batch.rejected_logits, il)):
                values = []
                for t in positions:
                    logits = all_logits[b, t].tolist()
                    top = max(logits)
                    z = sum(math.exp(v - top) for v in logits)
                    probs = [math.exp(v - top) / z for v in logits]
                    values.append(-sum(p * math.log(p) for p in probs if p > 0))
                row += [*loop_std(values)]
        rows.append(row)
    return rows


def loop_aao_loss(
    batch: PreferenceBatch,
    a: list[float],
    b: list[float],
    *,
    beta: float,
    w_min: float = 0.5,
    w_max: float = 1.5,
    tau: float | None = 0.05,
    renorm: bool = True,
    reduction: str = "max",
    eps: float = 1e-4,
    lambda_con: float = 0.1,
    lambda_rew: float = 0.01,
    contrastive: bool = True,
    reward: bool = True,
) -> dict[str, float]:
    """The whole of spec 3.5, pair by pair and token by token, for given thresholds a, b per pair."""
    cos, s_w, s_l = loop_similarity(
        batch.chosen_hidden, batch.rejected_hidden, batch.chosen_mask, batch.rejected_mask, reduction, eps
    )
    n = batch.chosen_mask.shape[0]
    pref = con = rew = 0.0
    for k in range(n):
        ww = loop_weights(s_w[k], a[k], b[k], w_min, w_max, tau, renorm)
        wl = loop_weights(s_l[k], a[k], b[k], w_min, w_max, tau, renorm)
        m_w = sum(w * float(batch.chosen_logps[k, t] - batch.ref_chosen_logps[k, t]) for t, w in ww.items())
        m_l = sum(w * float(batch.rejected_logps[k, t] - batch.ref_rejected_logps[k, t]) for t, w in wl.items())
        z = beta * (m_w - m_l)
        pref += math.log1p(math.exp(-z))  # -log sigma(z)
        tw, tl = len(ww), len(wl)
        norm = max(tw * tl, 1)
        s_pref = sum(ww[i] * cos[k][i, j] for i in ww for j in wl) / norm
        s_dis = sum(wl[j] * cos[k][i, j] for j in wl for i in ww) / norm
        con += s_pref + s_dis
        rew -= sum(float(batch.chosen_logps[k, t]) for t in ww)
    pref, con, rew = pref / n, con / n, rew / n
    total = pref + (lambda_con * con if contrastive else 0.0) + (lambda_rew * rew if reward else 0.0)
    return {"pref": pref, "con": con, "rew": rew, "total": total}
