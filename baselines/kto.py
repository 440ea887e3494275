"""KTO (Ethayarajh et al., 2024) as TRL 1.16's KTOTrainer computes it (loss_type "kto").

Each pair becomes two unpaired examples, the chosen one desirable and the
rejected one undesirable. With r = log pi(y|x) - log pi_ref(y|x) (summed over
the response) and a reference point z:

    desirable:   lambda_D * (1 - sigma(beta * (r - z)))
    undesirable: lambda_U * (1 - sigma(beta * (z - r)))

and the loss is the mean over all 2B examples. z estimates KL(pi || pi_ref)
from mismatched (prompt, completion) pairs of the same batch (the engine's
``mismatched_inputs``: completions rotated by one over the 2B examples, as
TRL rotates them within a batch): the mean of their log-ratios, detached,
averaged over processes, clamped at 0.

Difference from TRL's default data order: TRL samples the unpaired dataset
sequentially, so its batches hold only desirable or only undesirable
examples; here each batch holds B pairs, i.e. B desirable and B undesirable
examples. The per-example loss and z are computed the same way.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from baselines.dpo import weighted_logratios
from suite.engine import LossOutput, PreferenceBatch, dpo_metrics
from suite.methods import POSITIVE, Method


def kl_reference_point(batch: PreferenceBatch) -> torch.Tensor:
    """z: mean log-ratio over the mismatched pairs, detached, averaged over processes, clamped at 0."""
    if "mismatched_logps" not in batch.extras:
        raise ValueError("kto needs the engine's mismatched pairs (Method.needs_mismatched_pairs)")
    if batch.chosen_logps.shape[0] < 2:
        raise ValueError("kto needs at least 2 pairs per device batch: with one, no mismatched pair exists")
    kl = (batch.extras["mismatched_logps"] - batch.extras["ref_mismatched_logps"]).mean().detach()
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        kl = kl.clone()
        dist.all_reduce(kl)
        kl = kl / dist.get_world_size()
    return kl.clamp(min=0)


def kto_loss(
    batch: PreferenceBatch, beta: float, desirable_weight: float = 1.0, undesirable_weight: float = 1.0
) -> LossOutput:
    chosen, rejected = weighted_logratios(batch)
    kl = kl_reference_point(batch)
    chosen_losses = 1 - F.sigmoid(beta * (chosen - kl))
    rejected_losses = 1 - F.sigmoid(beta * (kl - rejected))
    loss = torch.cat((desirable_weight * chosen_losses, undesirable_weight * rejected_losses)).mean()
    metrics = dpo_metrics(batch, beta * chosen, beta * rejected)
    metrics["kl"] = kl
    return LossOutput(loss, metrics)


METHOD = Method(
    name="kto",
    loss=kto_loss,
    reference="live",
    defaults={"beta": 0.01, "desirable_weight": 1.0, "undesirable_weight": 1.0},
    params_schema={"beta": POSITIVE, "desirable_weight": POSITIVE, "undesirable_weight": POSITIVE},
    description="Kahneman-Tversky Optimisation on unpaired chosen/rejected examples (TRL KTOTrainer, loss_type='kto')",
    needs_mismatched_pairs=True,
)
