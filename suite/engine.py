"""The one training engine every preference method runs on.

Chosen and rejected responses go through the policy in one concatenated
forward; the engine gathers per-token log-probabilities of response tokens only
and hands them, with the reference's, to the method's loss. Methods therefore
differ only in their loss function (TRL 1.16's DPOTrainer has no hook for
per-token weights, which is why this engine exists; TRL stays the reference in
the tests).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer, set_seed

from suite.methods import Method

IGNORE = -100


@dataclass
class PreferenceBatch:
    """Per-token quantities of a batch of B pairs over T shifted positions (position t predicts token t+1).

    Masks are 1 on response tokens only: prompt and padding never count.
    """

    chosen_logps: Tensor  # (B, T) policy log-probs
    rejected_logps: Tensor  # (B, T)
    chosen_mask: Tensor  # (B, T) float
    rejected_mask: Tensor  # (B, T) float
    ref_chosen_logps: Tensor | None = None  # (B, T)
    ref_rejected_logps: Tensor | None = None  # (B, T)
    chosen_hidden: Tensor | None = None  # (B, T, D) last hidden state at the response token's own position
    rejected_hidden: Tensor | None = None  # (B, T, D)
    extras: dict[str, Any] = field(default_factory=dict)
    # Only for methods with ``needs_logits``: views of the forward's logits at the predicting positions, never copies.
    chosen_logits: Tensor | None = None  # (B, T, V) policy logits
    rejected_logits: Tensor | None = None  # (B, T, V)
    ref_chosen_logits: Tensor | None = None  # (B, T, V) reference logits (live reference only), no gradient
    ref_rejected_logits: Tensor | None = None  # (B, T, V)

    def sequence_logps(self) -> tuple[Tensor, Tensor]:
        """Summed response log-probs of the policy, (B,) each."""
        return (self.chosen_logps * self.chosen_mask).sum(-1), (self.rejected_logps * self.rejected_mask).sum(-1)

    def ref_sequence_logps(self) -> tuple[Tensor, Tensor]:
        """Summed response log-probs of the reference, (B,) each."""
        if self.ref_chosen_logps is None or self.ref_rejected_logps is None:
            raise ValueError("this loss needs reference log-probs, but the batch has none")
        return (
            (self.ref_chosen_logps * self.chosen_mask).sum(-1),
            (self.ref_rejected_logps * self.rejected_mask).sum(-1),
        )


@dataclass
class LossOutput:
    loss: Tensor
    metrics: dict[str, Tensor]


# ---------------------------------------------------------------- tokenisation


def _chat_ids(tokenizer: PreTrainedTokenizerBase, messages: Sequence[Mapping[str, str]], **kwargs: Any) -> list[int]:
    return list(tokenizer.apply_chat_template(list(messages), tokenize=True, return_dict=True, **kwargs)["input_ids"])


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


# What tokenisation changed silently before it was counted (PreferenceDataset.tokenisation, the training log).
TOKENISATION_CASES = {
    "response_merged_with_prompt": "response start merged with the prompt's last token (scored as response)",
    "prompt_truncated": "prompt over max_prompt_length (its start cut, its end kept)",
    "chosen_truncated": "chosen response cut to max_length",
    "rejected_truncated": "rejected response cut to max_length",
}


def tokenize_pair(
    tokenizer: PreTrainedTokenizerBase,
    record: Mapping[str, Any],
    max_length: int,
    max_prompt_length: int,
    cases: Counter[str] | None = None,
) -> dict[str, list[int]]:
    """Prompt and response token ids of one preference record; ``cases`` counts the silent changes below.

    The response starts where the templated prompt and prompt+response diverge
    (as in TRL). On a real chat template a response that starts with whitespace
    can merge with the template's last newline into one token, which then
    belongs to the response (TRL warns of it; the alternative, dropping the
    token, would lose the response's first characters). An over-long prompt
    keeps its end (the turn being answered; TRL drops such pairs instead); the
    responses are then cut to fit ``max_length``. Each case is counted under
    its key of :data:`TOKENISATION_CASES`.
    """
    cases = Counter() if cases is None else cases
    prompt = _chat_ids(tokenizer, record["prompt"], add_generation_prompt=True)
    full_chosen = _chat_ids(tokenizer, [*record["prompt"], *record["chosen"]])
    full_rejected = _chat_ids(tokenizer, [*record["prompt"], *record["rejected"]])
    split = min(len(prompt), _common_prefix(prompt, full_chosen), _common_prefix(prompt, full_rejected))
    cases["response_merged_with_prompt"] += split < len(prompt)
    cases["prompt_truncated"] += split > max_prompt_length
    prompt_ids = prompt[:split][-max_prompt_length:]
    budget = max(max_length - len(prompt_ids), 0)
    ids = {"prompt_ids": prompt_ids}
    for side, full in (("chosen", full_chosen), ("rejected", full_rejected)):
        cases[f"{side}_truncated"] += len(full) - split > budget
        ids[f"{side}_ids"] = full[split:][:budget]
    return ids


def tokenisation_report(cases: Counter[str], n_pairs: int) -> str:
    """One line for the training log: how many pairs each silent tokenisation case touched."""
    counts = "; ".join(f"{text}: {cases[key]}" for key, text in TOKENISATION_CASES.items())
    return f"tokenisation of {n_pairs} pairs: {counts}"


def tokenization_fingerprint(tokenizer: PreTrainedTokenizerBase, max_length: int, max_prompt_length: int) -> str:
    """Identifies what the reference log-probs were computed against, so a mismatch is caught, not trained on."""
    blob = json.dumps(
        {
            "vocab": len(tokenizer),
            "template": tokenizer.chat_template,
            "max": max_length,
            "prompt": max_prompt_length,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def precision(training: Mapping[str, Any]) -> dict[str, Any]:
    """The numeric precision a training block trains under: the weights' dtype and the autocast dtype (or None).

    Reference log-probs must be computed under the same precision as the
    policy trains (with ``bf16: true`` the Trainer autocasts every forward),
    or DPO's rewards are not ~0 at step 1 even with policy == reference.
    """
    return {"dtype": training.get("dtype", "float32"), "autocast": "bfloat16" if training.get("bf16") else None}


def autocast(precision: Mapping[str, Any], device: torch.device) -> contextlib.AbstractContextManager:
    """A context that runs forwards under ``precision``'s autocast, as the Trainer does when training."""
    if precision["autocast"] is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=getattr(torch, precision["autocast"]))


class PreferenceDataset(torch.utils.data.Dataset):
    """Tokenised preference pairs, with the reference's per-token log-probs when they were precomputed."""

    def __init__(
        self,
        records: Sequence[Mapping[str, Any]],
        tokenizer: PreTrainedTokenizerBase,
        max_length: int,
        max_prompt_length: int,
        reference: Mapping[str, Mapping[str, Tensor]] | None = None,
    ) -> None:
        self.max_length, self.max_prompt_length = max_length, max_prompt_length
        self.tokenisation: Counter[str] = Counter()  # TOKENISATION_CASES keys -> pairs
        self.items = []
        for record in records:
            ids = tokenize_pair(tokenizer, record, max_length, max_prompt_length, self.tokenisation)
            item = {"id": record["id"], **ids}
            if reference is not None:
                item.update(_reference_for(record["id"], item, reference))
            self.items.append(item)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items[index]


def _reference_for(record_id: str, item: Mapping[str, Any], reference: Mapping[str, Mapping[str, Tensor]]) -> dict:
    if record_id not in reference:
        raise KeyError(f"no reference log-probs for record {record_id!r}: rerun the reference rule")
    ref = reference[record_id]
    for side in ("chosen", "rejected"):
        if len(ref[side]) != len(item[f"{side}_ids"]):
            raise ValueError(
                f"reference log-probs of record {record_id!r} ({side}) have {len(ref[side])} tokens, "
                f"the tokenised response {len(item[f'{side}_ids'])}: they were computed with another tokenisation"
            )
    return {"ref_chosen_logps": ref["chosen"], "ref_rejected_logps": ref["rejected"]}


class PreferenceCollator:
    """Pads pairs into one (2B, L) batch: the B chosen sequences, then the B rejected ones.

    The batch also carries the B record ids (``ids``, a list of str), so a loss
    can derive per-record quantities (e.g. DPO-Random's seeded weights) that
    do not depend on which other records share the batch.
    """

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Tensor]:
        sequences = [it["prompt_ids"] + it["chosen_ids"] for it in items]
        sequences += [it["prompt_ids"] + it["rejected_ids"] for it in items]
        starts = [len(it["prompt_ids"]) for it in items] * 2
        length = max(len(s) for s in sequences)
        input_ids = torch.full((len(sequences), length), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)
        labels = torch.full_like(input_ids, IGNORE)
        for row, (seq, start) in enumerate(zip(sequences, starts, strict=True)):
            input_ids[row, : len(seq)] = torch.tensor(seq)
            attention_mask[row, : len(seq)] = 1
            labels[row, start : len(seq)] = torch.tensor(seq[start:])
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
        if "id" in items[0]:
            batch["ids"] = [it["id"] for it in items]
        if "ref_chosen_logps" in items[0]:
            batch["ref_logps"] = self._place_reference(items, labels)
        return batch

    @staticmethod
    def _place_reference(items: Sequence[Mapping[str, Any]], labels: Tensor) -> Tensor:
        """Scatter stored per-response-token reference log-probs to their shifted positions, (2B, L-1)."""
        mask = labels[:, 1:] != IGNORE
        ref = torch.zeros(mask.shape, dtype=torch.float32)
        values = [it["ref_chosen_logps"] for it in items] + [it["ref_rejected_logps"] for it in items]
        for row, value in enumerate(values):
            ref[row, mask[row]] = torch.as_tensor(value, dtype=torch.float32)
        return ref


# ---------------------------------------------------------------- forward


LOGPS_CHUNK_ELEMENTS = 2**25  # float32 values per chunk of positions (128 MiB; 261 positions of a 128k vocabulary)


def chunk_positions(vocab_size: int, elements: int | None = None) -> int:
    """Positions per chunk so that one chunk's float32 (positions, vocab) working set holds ``elements`` values."""
    return max(1, (LOGPS_CHUNK_ELEMENTS if elements is None else elements) // vocab_size)


class _SelectedLogProbs(torch.autograd.Function):
    """log softmax(logits[r])[target] for rows r of (R, V) logits, chunk by chunk, with its exact gradient.

    The forward keeps only each row's log-sum-exp; the backward recomputes
    softmax per chunk: d logp / d logits[r] = onehot(target) - softmax(logits[r]).
    So besides the logits (held by the model's output anyway) and their gradient,
    at most one chunk of float32 (chunk, V) values exists at a time, whatever
    the logits' dtype, and rows that are not selected cost nothing. ``rows``
    None selects every row, in order; then ``overwrite`` lets the backward
    write the gradient into the logits' own buffer (for logits nothing else
    reads), so no second (R, V) buffer is ever allocated.
    """

    @staticmethod
    def forward(ctx, logits: Tensor, rows: Tensor | None, targets: Tensor, chunk: int, overwrite: bool) -> Tensor:
        dtype = torch.promote_types(logits.dtype, torch.float32)  # float32, or float64 for float64 logits
        lse = torch.empty(targets.shape, dtype=dtype, device=logits.device)
        for start, part in _row_chunks(logits, rows, chunk, dtype):
            lse[start : start + part.shape[0]] = torch.logsumexp(part, dim=-1)
        index = rows if rows is not None else torch.arange(targets.shape[0], device=logits.device)
        picked = logits[index, targets].to(dtype)
        ctx.save_for_backward(logits, rows, targets, lse)
        ctx.chunk, ctx.overwrite = chunk, overwrite and rows is None
        return picked - lse

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor, None, None, None, None]:
        logits, rows, targets, lse = ctx.saved_tensors
        grad = logits if ctx.overwrite else torch.zeros_like(logits)
        for start, part in _row_chunks(logits, rows, ctx.chunk, lse.dtype, copy=not ctx.overwrite):
            end = start + part.shape[0]
            g = grad_out[start:end].to(lse.dtype)
            part = part.sub_(lse[start:end, None]).exp_().mul_(-g[:, None])  # -g * softmax
            part[torch.arange(end - start, device=part.device), targets[start:end]] += g
            if rows is not None:
                grad.index_copy_(0, rows[start:end], part.to(grad.dtype))
            elif not (ctx.overwrite and part.dtype == grad.dtype):  # else ``part`` is a view of ``grad`` already
                grad[start:end] = part
        return grad, None, None, None, None


def _row_chunks(
    logits: Tensor, rows: Tensor | None, chunk: int, dtype: torch.dtype, copy: bool = False
) -> Iterator[tuple[int, Tensor]]:
    """(start, (n, V) ``dtype`` values) of the selected rows, ``chunk`` at a time; ``copy``: never a view."""
    count = logits.shape[0] if rows is None else rows.shape[0]
    for start in range(0, count, chunk):
        if rows is None:
            part = logits[start : start + chunk]
            yield start, part.to(dtype, copy=copy)
        else:
            yield start, logits.index_select(0, rows[start : start + chunk]).to(dtype)


def _on_mask(values: Tensor, mask: Tensor) -> Tensor:
    """(M,) values of the mask's positions, in row-major order, placed on a zero (N, T) grid."""
    return torch.zeros(mask.shape, dtype=values.dtype, device=values.device).masked_scatter(mask, values)


def token_logps(logits: Tensor, labels: Tensor, chunk: int | None = None) -> tuple[Tensor, Tensor]:
    """Log-prob of each next token and the response mask, both (N, L-1), from (N, L, V) logits; 0 off the response.

    Only the positions that predict a response token are computed, ``chunk``
    of them at a time (default: :func:`chunk_positions`), in float32 for any
    lower-precision logits: a long sequence with a 128k vocabulary never needs a
    float32 copy of all its logits, nor a log-softmax of them, and the
    gradient goes straight into one buffer the size of the logits.
    """
    targets = labels[:, 1:]
    mask = targets != IGNORE
    length, vocab = logits.shape[1], logits.shape[2]
    row, col = mask.nonzero(as_tuple=True)
    flat_rows = row * length + col  # predicting position (row, col) of the (N, L) logits
    picked = _SelectedLogProbs.apply(
        logits.reshape(-1, vocab), flat_rows, targets[row, col], chunk or chunk_positions(vocab), False
    )
    return _on_mask(picked, mask), mask.float()


def response_logps(
    logits: Tensor, labels: Tensor, chunk: int | None = None, overwrite: bool = False
) -> tuple[Tensor, Tensor]:
    """As :func:`token_logps`, from the (M, V) logits of only the M positions that predict a response token
    (row-major order, as a model returns them for ``logits_to_keep=response_positions(labels)``).

    ``overwrite``: the backward turns ``logits`` into their own gradient, in
    place; only for logits that nothing else reads afterwards (the engine's
    forward), and it halves the peak memory of the output layer's backward.
    """
    targets = labels[:, 1:]
    mask = targets != IGNORE
    chunk = chunk or chunk_positions(logits.shape[-1])
    picked = _SelectedLogProbs.apply(logits, None, targets[mask], chunk, overwrite)
    return _on_mask(picked, mask), mask.float()


def response_positions(labels: Tensor) -> Tensor:
    """(N, L) bool: the positions whose next token is a response token (the last position predicts none)."""
    return torch.nn.functional.pad(labels[:, 1:] != IGNORE, (0, 1), value=False)


@dataclass
class ForwardOutput:
    """What one forward over a concatenated (N, L) batch yields, aligned to the N x (L-1) shifted positions."""

    logps: Tensor  # (N, L-1)
    mask: Tensor  # (N, L-1)
    hidden: Tensor | None = None  # (N, L-1, D)
    logits: Tensor | None = None  # (N, L-1, V), a view of the model's logits


def forward_outputs(
    model: PreTrainedModel, inputs: Mapping[str, Tensor], hidden_states: bool = False, logits: bool = False
) -> ForwardOutput:
    """One forward: per-token log-probs and mask, plus the last hidden states and the logits if asked.

    Unless the logits are asked for, the model projects only the positions
    that predict a response token (``logits_to_keep``, a boolean mask: the
    output layer never sees prompt, padding or the last position, and the
    logits are (M, V) for M response tokens, not (N, L, V)).
    """
    labels = inputs["labels"]
    outputs = model(
        input_ids=inputs["input_ids"],
        attention_mask=inputs["attention_mask"],
        output_hidden_states=hidden_states,
        use_cache=False,
        logits_to_keep=0 if logits else response_positions(labels),
    )
    if outputs.logits.dim() == 2:  # only this function sees these logits: their buffer can take their gradient
        logps, mask = response_logps(outputs.logits, labels, overwrite=True)
    else:  # every position's logits: asked for, or a model that ignores logits_to_keep
        logps, mask = token_logps(outputs.logits, labels)
    hidden = outputs.hidden_states[-1][:, 1:] if hidden_states else None  # position j: token j+1's own state
    return ForwardOutput(logps, mask, hidden, outputs.logits[:, :-1] if logits else None)


def forward_batch(
    model: PreTrainedModel, inputs: Mapping[str, Tensor], hidden_states: bool = False
) -> tuple[Tensor, Tensor, Tensor | None]:
    """One forward over the concatenated batch: per-token log-probs, mask, and last hidden states if asked."""
    out = forward_outputs(model, inputs, hidden_states)
    return out.logps, out.mask, out.hidden


def mismatched_inputs(inputs: Mapping[str, Tensor], max_length: int | None = None) -> dict[str, Tensor]:
    """Mismatched (prompt, completion) sequences of a collated batch, for KTO's KL reference point.

    The 2N rows of a batch are read as 2N unpaired examples (the N chosen, then
    the N rejected) and the completions are rotated by one, as TRL's
    KTOTrainer does within a batch: row i pairs its own prompt with the
    completion of row i-1 (row 0 with the last row's). With N >= 2 pairs every
    completion lands after another record's prompt. As in TRL, a sequence longer than ``max_length`` is
    cut at its end (a long prompt with another row's long completion can
    exceed it).
    """
    ids, attention, labels = inputs["input_ids"], inputs["attention_mask"], inputs["labels"]
    lengths = attention.sum(-1).tolist()
    completion_lengths = (labels != IGNORE).sum(-1).tolist()
    prompts = [row[: n - c] for row, n, c in zip(ids, lengths, completion_lengths, strict=True)]
    completions = [row[n - c : n] for row, n, c in zip(ids, lengths, completion_lengths, strict=True)]
    completions = completions[-1:] + completions[:-1]
    sequences = [torch.cat([p, c])[:max_length] for p, c in zip(prompts, completions, strict=True)]
    shape = (len(sequences), max(len(seq) for seq in sequences))
    padding = ids[attention == 0]
    out_ids = ids.new_full(shape, int(padding[0]) if len(padding) else 0)  # the batch's own pad id
    out_attention = attention.new_zeros(shape)
    out_labels = labels.new_full(shape, IGNORE)
    for row, (prompt, seq) in enumerate(zip(prompts, sequences, strict=True)):
        out_ids[row, : len(seq)] = seq
        out_attention[row, : len(seq)] = 1
        out_labels[row, len(prompt) : len(seq)] = seq[len(prompt) :]
    return {"input_ids": out_ids, "attention_mask": out_attention, "labels": out_labels}


def split_pairs(tensor: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
    if tensor is None:
        return None, None
    chosen, rejected = tensor.chunk(2, dim=0)
    return chosen, rejected


def make_batch(
    logps: Tensor,
    mask: Tensor,
    ref_logps: Tensor | None,
    hidden: Tensor | None,
    logits: Tensor | None = None,
    ref_logits: Tensor | None = None,
) -> PreferenceBatch:
    chosen_logps, rejected_logps = split_pairs(logps)
    chosen_mask, rejected_mask = split_pairs(mask)
    ref_chosen, ref_rejected = split_pairs(ref_logps)
    chosen_hidden, rejected_hidden = split_pairs(hidden)
    chosen_logits, rejected_logits = split_pairs(logits)
    ref_chosen_logits, ref_rejected_logits = split_pairs(ref_logits)
    return PreferenceBatch(
        chosen_logps,
        rejected_logps,
        chosen_mask,
        rejected_mask,
        ref_chosen,
        ref_rejected,
        chosen_hidden,
        rejected_hidden,
        chosen_logits=chosen_logits,
        rejected_logits=rejected_logits,
        ref_chosen_logits=ref_chosen_logits,
        ref_rejected_logits=ref_rejected_logits,
    )


# ---------------------------------------------------------------- trainer


class PreferenceTrainer(Trainer):
    """A transformers Trainer whose loss is the registered method's, with TRL-style metric logging."""

    def __init__(
        self,
        *args: Any,
        method: Method,
        method_params: Mapping[str, Any],
        ref_model: PreTrainedModel | None = None,
        **kwargs: Any,
    ) -> None:
        if method.reference == "live" and ref_model is None:
            raise ValueError(f"method {method.name!r} needs a live reference model (ref_model=...)")
        if method.needs_mismatched_pairs and method.reference != "live":
            raise ValueError(f"method {method.name!r}: mismatched pairs need a live reference (reference='live')")
        set_seed(kwargs["args"].seed)  # the method modules' random init, reproducible like the Trainer's own
        self._module_lrs = _attach_method_modules(kwargs["model"], method, method_params)
        super().__init__(*args, **kwargs)
        # The method's loss is a mean over the batch's pairs, not a sum normalised by the batch's token count: the
        # Trainer must divide it by the gradient-accumulation steps (it skips that for models whose forward takes
        # loss kwargs, as every causal LM's does), or accumulated gradients are that many times too large, which
        # gradient clipping then turns into a different update (TRL's trainers set the same flag).
        self.model_accepts_loss_kwargs = False
        self.method = method
        self.method_params = dict(method_params)
        self.ref_model = self._prepare_reference(ref_model) if method.reference == "live" else ref_model
        self._metrics: dict[str, dict[str, list[float]]] = {
            "train": defaultdict(list),
            "eval": defaultdict(list),
        }

    def _prepare_reference(self, ref_model: PreTrainedModel) -> PreTrainedModel:
        """Put the live reference where the policy is, frozen (sharded like the policy under FSDP, as TRL does)."""
        ref_model.eval().requires_grad_(False)
        if self.is_fsdp_enabled:
            from trl.models import prepare_fsdp

            return prepare_fsdp(ref_model, self.accelerator)
        if self.is_deepspeed_enabled:
            from trl.models import prepare_deepspeed

            return prepare_deepspeed(ref_model, self.accelerator)
        return self.accelerator.prepare_model(ref_model, evaluation_mode=True)

    def preference_batch(self, model: PreTrainedModel, inputs: Mapping[str, Tensor]) -> PreferenceBatch:
        """The method's view of a batch: one policy forward, at most one live reference forward on the same inputs.

        With ``needs_logits`` the batch also holds (views of) the policy's
        logits and, for a live reference, the reference's logits from the same
        forward that gave its log-probs. With ``needs_mismatched_pairs``,
        ``extras`` holds the summed log-probs of the policy (no gradient) and
        the reference on :func:`mismatched_inputs`: ``mismatched_logps``,
        ``ref_mismatched_logps`` (2B,) each, in the batch's row order.
        """
        method = self.method
        out = forward_outputs(model, inputs, method.needs_hidden_states, method.needs_logits)
        ref_logps, ref_logits = inputs.get("ref_logps"), None
        if method.reference == "live":
            with torch.no_grad():
                ref = forward_outputs(self.ref_model, inputs, logits=method.needs_logits)
            ref_logps, ref_logits = ref.logps, ref.logits
        batch = make_batch(out.logps, out.mask, ref_logps, out.hidden, out.logits, ref_logits)
        if method.needs_mismatched_pairs:
            kl_inputs = mismatched_inputs(inputs, getattr(self.train_dataset, "max_length", None))
            with torch.no_grad():
                policy_kl = forward_outputs(model, kl_inputs)
                ref_kl = forward_outputs(self.ref_model, kl_inputs)
            batch.extras["mismatched_logps"] = (policy_kl.logps * policy_kl.mask).sum(-1)
            batch.extras["ref_mismatched_logps"] = (ref_kl.logps * ref_kl.mask).sum(-1)
        if method.reference == "live":
            batch.extras["ref_model"] = self.ref_model
        if "ids" in inputs:
            batch.extras["ids"] = list(inputs["ids"])
        batch.extras["inputs"] = inputs
        batch.extras["model"] = model
        return batch

    def create_optimizer(self, model: PreTrainedModel | None = None) -> torch.optim.Optimizer:
        """The Trainer's optimizer, with each method module's parameters in a group at its own learning rate."""
        fresh = self.optimizer is None
        optimizer = super().create_optimizer(model)
        if fresh and self._module_lrs:
            _regroup_by_module(optimizer, self.model if model is None else model, self._module_lrs)
        return optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        output: LossOutput = self.method.loss(self.preference_batch(model, inputs), **self.method_params)
        mode = "train" if model.training else "eval"
        for key, value in output.metrics.items():
            self._metrics[mode][key].append(self.accelerator.gather_for_metrics(value.detach()).float().mean().item())
        return (output.loss, {}) if return_outputs else output.loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "eval" if any(k.startswith("eval_") for k in logs) else "train"
        averaged = {key: sum(vals) / len(vals) for key, vals in self._metrics[mode].items() if vals}
        prefix = "eval_" if mode == "eval" else ""
        logs.update({f"{prefix}{key}": value for key, value in averaged.items()})
        self._metrics[mode].clear()
        super().log(logs, start_time)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        with torch.no_grad():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None


def _attach_method_modules(model: PreTrainedModel, method: Method, params: Mapping[str, Any]) -> dict[str, float]:
    """Register the method's extra modules as submodules of the policy; returns name -> learning rate."""
    if method.build_modules is None:
        return {}
    lrs = {}
    for name, (module, lr) in method.build_modules(model, params).items():
        model.add_module(name, module)
        lrs[name] = lr
    return lrs


def _regroup_by_module(optimizer: torch.optim.Optimizer, model: torch.nn.Module, lrs: Mapping[str, float]) -> None:
    """Move the method modules' parameters out of the default groups (matched by name, so wrappers work)."""
    own_lr = {
        id(param): lrs[part] for name, param in model.named_parameters() for part in name.split(".") if part in lrs
    }
    moved: dict[float, list[Tensor]] = defaultdict(list)
    for group in optimizer.param_groups:
        for param in group["params"]:
            if id(param) in own_lr:
                moved[own_lr[id(param)]].append(param)
        group["params"] = [p for p in group["params"] if id(p) not in own_lr]
    for lr, params in moved.items():
        optimizer.add_param_group({"params": params, "lr": lr, "weight_decay": 0.0})


def dpo_metrics(batch: PreferenceBatch, chosen_rewards: Tensor, rejected_rewards: Tensor) -> dict[str, Tensor]:
    """The metrics TRL's DPOTrainer logs, under the same names, so plots from either tool read alike."""
    chosen_logps, rejected_logps = batch.sequence_logps()
    return {
        "rewards/chosen": chosen_rewards.detach(),
        "rewards/rejected": rejected_rewards.detach(),
        "rewards/accuracies": (chosen_rewards > rejected_rewards).float().detach(),
        "rewards/margins": (chosen_rewards - rejected_rewards).detach(),
        "logps/chosen": chosen_logps.detach(),
        "logps/rejected": rejected_logps.detach(),
    }


__all__ = [
    "ForwardOutput",
    "LossOutput",
    "PreferenceBatch",
    "PreferenceCollator",
    "PreferenceDataset",
    "PreferenceTrainer",
    "autocast",
    "dpo_metrics",
    "forward_batch",
    "forward_outputs",
    "make_batch",
    "mismatched_inputs",
    "precision",
    "response_logps",
    "response_positions",
    "token_logps",
    "tokenisation_report",
    "tokenization_fingerprint",
    "tokenize_pair",
]
