"""The engine's chunked log-probs equal the unchunked ones, values and gradients, with padding, whether the model
projected every position or only the response's; for every method that trains on the engine, the loss and every
parameter's gradient are the same with small chunks as with a plain full-vocabulary log-softmax of every position."""

from __future__ import annotations

import pytest
import torch
from transformers import TrainingArguments

import suite.engine as engine
from baselines.tis_dpo import WEIGHT_PARAMS
from suite.engine import (
    IGNORE,
    ForwardOutput,
    PreferenceCollator,
    PreferenceDataset,
    PreferenceTrainer,
    chunk_positions,
    forward_outputs,
    response_logps,
    response_positions,
    token_logps,
)
from suite.methods import get_method, method_names
from suite.models import load_tokenizer
from suite.reference import reference_logps
from tests.conftest import perturbed_pair
from tests.trl_pairs import records

pytestmark = pytest.mark.usefixtures("single_thread")


def plain_token_logps(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The textbook computation: log-softmax over the whole float32 vocabulary, then the next token's entry."""
    targets = labels[:, 1:]
    mask = targets != IGNORE
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    picked = logp.gather(-1, targets.masked_fill(~mask, 0).unsqueeze(-1)).squeeze(-1)
    return picked * mask, mask.float()


def assert_gradients_close(ours: dict[str, torch.Tensor], plain: dict[str, torch.Tensor]) -> None:
    """Equal up to float32 summation order: a gradient sums many terms, so its error scales with its largest entry."""
    assert ours.keys() == plain.keys()
    for name, grad in ours.items():
        scale = max(1.0, plain[name].abs().max().item())
        torch.testing.assert_close(grad, plain[name], rtol=1e-4, atol=1e-6 * scale, msg=name)


def padded_labels(rows: int, length: int, vocab: int, seed: int) -> torch.Tensor:
    """Labels with prompts (ignored), responses of different lengths and right padding (ignored)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, vocab, (rows, length), generator=generator)
    for row in range(rows):
        prompt, end = 2 + row % 3, length - 3 * row
        labels[row, :prompt] = IGNORE
        labels[row, end:] = IGNORE
    return labels


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("chunk", [1, 3, 7, None])
def test_chunked_log_probs_and_gradients_equal_the_plain_ones(dtype, chunk):
    rows, length, vocab = 4, 13, 37
    labels = padded_labels(rows, length, vocab, seed=0)
    logits = (3 * torch.randn(rows, length, vocab, generator=torch.Generator().manual_seed(1))).to(dtype)
    upstream = torch.randn(rows, length - 1, generator=torch.Generator().manual_seed(2))

    ours = logits.clone().requires_grad_(True)
    logps, mask = token_logps(ours, labels, chunk=chunk)
    (logps * upstream).sum().backward()
    plain = logits.clone().requires_grad_(True)
    expected, expected_mask = plain_token_logps(plain, labels)
    (expected * upstream).sum().backward()

    assert logps.dtype == torch.float32 and ours.grad.dtype == dtype
    torch.testing.assert_close(mask, expected_mask)
    torch.testing.assert_close(logps, expected, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(ours.grad, plain.grad)
    assert (logps[mask == 0] == 0).all() and (ours.grad[:, -1] == 0).all()  # padding and the last position


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("chunk", [1, 4, None])
def test_log_probs_from_the_response_positions_logits_equal_the_plain_ones(chunk, overwrite, dtype):
    rows, length, vocab = 4, 13, 37
    labels = padded_labels(rows, length, vocab, seed=4)
    logits = (3 * torch.randn(rows, length, vocab, generator=torch.Generator().manual_seed(5))).to(dtype)
    upstream = torch.randn(rows, length - 1, generator=torch.Generator().manual_seed(6))
    keep = response_positions(labels)
    assert keep[:, -1].sum() == 0 and keep.sum() == (labels[:, 1:] != IGNORE).sum()

    full = logits.clone().requires_grad_(True)
    selected = full[keep]  # (M, V): what the model returns for logits_to_keep=keep, read by nothing else
    logps, mask = response_logps(selected, labels, chunk=chunk, overwrite=overwrite)
    (logps * upstream).sum().backward()
    plain = logits.clone().requires_grad_(True)
    expected, expected_mask = plain_token_logps(plain, labels)
    (expected * upstream).sum().backward()

    torch.testing.assert_close(mask, expected_mask)
    torch.testing.assert_close(logps, expected, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(full.grad, plain.grad)
    torch.testing.assert_close(full, logits)  # overwriting reuses the selected copy, never the model's weights


def plain_forward_outputs(model, inputs, hidden_states: bool = False, logits: bool = False) -> ForwardOutput:
    """The engine's forward done plainly: every position projected, log-probs by :func:`plain_token_logps`."""
    outputs = model(
        input_ids=inputs["input_ids"],
        attention_mask=inputs["attention_mask"],
        output_hidden_states=hidden_states,
        use_cache=False,
    )
    logps, mask = plain_token_logps(outputs.logits, inputs["labels"])
    hidden = outputs.hidden_states[-1][:, 1:] if hidden_states else None
    return ForwardOutput(logps, mask, hidden, outputs.logits[:, :-1] if logits else None)


@pytest.mark.parametrize("logits", [False, True])
def test_the_engine_forward_equals_the_plain_one(tiny_model_dir, padded_inputs, logits):
    """Projecting only the response positions (no logits asked) or every position gives the same log-probs and
    the same gradient of every weight, the output layer's included."""
    results = []
    for forward in (forward_outputs, plain_forward_outputs):
        policy, _ = perturbed_pair(tiny_model_dir)
        out = forward(policy, padded_inputs, hidden_states=True, logits=logits)
        (out.logps * out.mask).sum().backward()
        results.append((out, {n: p.grad for n, p in policy.named_parameters()}))
    (ours, our_grads), (plain, plain_grads) = results
    torch.testing.assert_close(ours.logps, plain.logps, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(ours.mask, plain.mask)
    torch.testing.assert_close(ours.hidden, plain.hidden)
    assert (ours.logits is None) == (not logits)
    assert_gradients_close(our_grads, plain_grads)


def test_gradient_is_exact_in_double_precision():
    labels = padded_labels(3, 9, 11, seed=3)
    logits = torch.randn(3, 9, 11, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: token_logps(x, labels, chunk=2)[0], (logits,))


def test_no_response_token_gives_zeros_and_a_zero_gradient():
    logits = torch.randn(2, 5, 7, requires_grad=True)
    logps, mask = token_logps(logits, torch.full((2, 5), IGNORE), chunk=2)
    logps.sum().backward()
    assert mask.sum() == 0 and (logps == 0).all() and (logits.grad == 0).all()


def test_chunk_size_follows_the_vocabulary():
    assert chunk_positions(128256) == engine.LOGPS_CHUNK_ELEMENTS // 128256 > 200
    assert chunk_positions(10, elements=25) == 2
    assert chunk_positions(10**9) == 1


# ---------------------------------------------------------------- every method on the engine

RTO_IS_NOT_A_PAIR_LOSS = {"rto"}  # PPO on sampled responses (baselines.rto.trainer), through the same forward
PARAMS = {"tdpo": {"variant": 2}}


def tis_artifact(inputs: dict, method_params: dict) -> dict:
    """Random stored TIS weights for the batch's records, built with the method's current parameters."""
    generator = torch.Generator().manual_seed(5)
    mask = inputs["labels"][:, 1:] != IGNORE
    n = len(inputs["ids"])
    values = {
        record_id: {
            "chosen": 0.7 + 0.6 * torch.rand(int(mask[row].sum()), generator=generator),
            "rejected": 0.7 + 0.6 * torch.rand(int(mask[row + n].sum()), generator=generator),
        }
        for row, record_id in enumerate(inputs["ids"])
    }
    return {"params": {k: method_params[k] for k in WEIGHT_PARAMS}, "values": values}


def loss_and_gradients(name: str, model_dir, inputs: dict, tmp_path) -> tuple[float, dict[str, torch.Tensor]]:
    method = get_method(name)
    policy, reference = perturbed_pair(model_dir)
    params = method.resolve_params(PARAMS.get(name, {}))
    if method.artifact:
        params["artifact"] = tis_artifact(inputs, params)
    trainer = PreferenceTrainer(
        model=policy,
        args=TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True),
        method=method,
        method_params=params,
        ref_model=reference if method.reference == "live" else None,
    )
    policy.train()
    batch = {k: v for k, v in inputs.items() if k != "ref_logps" or method.reference == "precomputed"}
    loss = trainer.compute_loss(policy, batch)
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in policy.named_parameters() if p.grad is not None}


@pytest.fixture(scope="module")
def padded_inputs(tiny_model_dir) -> dict:
    """All pairs of tests/trl_pairs.py (responses of 5 to ~100 tokens: much padding), reference log-probs included."""
    tokenizer = load_tokenizer(tiny_model_dir)
    dataset = PreferenceDataset(records(), tokenizer, max_length=1024, max_prompt_length=512)
    _, reference = perturbed_pair(tiny_model_dir)
    stored = reference_logps(reference, dataset, tokenizer.pad_token_id, batch_size=4)
    dataset = PreferenceDataset(records(), tokenizer, max_length=1024, max_prompt_length=512, reference=stored)
    inputs = PreferenceCollator(tokenizer.pad_token_id)([dataset[i] for i in range(len(dataset))])
    assert (inputs["attention_mask"] == 0).any(), "no padding: the test would not cover it"
    return inputs


@pytest.mark.parametrize("name", sorted(set(method_names()) - RTO_IS_NOT_A_PAIR_LOSS))
def test_every_method_has_the_same_loss_and_gradients_with_chunks(
    name, tiny_model_dir, padded_inputs, tmp_path, monkeypatch
):
    vocab = len(load_tokenizer(tiny_model_dir))
    with monkeypatch.context() as patch:
        patch.setattr(engine, "forward_outputs", plain_forward_outputs)
        plain_loss, plain_grads = loss_and_gradients(name, tiny_model_dir, padded_inputs, tmp_path / "plain")
    monkeypatch.setattr(engine, "LOGPS_CHUNK_ELEMENTS", 3 * vocab)  # 3 positions per chunk: many chunks
    loss, grads = loss_and_gradients(name, tiny_model_dir, padded_inputs, tmp_path / "chunked")

    assert loss == pytest.approx(plain_loss, rel=1e-5, abs=1e-6)
    assert any(g.abs().sum() > 0 for g in grads.values())
    assert_gradients_close(grads, plain_grads)
