"""Judge backend for a local transformers model (a judge model or a safety classifier on one GPU, or CPU).

``complete()`` renders the request's messages with the model's own chat
template (with the generation prompt) and generates ``max_tokens`` new tokens:
greedily at temperature 0, else by sampling at the request's temperature with
a fixed seed, so the same request always gets the same reply. When the request
asks for ``top_logprobs``, the reply carries the top-k next-token log-probs of
the first generated position, computed from the unprocessed logits (before
temperature), in the same ``[{token: logprob}]`` shape an OpenAI-compatible
endpoint returns; so AlpacaEval's log-prob protocol works with a local judge.
Token strings are the tokenizer's decoding of each single token id; two ids
that decode to the same string are merged (their probabilities added).

Config keys: ``model`` (hub id or local directory), ``revision`` (hub commit;
pin it on the cluster), ``dtype`` (``auto`` = the checkpoint's, or
``float32``/``bfloat16``/``float16``), ``device`` (``auto`` = CUDA when
available, else CPU), ``seed`` (for sampling). The judge's name carries the
model and its revision, or, for a local directory, a fingerprint of its files,
so cached replies are never reused across different weights.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.judges.base import Judge, JudgeError, JudgeReply, JudgeRequest
from evals.judges.settings import parse_fields

DTYPES = ("auto", "float32", "bfloat16", "float16")
FINGERPRINT_FULL_BYTES = 64 * 2**20  # local files up to this size are hashed whole, larger ones by name, size, mtime


@dataclass(frozen=True)
class HFConfig:
    """The judge config keys of this backend (see the module docstring)."""

    model: str
    revision: str | None = None
    dtype: str = "auto"
    device: str = "auto"
    seed: int = 0

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> HFConfig:
        parsed = parse_fields(cls, config, "hf")
        if not parsed.model:
            raise ValueError("hf judge: 'model' must name a hub id or a local directory")
        if parsed.dtype not in DTYPES:
            raise ValueError(f"hf judge dtype must be one of {list(DTYPES)}, got {parsed.dtype!r}")
        return parsed


def local_fingerprint(directory: Path) -> str:
    """Short hash of a model directory's files (content of small files; name, size, mtime of large ones)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(str(path.relative_to(directory)).encode())
        if stat.st_size <= FINGERPRINT_FULL_BYTES:
            digest.update(path.read_bytes())
        else:
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:12]


def judge_name(config: HFConfig) -> str:
    """``hf:<model>@<revision>``; a local directory without a revision is named by its fingerprint."""
    if config.revision:
        return f"hf:{config.model}@{config.revision}"
    if Path(config.model).is_dir():
        return f"hf:{config.model}@local-{local_fingerprint(Path(config.model))}"
    return f"hf:{config.model}@unpinned"


class HFJudge(Judge):
    """A causal LM from transformers answering judge requests one at a time."""

    is_offline = False
    concurrency = 1

    def __init__(self, config: HFConfig) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.config = config
        self.name = judge_name(config)
        self._torch = torch
        device = config.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = "auto" if config.dtype == "auto" else getattr(torch, config.dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(config.model, revision=config.revision)
        if self.tokenizer.chat_template is None:
            raise JudgeError(f"judge model {config.model} has no chat template; a judge needs one")
        self.model = AutoModelForCausalLM.from_pretrained(config.model, revision=config.revision, dtype=dtype)
        self.model.to(device).eval()
        self.device = device

    def _token_text(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id], skip_special_tokens=False)

    def _top_logprobs(self, logits: Any, k: int) -> dict[str, float]:
        """Top-k log-probs of one position, keyed by token text (duplicate texts merged)."""
        logprobs = self._torch.log_softmax(logits.float(), dim=-1)
        values, ids = logprobs.topk(min(k, logprobs.shape[-1]))
        top: dict[str, float] = {}
        for value, token_id in zip(values.tolist(), ids.tolist(), strict=True):
            text = self._token_text(token_id)
            top[text] = value if text not in top else float(math.log(math.exp(top[text]) + math.exp(value)))
        return top

    def complete(self, request: JudgeRequest) -> JudgeReply:
        torch = self._torch
        encoded = self.tokenizer.apply_chat_template(
            list(request.messages), add_generation_prompt=True, tokenize=True, return_dict=True
        )
        input_ids = torch.tensor([list(encoded["input_ids"])], device=self.device)
        sampling: dict[str, Any] = {"do_sample": request.temperature > 0}
        if request.temperature > 0:
            sampling["temperature"] = request.temperature
            torch.manual_seed(self.config.seed)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        try:
            with torch.no_grad():
                out = self.model.generate(
                    input_ids=input_ids,
                    attention_mask=torch.ones_like(input_ids),
                    max_new_tokens=request.max_tokens,
                    pad_token_id=pad,
                    return_dict_in_generate=True,
                    output_logits=request.top_logprobs is not None,
                    **sampling,
                )
        except (RuntimeError, ValueError) as exc:  # out of memory, prompt too long for the model, ...
            raise JudgeError(f"judge {self.name} could not generate: {type(exc).__name__}: {exc}") from exc
        new_ids = out.sequences[0, input_ids.shape[1] :].tolist()
        text = self.tokenizer.decode(new_ids, skip_special_tokens=True).strip()
        top = None
        if request.top_logprobs is not None and out.logits:
            top = [self._top_logprobs(out.logits[0][0], request.top_logprobs)]
        finish = "stop" if new_ids and new_ids[-1] == self.tokenizer.eos_token_id else "length"
        raw = {
            "model": self.config.model,
            "revision": self.config.revision,
            "prompt_tokens": int(input_ids.shape[1]),
            "completion_tokens": len(new_ids),
            "finish_reason": finish,
        }
        return JudgeReply(text=text, top_logprobs=top, raw=raw)
