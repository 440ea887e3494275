"""AAO as a registered method: similarity (Eq. 7) -> thresholds (AW) -> weights (Eqs. 14-17) -> losses.

The loss takes the knobs of :class:`aao.config.AAOConfig` as keyword arguments
(the engine passes ``Method.defaults`` overridden by the config). With
``thresholds: adaptive`` the AW module must be a submodule of the policy named
``aao_thresholds`` before the optimizer is created; :func:`build_modules` makes
it, with its own learning rate, for an engine that registers a method's extra
modules (see ``docs/aao-choices.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from aao.config import DEFAULTS, PARAMS_SCHEMA, AAOConfig, check_params
from aao.losses import chosen_reward, contrastive_terms, preference_term, reward_loss, total_loss
from aao.similarity import response_representations, token_similarity
from aao.thresholds import (
    ATTRIBUTE,
    FEATURE_COUNTS,
    AmbiguityThresholds,
    find_thresholds_module,
    fixed_thresholds,
    policy_features,
)
from aao.weights import class_statistics, token_classes, token_weights
from baselines.dpo import weighted_logratios
from suite.engine import LossOutput, PreferenceBatch
from suite.methods import Method


def thresholds_for(batch: PreferenceBatch, config: AAOConfig) -> tuple[Tensor, Tensor]:
    """Per-pair thresholds a, b, (B,) each: the AW module's, or the fixed ablation's."""
    if config.thresholds == "fixed":
        return fixed_thresholds(batch.chosen_mask.shape[0], config.fixed_a, config.fixed_b, batch.chosen_mask.device)
    module = find_thresholds_module(batch.extras.get("model"))
    return module(policy_features(batch, config.aw_features))


def aao_loss(batch: PreferenceBatch, **params: Any) -> LossOutput:
    """AAO's total loss L = L_pref + lambda_con L_con + lambda_rew L_rew with TRL's and AAO's metrics."""
    config = AAOConfig.from_params(params)
    chosen_mask, rejected_mask = batch.chosen_mask, batch.rejected_mask  # (B, T)

    chosen_repr, rejected_repr = response_representations(batch, config.representation)  # (B, T, D), detached
    similarity = token_similarity(
        chosen_repr, rejected_repr, chosen_mask, rejected_mask, config.reduction, config.minmax_eps
    )
    a, b = thresholds_for(batch, config)  # (B,)
    a_col, b_col = a.unsqueeze(-1), b.unsqueeze(-1)  # (B, 1)
    weight_args = {
        "w_min": config.w_min,
        "w_max": config.w_max,
        "gating": config.gating,
        "tau": config.tau,
        "renormalise_weights": config.renormalise,
    }
    chosen_weights = token_weights(similarity.chosen_scores, chosen_mask, a_col, b_col, **weight_args)  # (B, T)
    rejected_weights = token_weights(similarity.rejected_scores, rejected_mask, a_col, b_col, **weight_args)

    pref = preference_term(batch, config.beta, chosen_weights, rejected_weights)
    s_pref, s_dis = contrastive_terms(similarity.cosine, chosen_weights, rejected_weights, chosen_mask, rejected_mask)
    con = (s_pref + s_dis).mean()
    rew = reward_loss(batch, config.reward_reduction)
    loss = total_loss(
        pref.loss,
        con if config.contrastive else None,
        rew if config.reward else None,
        config.lambda_con,
        config.lambda_rew,
    )

    metrics = dict(pref.metrics)
    unweighted_chosen, unweighted_rejected = weighted_logratios(batch)
    unweighted_margin = config.beta * (unweighted_chosen - unweighted_rejected)
    metrics.update(
        {
            "aao/loss": loss.detach(),
            "aao/loss_pref": pref.loss.detach(),
            "aao/loss_con": con.detach(),
            "aao/loss_rew": rew.detach(),
            "aao/s_pref": s_pref.detach().mean(),
            "aao/s_dis": s_dis.detach().mean(),
            "aao/threshold_a": a.detach().mean(),
            "aao/threshold_b": b.detach().mean(),
            "aao/reward_chosen_logps": chosen_reward(batch, config.reward_reduction).detach().mean(),
            "aao/unweighted_margins": unweighted_margin.detach(),
            "aao/unweighted_accuracies": (unweighted_margin > 0).float().detach(),
        }
    )
    for side, scores, weights, mask in (
        ("chosen", similarity.chosen_scores, chosen_weights, chosen_mask),
        ("rejected", similarity.rejected_scores, rejected_weights, rejected_mask),
    ):
        classes = token_classes(scores, mask, a_col, b_col)
        for name, value in class_statistics(weights, classes, mask).items():
            metrics[f"aao/{side}_{name}"] = value
    return LossOutput(loss, metrics)


def build_modules(model: nn.Module, params: Mapping[str, Any]) -> dict[str, tuple[nn.Module, float]]:
    """AAO's extra trainable modules: ``{"aao_thresholds": (AW module, its learning rate)}``, or none.

    For an engine that registers each returned module as a submodule of the
    policy under its name (so it moves, trains and is checkpointed with it)
    before the optimizer exists, in its own param group with that learning rate.
    """
    config = AAOConfig.from_params({**DEFAULTS, **params})
    if config.thresholds != "adaptive":
        return {}
    module = AmbiguityThresholds(
        in_features=FEATURE_COUNTS[config.aw_features],
        hidden=config.aw_hidden,
        init_a=config.fixed_a,
        init_b=config.fixed_b,
    )
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    return {ATTRIBUTE: (module.to(device), config.aw_learning_rate)}


METHOD = Method(
    name="aao",
    loss=aao_loss,
    reference="precomputed",
    defaults=dict(DEFAULTS),
    params_schema=PARAMS_SCHEMA,
    check_params=check_params,
    needs_hidden_states=True,
    needs_logits=True,  # views of the forward's logits, for the AW entropy features
    description="Ambiguity Awareness Optimization: DPO with similarity-based token weights and adaptive thresholds",
    build_modules=build_modules,
)

__all__ = ["METHOD", "aao_loss", "build_modules", "thresholds_for"]
