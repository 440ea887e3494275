"""RTO training: PPO on the variant's preference prompts with dense DPO token rewards (baselines/rto/__init__.py).

Each PPO iteration samples one response per prompt from the current policy
(temperature 1 over the full vocabulary, so the sampling distribution is the
policy whose log-probs PPO uses), scores it token by token
(:func:`baselines.rto.token_rewards`: the clipped DPO log-ratio, the KL
penalty, the reward model's score at the last token), estimates advantages
with the critic (GAE) and takes ``ppo_epochs`` passes of clipped-surrogate and
clipped-value updates (:mod:`baselines.rto.ppo`). Why the PPO is the suite's own
and not a library's is written in :mod:`baselines.rto.ppo`.

Models: the actor starts from the variant's start model, which is also the
reference pi_ref (the DPO model's reference too); the DPO model is the DPO run
of the same variant; the reward model is any sequence-classification model
:mod:`suite.reward` loads; the critic is a transformer with a scalar head on
every position, initialised from the reward model (``critic_init:
reward_model``, which needs the policy's vocabulary) or from the start model
with a fresh head (``critic_init: policy``). Actor and critic have their own
AdamW at ``actor_lr`` / ``critic_lr`` (constant; the training block's
``learning_rate`` is not used). Every model but the two trained ones is frozen.

Prompts: the data's prompts in a seeded order per epoch, ``rollout_batch_size``
per process and iteration; the number of iterations is ``max_steps`` if set,
else ``num_train_epochs`` passes over the prompts. Iteration i seeds its own
sampling, so a run resumed from ``<checkpoints>/run-<fingerprint>/state.pt``
(written every ``save_steps`` iterations; single process or DDP; the
fingerprint covers every input and setting, see :mod:`suite.trainer_utils`)
continues where it stopped.
Sharded (FSDP) runs are not checkpointed mid-run.

The log history has one entry per iteration: ``loss`` (policy + value loss),
``loss/policy``, ``loss/value``, ``clipfrac``, ``approx_kl``, and means over
the rollout of ``reward/score``, ``reward/dense``, ``reward/kl`` (summed per
response), ``reward/return`` (the undiscounted sum of token rewards) and
``response_length``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, set_seed
from torch import Tensor, nn
from transformers import AutoModelForSequenceClassification, PreTrainedModel, PreTrainedTokenizerBase

from baselines.rto import METHOD, token_rewards
from baselines.rto.ppo import PPOConfig, Rollout, finish_rollout, ppo_update
from suite.engine import IGNORE, forward_outputs, tokenization_fingerprint
from suite.io import atomic_dir, atomic_path, read_jsonl
from suite.models import load_model, load_tokenizer, resolve
from suite.provenance import identity, write_stamp
from suite.reward import load_reward_model, reward_source
from suite.trainer_utils import init_processes, project_modules, run_directory, run_provenance

log = logging.getLogger(__name__)
STATE = "state.pt"
PPO_KEYS = ("gamma", "lam", "cliprange", "cliprange_value", "ppo_epochs", "mini_batch_size", "max_grad_norm")


# ---------------------------------------------------------------- the critic


class ValueModel(nn.Module):
    """A transformer backbone with a scalar head: one value per position, (B, L) float32."""

    def __init__(self, backbone: PreTrainedModel, head: nn.Linear) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    @classmethod
    def load(cls, source: Mapping[str, Any], dtype: str = "float32") -> ValueModel:
        """From a sequence-classification checkpoint (its head kept) or a causal LM (a fresh head)."""
        model = AutoModelForSequenceClassification.from_pretrained(
            source["name_or_path"],
            revision=source.get("revision"),
            trust_remote_code=bool(source.get("trust_remote_code", False)),
            num_labels=1,
            dtype=getattr(torch, dtype),
        )
        backbone = getattr(model, model.base_model_prefix)
        head = getattr(model, "score", None)
        if not isinstance(head, nn.Linear) or head.out_features != 1:
            hidden = backbone.config.get_text_config().hidden_size
            head = nn.Linear(hidden, 1, bias=False, dtype=getattr(torch, dtype))
            nn.init.zeros_(head.weight)
        return cls(backbone, head)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        return self.head(hidden).squeeze(-1).float()


# ---------------------------------------------------------------- prompts, sampling, packing


def prompt_ids(tokenizer: PreTrainedTokenizerBase, messages: Sequence[Mapping[str, str]], max_prompt_length: int):
    """The templated prompt, ending with the assistant's turn opening, cut to its last ``max_prompt_length`` tokens."""
    ids = tokenizer.apply_chat_template(list(messages), tokenize=True, add_generation_prompt=True, return_dict=True)
    return list(ids["input_ids"])[-max_prompt_length:]


def eos_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids = configured if isinstance(configured, list) else [configured]
    return sorted({i for i in [*ids, tokenizer.eos_token_id] if i is not None})


@torch.no_grad()
def sample_responses(
    model: PreTrainedModel,
    prompts: Sequence[list[int]],
    pad_token_id: int,
    stop_ids: Sequence[int],
    max_new_tokens: int,
    synced_gpus: bool = False,
) -> list[list[int]]:
    """One sampled response per prompt (temperature 1, no top-k/top-p), cut after its first stop token."""
    device = next(model.parameters()).device
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for row, ids in enumerate(prompts):  # left padding for generation
        input_ids[row, width - len(ids) :] = torch.tensor(ids)
        attention_mask[row, width - len(ids) :] = 1
    out = model.generate(
        input_ids=input_ids.to(device),
        attention_mask=attention_mask.to(device),
        do_sample=True,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        max_new_tokens=max_new_tokens,
        min_new_tokens=1,
        pad_token_id=pad_token_id,
        eos_token_id=list(stop_ids),
        synced_gpus=synced_gpus,
    )
    responses = []
    for row in out[:, width:].tolist():
        stop = next((i for i, token in enumerate(row) if token in stop_ids), None)
        responses.append(row if stop is None else row[: stop + 1])
    return responses


def pack(prompts: Sequence[list[int]], responses: Sequence[list[int]], pad_token_id: int) -> dict[str, Tensor]:
    """Right-padded prompt+response sequences with labels on the response only (the engine's layout)."""
    sequences = [p + r for p, r in zip(prompts, responses, strict=True)]
    length = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), length), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    labels = torch.full_like(input_ids, IGNORE)
    for row, (prompt, seq) in enumerate(zip(prompts, sequences, strict=True)):
        input_ids[row, : len(seq)] = torch.tensor(seq)
        attention_mask[row, : len(seq)] = 1
        labels[row, len(prompt) : len(seq)] = torch.tensor(seq[len(prompt) :])
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def _trim(inputs: Mapping[str, Tensor], idx: Tensor) -> dict[str, Tensor]:
    """Rows ``idx`` of the packed inputs, cut to their longest sequence (no forward over all-padding columns)."""
    sub = {key: value[idx] for key, value in inputs.items()}
    width = int(sub["attention_mask"].sum(1).max())
    return {key: value[:, :width] for key, value in sub.items()}


def _pad_to(x: Tensor, width: int) -> Tensor:
    return torch.nn.functional.pad(x, (0, width - x.shape[1]))


def response_logps(model: nn.Module, inputs: Mapping[str, Tensor], idx: Tensor, width: int) -> tuple[Tensor, Tensor]:
    """Log-probs of the response tokens of rows ``idx`` and their mask, (len(idx), width) at the shifted positions."""
    out = forward_outputs(model, _trim(inputs, idx))
    return _pad_to(out.logps, width), _pad_to(out.mask, width)


def state_values(critic: nn.Module, inputs: Mapping[str, Tensor], idx: Tensor, width: int) -> Tensor:
    """V of the state before each token (the value at the predicting position), aligned like :func:`response_logps`."""
    sub = _trim(inputs, idx)
    values = critic(sub["input_ids"], sub["attention_mask"])[:, :-1]
    return _pad_to(values, width)


# ---------------------------------------------------------------- the loop


class RTOTrainer:
    """The models, optimizers and prompt order of one RTO run; :meth:`train` runs it."""

    def __init__(
        self,
        params: Mapping[str, Any],
        model_dir: Path,
        dpo_dir: Path,
        reward_dir: Path,
        data: Path,
        training: Mapping[str, Any],
    ) -> None:
        self.params = METHOD.resolve_params(params)
        self.training = dict(training)
        self.seed = int(training.get("seed", 42))
        cuda = bool(training.get("cuda", False))
        self.accelerator = Accelerator(cpu=not cuda, mixed_precision="bf16" if training.get("bf16") else "no")
        device, dtype = self.accelerator.device, training.get("dtype", "float32")
        set_seed(self.seed)

        self.tokenizer = load_tokenizer(model_dir)
        max_length, max_prompt = training.get("max_length", 2048), training.get("max_prompt_length", 1800)
        fingerprint = tokenization_fingerprint(self.tokenizer, max_length, max_prompt)
        if tokenization_fingerprint(load_tokenizer(dpo_dir), max_length, max_prompt) != fingerprint:
            raise ValueError(f"rto: the DPO model {dpo_dir} tokenises unlike the start model {model_dir}")
        records = read_jsonl(data)
        self.prompts = [(r["id"], r["prompt"], prompt_ids(self.tokenizer, r["prompt"], max_prompt)) for r in records]
        if not self.prompts:
            raise ValueError(f"rto: {data} holds no prompts")

        self.reward = load_reward_model(reward_dir, dtype=dtype, device=str(device))
        from_reward = self.params["critic_init"] == "reward_model"
        critic_source = reward_source(reward_dir) if from_reward else resolve(model_dir)
        if from_reward and self.reward.tokenizer.get_vocab() != self.tokenizer.get_vocab():
            raise ValueError("rto: the reward model's vocabulary differs from the policy's: set critic_init: policy")
        actor = load_model(model_dir, dtype)
        critic = ValueModel.load(critic_source, dtype)
        if training.get("gradient_checkpointing", False):
            actor.gradient_checkpointing_enable()
            critic.backbone.gradient_checkpointing_enable()
        self.ref = load_model(model_dir, dtype).eval().requires_grad_(False).to(device)
        self.dpo = load_model(dpo_dir, dtype).eval().requires_grad_(False).to(device)
        decay = float(training.get("weight_decay", 0.0))
        actor_opt = torch.optim.AdamW(actor.parameters(), lr=self.params["actor_lr"], weight_decay=decay)
        critic_opt = torch.optim.AdamW(critic.parameters(), lr=self.params["critic_lr"], weight_decay=decay)
        self.actor, self.critic, self.actor_opt, self.critic_opt = self.accelerator.prepare(
            actor, critic, actor_opt, critic_opt
        )
        self.stop_ids = eos_ids(self.accelerator.unwrap_model(self.actor), self.tokenizer)
        micro = int(training.get("per_device_train_batch_size", 8))
        self.ppo = PPOConfig(
            **{key: self.params[key] for key in PPO_KEYS},
            micro_batch_size=micro,
            whiten_advantages=bool(self.params["whiten_advantages"]),
        )
        global_batch = self.params["rollout_batch_size"] * self.accelerator.num_processes
        self.per_epoch = max(1, math.ceil(len(self.prompts) / global_batch))
        max_steps = int(training.get("max_steps", -1))
        epochs = float(training.get("num_train_epochs", 1))
        self.iterations = max_steps if max_steps > 0 else max(1, math.ceil(epochs * self.per_epoch))

    # ------------------------------------------------------------ rollouts

    def prompt_indices(self, iteration: int) -> list[int]:
        """This process's prompts at ``iteration``: a seeded permutation per epoch, read cyclically."""
        epoch, chunk = divmod(iteration, self.per_epoch)
        order = torch.randperm(len(self.prompts), generator=torch.Generator().manual_seed(self.seed + epoch))
        size = self.params["rollout_batch_size"]
        start = (chunk * self.accelerator.num_processes + self.accelerator.process_index) * size
        return [int(order[(start + k) % len(order)]) for k in range(size)]

    @torch.no_grad()
    def rollout(self, iteration: int) -> tuple[Rollout, dict[str, Tensor], dict[str, Tensor]]:
        indices = self.prompt_indices(iteration)
        set_seed(self.seed + 7919 * (iteration + 1), device_specific=True)
        self.actor.eval()
        self.critic.eval()
        prompts = [self.prompts[i][2] for i in indices]
        synced = self.accelerator.distributed_type == DistributedType.FSDP and self.accelerator.num_processes > 1
        responses = sample_responses(
            self.accelerator.unwrap_model(self.actor),
            prompts,
            self.tokenizer.pad_token_id,
            self.stop_ids,
            int(self.params["max_new_tokens"]),
            synced_gpus=synced,
        )
        device = self.accelerator.device
        inputs = {key: value.to(device) for key, value in pack(prompts, responses, self.tokenizer.pad_token_id).items()}
        width = inputs["input_ids"].shape[1] - 1
        parts: dict[str, list[Tensor]] = {"policy": [], "ref": [], "dpo": [], "mask": [], "values": []}
        for start in range(0, len(prompts), self.ppo.micro_batch_size):
            idx = torch.arange(start, min(start + self.ppo.micro_batch_size, len(prompts)), device=device)
            logps, mask = response_logps(self.actor, inputs, idx, width)
            parts["policy"].append(logps)
            parts["mask"].append(mask)
            parts["ref"].append(response_logps(self.ref, inputs, idx, width)[0])
            parts["dpo"].append(response_logps(self.dpo, inputs, idx, width)[0])
            parts["values"].append(state_values(self.critic, inputs, idx, width))
        cat = {key: torch.cat(value) for key, value in parts.items()}
        texts = self.tokenizer.batch_decode(responses, skip_special_tokens=True)
        conversations = [
            [*self.prompts[i][1], {"role": "assistant", "content": text}]
            for i, text in zip(indices, texts, strict=True)
        ]
        scores = torch.tensor(self.reward.score(conversations, int(self.params["reward_batch_size"])), device=device)
        rewards, sums = token_rewards(
            cat["policy"],
            cat["ref"],
            cat["dpo"],
            scores,
            cat["mask"],
            self.params["beta_1"],
            self.params["reward_clip"],
            self.params["kl_coef"],
            self.params["score_coef"],
        )
        sums["length"] = cat["mask"].sum(1)
        rollout = finish_rollout(Rollout(cat["policy"], cat["values"], rewards, cat["mask"]), self.ppo)
        return rollout, inputs, sums

    def update(self, rollout: Rollout, inputs: Mapping[str, Tensor], iteration: int) -> dict[str, float]:
        self.actor.train()
        self.critic.train()
        width = rollout.mask.shape[1]

        def evaluate(idx: Tensor) -> tuple[Tensor, Tensor]:
            return response_logps(self.actor, inputs, idx, width)[0], state_values(self.critic, inputs, idx, width)

        def clip_grad(max_norm: float) -> None:
            self.accelerator.clip_grad_norm_(self.actor.parameters(), max_norm)
            self.accelerator.clip_grad_norm_(self.critic.parameters(), max_norm)

        return ppo_update(
            rollout,
            evaluate,
            [self.actor_opt, self.critic_opt],
            self.ppo,
            generator=torch.Generator().manual_seed(self.seed + iteration),
            backward=self.accelerator.backward,
            clip_grad=clip_grad,
        )

    # ------------------------------------------------------------ checkpoints

    def _checkpointable(self) -> bool:
        return self.accelerator.distributed_type in (
            DistributedType.NO,
            DistributedType.MULTI_GPU,
            DistributedType.MULTI_CPU,
        )

    def save_state(self, checkpoints: Path, iteration: int, history: list[dict]) -> None:
        if not self._checkpointable():
            return
        if self.accelerator.is_main_process:
            state = {
                "iteration": iteration,
                "actor": self.accelerator.unwrap_model(self.actor).state_dict(),
                "critic": self.accelerator.unwrap_model(self.critic).state_dict(),
                "actor_opt": self.actor_opt.state_dict(),
                "critic_opt": self.critic_opt.state_dict(),
                "history": history,
            }
            with atomic_path(checkpoints / STATE) as tmp:
                torch.save(state, tmp)
        self.accelerator.wait_for_everyone()

    def load_state(self, checkpoints: Path) -> tuple[int, list[dict]]:
        path = checkpoints / STATE
        if not path.exists() or not self._checkpointable():
            return 0, []
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.accelerator.unwrap_model(self.actor).load_state_dict(state["actor"])
        self.accelerator.unwrap_model(self.critic).load_state_dict(state["critic"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        log.info("resumed from %s after iteration %d", path, state["iteration"])
        return state["iteration"], state["history"]

    # ------------------------------------------------------------ run

    def _mean(self, value: Tensor) -> float:
        return self.accelerator.gather_for_metrics(value.detach().float().reshape(-1)).mean().item()

    def train(self, checkpoints: Path, out: Path, provenance: Mapping[str, Any]) -> list[dict]:
        start, history = self.load_state(checkpoints)
        save_steps = int(self.training.get("save_steps", 0) or 0)
        for iteration in range(start, self.iterations):
            rollout, inputs, sums = self.rollout(iteration)
            stats = self.update(rollout, inputs, iteration)
            entry = {
                "step": iteration + 1,
                "epoch": (iteration + 1) / self.per_epoch,
                "loss": stats["loss/policy"] + stats["loss/value"],
                **stats,
                "reward/score": self._mean(sums["score"]),
                "reward/dense": self._mean(sums["dense"]),
                "reward/kl": self._mean(sums["kl"]),
                "reward/return": self._mean(sums["return"]),
                "response_length": self._mean(sums["length"]),
            }
            history.append(entry)
            if self.accelerator.is_main_process:
                log.info(json.dumps(entry))
            if save_steps and (iteration + 1) % save_steps == 0 and iteration + 1 < self.iterations:
                self.save_state(checkpoints, iteration + 1, history)
        self.save_model(out, provenance)
        return history

    def save_model(self, out: Path, provenance: Mapping[str, Any]) -> None:
        """The trained policy and the tokenizer, stamped and published atomically (as the other trainers do)."""
        self.accelerator.wait_for_everyone()
        state = self.accelerator.get_state_dict(self.actor)
        if self.accelerator.is_main_process:
            with atomic_dir(out) as tmp:
                self.accelerator.unwrap_model(self.actor).save_pretrained(tmp, state_dict=state)
                self.tokenizer.save_pretrained(tmp)
                write_stamp(tmp, provenance)
        self.accelerator.wait_for_everyone()


def run_rto(
    params: Mapping[str, Any],
    model_dir: Path,
    dpo_dir: Path,
    reward_dir: Path,
    data: Path,
    training: Mapping[str, Any],
    checkpoints: Path,
    out: Path,
) -> list[dict]:
    """Train the RTO policy from ``model_dir``; returns the log history (one entry per PPO iteration)."""
    init_processes(training)
    provenance = run_provenance(
        "rto",
        [*project_modules("baselines"), "baselines.rto.trainer", "suite.engine"],
        training,
        params=METHOD.resolve_params(params),
        model=identity(model_dir),
        dpo=identity(dpo_dir),
        reward=identity(reward_dir),
        data=identity(data),
    )
    trainer = RTOTrainer(params, model_dir, dpo_dir, reward_dir, data, training)
    return trainer.train(run_directory(checkpoints, provenance), out, provenance)
