"""AAO trains end to end on the engine: the AW module learns with its own learning rate, is checkpointed and
restored, and a tiny model's reward margin on held-out pairs grows.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback, TrainingArguments

from aao.method import METHOD
from aao.thresholds import ATTRIBUTE, AmbiguityThresholds
from baselines.dpo import weighted_logratios
from suite.engine import PreferenceCollator, PreferenceDataset, PreferenceTrainer, forward_batch, make_batch
from suite.models import build_tiny_model, load_model, save_model, train_tokenizer
from suite.reference import reference_logps
from suite.trainer_utils import trainer_fields
from tests.conftest import TINY_SIZE

TOPICS = [
    "the river", "the garden", "the bridge", "the market", "the tower", "the forest", "the harbour", "the library",
    "the castle", "the valley", "the station", "the village", "the museum", "the island", "the desert", "the lake",
    "the mountain", "the school", "the kitchen", "the stadium", "the meadow", "the bakery", "the farm", "the temple",
]  # fmt: skip


def synthetic_pairs(topics: list[str], prefix: str) -> list[dict]:
    """Chosen and rejected share most tokens (ambiguous content) and differ in a few key words."""
    records = []
    for i, topic in enumerate(topics):
        records.append(
            {
                "id": f"{prefix}-{i}",
                "prompt": [{"role": "user", "content": f"Tell me about {topic}."}],
                "chosen": [{"role": "assistant", "content": f"Sure! Here is a kind and useful note on {topic}."}],
                "rejected": [{"role": "assistant", "content": f"Sure! Here is a rude and useless note on {topic}."}],
            }
        )
    return records


def tiny_setup(tmp_path: Path):
    train_records = synthetic_pairs(TOPICS[:16], "train")
    held_out = synthetic_pairs(TOPICS[16:], "held")
    texts = [m["content"] for r in train_records + held_out for k in ("prompt", "chosen", "rejected") for m in r[k]]
    tokenizer = train_tokenizer(texts * 10, vocab_size=200)
    model = build_tiny_model("llama", tokenizer, TINY_SIZE, seed=0)
    reference = load_model_copy(model, tokenizer, tmp_path / "start")

    def dataset(records):
        plain = PreferenceDataset(records, tokenizer, max_length=64, max_prompt_length=32)
        stored = reference_logps(reference, plain, tokenizer.pad_token_id, batch_size=8)
        return PreferenceDataset(records, tokenizer, max_length=64, max_prompt_length=32, reference=stored)

    return tokenizer, model, dataset(train_records), dataset(held_out)


def load_model_copy(model, tokenizer, path: Path):
    save_model(model, tokenizer, path)
    return load_model(path)


@torch.no_grad()
def held_out_margin(model, dataset, pad_token_id: int, beta: float) -> float:
    """Mean implicit DPO reward margin beta * (log-ratio chosen - log-ratio rejected), unweighted."""
    model.eval()
    inputs = PreferenceCollator(pad_token_id)([dataset[i] for i in range(len(dataset))])
    logps, mask, _ = forward_batch(model, inputs)
    chosen, rejected = weighted_logratios(make_batch(logps, mask, inputs["ref_logps"], None))
    return (beta * (chosen - rejected)).mean().item()


def make_trainer(model, tokenizer, train_set, out: Path, params: dict, **training) -> PreferenceTrainer:
    block = {
        "learning_rate": 1e-3,
        "max_steps": 30,
        "per_device_train_batch_size": 4,
        "lr_scheduler_type": "constant",
        "seed": 0,
        "logging_steps": 10,
        "save_steps": 1000,
        **training,
    }
    return PreferenceTrainer(
        model=model,
        args=TrainingArguments(**trainer_fields(block, out)),
        train_dataset=train_set,
        data_collator=PreferenceCollator(tokenizer.pad_token_id),
        method=METHOD,
        method_params={**METHOD.defaults, **params},
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("aao-train")
    random.seed(0)
    tokenizer, model, train_set, held_out = tiny_setup(tmp_path)
    beta = 0.1
    before = held_out_margin(model, held_out, tokenizer.pad_token_id, beta)
    initial_aw = None
    trainer = make_trainer(model, tokenizer, train_set, tmp_path / "ckpt", {"beta": beta}, save_steps=15)
    initial_aw = {k: v.clone() for k, v in getattr(model, ATTRIBUTE).state_dict().items()}
    trainer.train()
    after = held_out_margin(model, held_out, tokenizer.pad_token_id, beta)
    return {
        "trainer": trainer,
        "model": model,
        "tokenizer": tokenizer,
        "train_set": train_set,
        "before": before,
        "after": after,
        "initial_aw": initial_aw,
        "dir": tmp_path,
    }


def test_held_out_reward_margin_grows(trained):
    assert trained["before"] == pytest.approx(0.0, abs=1e-6)  # policy = reference at the start
    assert trained["after"] > trained["before"] + 0.5, (trained["before"], trained["after"])
    history = trained["trainer"].state.log_history
    logged = [h for h in history if "aao/loss_pref" in h]
    assert logged and all(k in logged[-1] for k in ("aao/threshold_a", "aao/chosen_share_ambiguous"))
    assert logged[-1]["rewards/margins"] > logged[0]["rewards/margins"]


def test_aw_module_trains_with_its_own_learning_rate(trained):
    trainer, model = trained["trainer"], trained["model"]
    module = getattr(model, ATTRIBUTE)
    aw_ids = {id(p) for p in module.parameters()}
    groups = [g for g in trainer.optimizer.param_groups if any(id(p) in aw_ids for p in g["params"])]
    assert len(groups) == 1 and {id(p) for p in groups[0]["params"]} == aw_ids
    assert groups[0]["initial_lr"] == pytest.approx(1e-3) and groups[0]["weight_decay"] == 0.0
    others = [g for g in trainer.optimizer.param_groups if g is not groups[0]]
    assert sum(len(g["params"]) for g in others) == len(list(model.parameters())) - len(aw_ids)
    changed = [not torch.equal(v, trained["initial_aw"][k]) for k, v in module.state_dict().items()]
    assert all(changed), "every AW parameter should have moved"


class CaptureAtTrainBegin(TrainerCallback):
    """Copies the AW module's state when training (re)starts: after a checkpoint is loaded, before any step."""

    def __init__(self) -> None:
        self.state: dict[str, torch.Tensor] = {}

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.state = {k: v.detach().clone() for k, v in getattr(model, ATTRIBUTE).state_dict().items()}


def test_aw_module_is_checkpointed_and_restored(trained):
    module = getattr(trained["model"], ATTRIBUTE)
    checkpoint = trained["dir"] / "ckpt" / "checkpoint-30"
    stored = load_file(checkpoint / "model.safetensors")
    for key, value in module.state_dict().items():
        torch.testing.assert_close(stored[f"{ATTRIBUTE}.{key}"], value)
    # a fresh policy with a fresh AW module resumes from the checkpoint: the AW state comes back
    tokenizer = trained["tokenizer"]
    fresh = build_tiny_model("llama", tokenizer, TINY_SIZE, seed=1)
    trainer = make_trainer(fresh, tokenizer, trained["train_set"], trained["dir"] / "resumed", {"beta": 0.1})
    assert not torch.equal(getattr(fresh, ATTRIBUTE).out.weight, module.out.weight)
    capture = CaptureAtTrainBegin()
    trainer.add_callback(capture)
    trainer.train(resume_from_checkpoint=str(checkpoint))
    for key, value in module.state_dict().items():
        torch.testing.assert_close(capture.state[key], value)


def test_final_model_with_the_aw_module_loads_as_a_plain_causal_lm(trained, tmp_path):
    save_model(trained["model"], trained["tokenizer"], tmp_path / "final")
    assert any(k.startswith(ATTRIBUTE) for k in load_file(tmp_path / "final" / "model.safetensors"))
    loaded = load_model(tmp_path / "final")
    assert not isinstance(getattr(loaded, ATTRIBUTE, None), AmbiguityThresholds)
    for key, value in loaded.state_dict().items():
        torch.testing.assert_close(value, trained["model"].state_dict()[key])


def test_aw_module_init_follows_the_training_seed(trained, tmp_path):
    """The AW module is built after seeding with the TrainingArguments' seed: same args, same module,
    whatever the global random state was before."""
    tokenizer, train_set = trained["tokenizer"], trained["train_set"]

    def aw_state(seed: int, noise: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(noise)
        torch.rand(noise)  # a different global random state each time
        model = build_tiny_model("llama", tokenizer, TINY_SIZE, seed=0)
        make_trainer(model, tokenizer, train_set, tmp_path / f"seed{seed}-{noise}", {"beta": 0.1}, seed=seed)
        return {k: v.detach().clone() for k, v in getattr(model, ATTRIBUTE).state_dict().items()}

    first, second = aw_state(0, 1), aw_state(0, 7)
    assert first.keys() == second.keys()
    for key, value in first.items():
        assert torch.equal(value, second[key]), key
    assert not torch.equal(aw_state(1, 1)["hidden.weight"], first["hidden.weight"])
