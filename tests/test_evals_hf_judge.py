"""The ``hf`` judge backend: a local transformers model answering judge requests, log-probs included."""

from __future__ import annotations

import dataclasses
import math
import re
import shutil
from pathlib import Path

import pytest
import torch

from evals import alpaca_eval as ae
from evals.judges import JUDGES, JudgeRequest, make_judge
from evals.judges.hf_local import HFConfig, HFJudge, judge_name

REQUEST = JudgeRequest(
    messages=({"role": "system", "content": "You compare outputs."}, {"role": "user", "content": "Is m or M better?"}),
    max_tokens=6,
    temperature=0.0,
    top_logprobs=5,
    template="test@0",
)


@pytest.fixture(scope="module")
def judge(tiny_model_dir: Path) -> HFJudge:
    made = make_judge({"backend": "hf", "model": str(tiny_model_dir), "device": "cpu"})
    assert isinstance(made, HFJudge)
    return made


def test_registered_and_named_by_model_and_weights(judge: HFJudge, tiny_model_dir: Path) -> None:
    assert "hf" in JUDGES
    assert judge.name == judge_name(HFConfig(model=str(tiny_model_dir)))
    assert judge.name.startswith(f"hf:{tiny_model_dir}@local-")
    assert judge.is_offline is False, "a local model is a model judge, not the offline stand-in"
    assert judge_name(HFConfig(model="org/guard", revision="abc123")) == "hf:org/guard@abc123"


def test_fingerprint_changes_with_the_weights(tiny_model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    before = judge_name(HFConfig(model=str(copy)))
    (copy / "config.json").write_text((copy / "config.json").read_text() + "\n")
    assert judge_name(HFConfig(model=str(copy))) != before


def test_text_and_top_logprobs_have_the_openai_shape(judge: HFJudge) -> None:
    reply = judge.complete(REQUEST)
    assert isinstance(reply.text, str)
    assert isinstance(reply.top_logprobs, list) and len(reply.top_logprobs) == 1, "first generated position only"
    top = reply.top_logprobs[0]
    assert 1 <= len(top) <= 5 and all(isinstance(t, str) and lp <= 0 for t, lp in top.items())
    assert math.log(sum(math.exp(lp) for lp in top.values())) <= 1e-6
    assert reply.raw["completion_tokens"] <= REQUEST.max_tokens and reply.raw["prompt_tokens"] > 0
    # No log-probs when none are asked for.
    assert judge.complete(dataclasses.replace(REQUEST, top_logprobs=None)).top_logprobs is None


def test_logprobs_are_the_models_next_token_distribution(judge: HFJudge) -> None:
    reply = judge.complete(REQUEST)
    ids = judge.tokenizer.apply_chat_template(
        list(REQUEST.messages), add_generation_prompt=True, tokenize=True, return_dict=True
    )["input_ids"]
    with torch.no_grad():
        logits = judge.model(torch.tensor([list(ids)])).logits[0, -1]
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    best = int(logprobs.argmax())
    text = judge.tokenizer.decode([best])
    assert reply.top_logprobs[0][text] >= float(logprobs[best]) - 1e-4
    assert reply.text.startswith(text.strip()) or not text.strip(), "greedy decoding starts with the argmax token"


def test_deterministic_greedy_and_seeded_sampling(judge: HFJudge, tiny_model_dir: Path) -> None:
    assert judge.complete(REQUEST) == judge.complete(REQUEST)
    other = make_judge({"backend": "hf", "model": str(tiny_model_dir), "device": "cpu"})
    assert other.complete(REQUEST) == judge.complete(REQUEST)
    sampled = dataclasses.replace(REQUEST, temperature=1.0, top_logprobs=None, max_tokens=8)
    assert judge.complete(sampled) == judge.complete(sampled)


def test_alpaca_eval_logprob_protocol_works_with_a_local_judge(judge: HFJudge) -> None:
    """AlpacaEval's own annotator and parser on the local judge's log-probs (all 300 tokens, so m/M are present)."""
    annotator = ae.load_annotator()
    annotator = dataclasses.replace(annotator, decoding={**annotator.decoding, "top_logprobs": 300})
    reference = [
        {"instruction": f"Give a tip about {t}.", "output": f"Practise {t} daily.", "generator": "ref", "dataset": "t"}
        for t in ("sleep", "chess")
    ]
    outputs = [{**r, "output": r["output"] + " And rest.", "generator": "model"} for r in reference]
    result, annotations = ae.evaluate(outputs, reference, judge, annotator)
    assert result["n"] == 2 and result["n_unparsed"] == 0
    assert annotations["preference"].between(1, 2).all()
    assert result["judge"] == judge.name and result["judge_is_offline"] is False


def test_config_is_checked(tiny_model_dir: Path) -> None:
    with pytest.raises(ValueError, match=re.escape("hf judge: unknown key(s) ['temperature']; valid keys: ['device'")):
        make_judge({"backend": "hf", "model": str(tiny_model_dir), "temperature": 0})
    with pytest.raises(ValueError, match=re.escape("hf judge: missing key(s) ['model']")):
        make_judge({"backend": "hf"})
    with pytest.raises(ValueError, match="hf judge: seed must be an integer, got float"):
        make_judge({"backend": "hf", "model": str(tiny_model_dir), "seed": 1.5})
    with pytest.raises(ValueError, match="dtype must be one of"):
        make_judge({"backend": "hf", "model": str(tiny_model_dir), "dtype": "int3"})
