"""TDPO: the chunked token-level KL equals a direct full-vocabulary computation (values and gradients), TDPO2 stops
the gradient of the chosen side's KL, and the engine serves policy and reference logits with one reference forward.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import TrainingArguments

from baselines.tdpo import sequence_kl, tdpo_loss
from suite.engine import PreferenceBatch, PreferenceCollator, PreferenceDataset, PreferenceTrainer, forward_outputs
from suite.methods import get_method
from suite.models import load_tokenizer
from tests.conftest import perturbed_pair


def direct_kl(logits, ref_logits, mask):
    """sum_t KL(softmax(ref) || softmax(logits)) over masked positions, all at once over the vocabulary."""
    ref_logp = F.log_softmax(ref_logits.float(), -1)
    per_position = (ref_logp.exp() * (ref_logp - F.log_softmax(logits.float(), -1))).sum(-1)
    return (per_position * mask).sum(-1)


def random_case(seed=0, n=3, t=7, v=40):
    generator = torch.Generator().manual_seed(seed)
    logits = (2 * torch.randn(n, t, v, generator=generator)).requires_grad_()
    ref_logits = 2 * torch.randn(n, t, v, generator=generator)
    mask = (torch.rand(n, t, generator=generator) > 0.3).float()
    mask[0, :3] = 0  # a prompt part
    return logits, ref_logits, mask


@pytest.mark.parametrize("chunk", [1, 4, 1000])
def test_chunked_kl_equals_direct_values_and_gradients(chunk):
    logits, ref_logits, mask = random_case()
    weights = torch.randn(logits.shape[0])
    ours = sequence_kl(logits, ref_logits, mask, chunk)
    (grad_ours,) = torch.autograd.grad((weights * ours).sum(), logits)
    direct = direct_kl(logits, ref_logits, mask)
    (grad_direct,) = torch.autograd.grad((weights * direct).sum(), logits)
    assert (direct > 0).all()
    torch.testing.assert_close(ours, direct, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad_ours, grad_direct, rtol=1e-5, atol=1e-6)
    assert grad_ours[mask == 0].abs().max() == 0  # no gradient off the response


def test_chunked_kl_in_bfloat16_matches_float32_of_the_same_values():
    logits, ref_logits, mask = random_case(seed=1)
    low = logits.detach().bfloat16().requires_grad_()
    ours = sequence_kl(low, ref_logits.bfloat16(), mask, 5)
    direct = direct_kl(low.detach().float(), ref_logits.bfloat16().float(), mask)
    torch.testing.assert_close(ours, direct, rtol=1e-5, atol=1e-5)
    ours.sum().backward()
    assert low.grad.dtype == torch.bfloat16


def leaf_batch(seed=0):
    """A batch whose logits and log-probs are separate leaves, so each gradient path is seen on its own."""
    logits, ref_logits, mask = random_case(seed, n=4)
    generator = torch.Generator().manual_seed(seed + 1)
    logps = -torch.rand(4, logits.shape[1], generator=generator)
    ref_logps = -torch.rand(4, logits.shape[1], generator=generator)
    chosen_logits, rejected_logits = (x.detach().clone().requires_grad_() for x in logits.chunk(2))
    chosen_logps, rejected_logps = (x.clone().requires_grad_() for x in logps.chunk(2))
    ref_chosen, ref_rejected = ref_logits.chunk(2)
    chosen_mask, rejected_mask = mask.chunk(2)
    batch = PreferenceBatch(
        chosen_logps,
        rejected_logps,
        chosen_mask,
        rejected_mask,
        *ref_logps.chunk(2),
        chosen_logits=chosen_logits,
        rejected_logits=rejected_logits,
        ref_chosen_logits=ref_chosen,
        ref_rejected_logits=ref_rejected,
    )
    return batch


def direct_tdpo(batch, beta, alpha, variant):
    chosen = ((batch.chosen_logps - batch.ref_chosen_logps) * batch.chosen_mask).sum(-1)
    rejected = ((batch.rejected_logps - batch.ref_rejected_logps) * batch.rejected_mask).sum(-1)
    kl_w = direct_kl(batch.chosen_logits, batch.ref_chosen_logits, batch.chosen_mask)
    kl_l = direct_kl(batch.rejected_logits, batch.ref_rejected_logits, batch.rejected_mask)
    if variant == 1:
        return -F.logsigmoid(beta * (chosen - rejected + kl_w - kl_l)).mean()
    return -F.logsigmoid(beta * (chosen - rejected + alpha * (kl_w.detach() - kl_l))).mean()


@pytest.mark.parametrize("variant", [1, 2])
def test_tdpo_loss_and_gradients_equal_the_formula(variant):
    batch, reference = leaf_batch(), leaf_batch()
    loss = tdpo_loss(batch, beta=0.5, alpha=0.5, variant=variant, kl_chunk_size=3)
    expected = direct_tdpo(reference, beta=0.5, alpha=0.5, variant=variant)
    torch.testing.assert_close(loss.loss, expected)
    loss.loss.backward()
    expected.backward()
    for name in ("chosen_logps", "rejected_logps", "rejected_logits"):
        torch.testing.assert_close(getattr(batch, name).grad, getattr(reference, name).grad, msg=name)
    assert batch.rejected_logits.grad.abs().sum() > 0
    if variant == 1:
        torch.testing.assert_close(batch.chosen_logits.grad, reference.chosen_logits.grad)
        assert batch.chosen_logits.grad.abs().sum() > 0
    else:  # TDPO2: sg(KL_w), the chosen side's logits get no gradient at all
        assert batch.chosen_logits.grad is None and reference.chosen_logits.grad is None
    assert {"kl/chosen", "kl/rejected", "rewards/margins"} <= set(loss.metrics)


def test_tdpo2_alpha_scales_only_the_rejected_kl_gradient():
    grads = {}
    for alpha in (0.25, 0.5):
        batch = leaf_batch()
        tdpo_loss(batch, beta=1e-3, alpha=alpha, variant=2).loss.backward()  # small beta: sigma' ~ constant
        grads[alpha] = batch.rejected_logits.grad
    torch.testing.assert_close(grads[0.5], 2 * grads[0.25], rtol=1e-2, atol=1e-9)


def test_engine_serves_logits_with_one_reference_forward(tiny_model_dir, tmp_path):
    tokenizer = load_tokenizer(tiny_model_dir)
    policy, reference = perturbed_pair(tiny_model_dir, seed=3)
    records = [
        {
            "id": f"r{i}",
            "prompt": [{"role": "user", "content": f"What is the capital of France, {i}?"}],
            "chosen": [{"role": "assistant", "content": "The capital of France is Paris."}],
            "rejected": [{"role": "assistant", "content": "The sea is wide and blue" + " and blue" * i}],
        }
        for i in range(3)
    ]
    dataset = PreferenceDataset(records, tokenizer, max_length=128, max_prompt_length=64)
    inputs = PreferenceCollator(tokenizer.pad_token_id)([dataset[i] for i in range(3)])
    method = get_method("tdpo")
    trainer = PreferenceTrainer(
        model=policy,
        args=TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True),
        data_collator=PreferenceCollator(tokenizer.pad_token_id),
        method=method,
        method_params=method.defaults,
        ref_model=reference,
    )
    calls = []
    handle = trainer.ref_model.register_forward_hook(lambda *_: calls.append(1))
    batch = trainer.preference_batch(policy, inputs)
    handle.remove()
    assert len(calls) == 1, "the reference ran more than once for one batch"
    assert not trainer.ref_model.training and not any(p.requires_grad for p in trainer.ref_model.parameters())

    with torch.no_grad():
        ours_policy = forward_outputs(policy, inputs, logits=True)
        ours_ref = forward_outputs(reference, inputs, logits=True)
    n = len(records)
    torch.testing.assert_close(batch.ref_chosen_logps, ours_ref.logps[:n])
    torch.testing.assert_close(batch.ref_rejected_logits, ours_ref.logits[n:])
    torch.testing.assert_close(batch.chosen_logits.detach(), ours_policy.logits[:n])
    direct = direct_kl(ours_policy.logits, ours_ref.logits, ours_ref.mask)
    assert (direct > 1e-3).all()
    output = method.loss(batch, **method.defaults)
    torch.testing.assert_close(output.metrics["kl/chosen"], direct[:n], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(output.metrics["kl/rejected"], direct[n:], rtol=1e-5, atol=1e-6)
    output.loss.backward()
    assert all(p.grad is None for p in reference.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.parameters())
