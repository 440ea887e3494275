"""RTO: the PPO core on toy problems with a known optimum, RTO's token reward by hand, PPO on a tiny language
model (DPO model + reward model first, as in the workflow), and the DAG edges of both new baselines."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch

from baselines.rto import token_rewards
from baselines.rto.ppo import (
    PPOConfig,
    Rollout,
    finish_rollout,
    gae,
    masked_whiten,
    policy_loss,
    ppo_update,
    value_loss,
)
from baselines.rto.trainer import pack, run_rto
from suite.methods import get_method
from suite.reward import train_reward_model
from suite.train import run_training
from tests.toy_preferences import TRAINING, prepare_toy_run, toy_pairs
from tests.workflow_helpers import clean_checkout, job_counts, snakemake

pytestmark = pytest.mark.usefixtures("single_thread")


# ---------------------------------------------------------------- the token reward, by hand


def test_token_reward_matches_the_formula():
    mask = torch.tensor([[0, 1, 1, 1, 0], [0, 0, 1, 1, 0]], dtype=torch.float32)  # prompt, response, padding
    ref = torch.tensor([[0.0, -1.0, -2.0, -1.0, 0.0], [0.0, 0.0, -1.0, -1.0, 0.0]])
    dpo = torch.tensor([[0.0, -0.5, -3.0, -0.9, 0.0], [0.0, 0.0, -1.0, -1.2, 0.0]])
    policy = torch.tensor([[0.0, -0.8, -2.5, -1.0, 0.0], [0.0, 0.0, -0.5, -2.0, 0.0]])
    scores = torch.tensor([2.0, -1.0])
    rewards, parts = token_rewards(policy, ref, dpo, scores, mask, beta_1=0.05, reward_clip=0.05, kl_coef=0.01)
    # row 0: beta_1 * (dpo - ref) = [0.025 (inside the clip), -0.05 (clipped from -0.05), 0.005]; last token + 2.0
    # row 1: [0 , -0.01];                                                                     last token - 1.0
    expected = torch.tensor(
        [
            [0.0, 0.025 - 0.01 * 0.2, -0.05 - 0.01 * -0.5, 0.005 - 0.0 + 2.0, 0.0],
            [0.0, 0.0, 0.0 - 0.01 * 0.5, -0.01 - 0.01 * -1.0 - 1.0, 0.0],
        ]
    )
    torch.testing.assert_close(rewards, expected)
    # the clip is active where |beta_1 * (dpo - ref)| > 0.05
    big = token_rewards(ref + 4.0, ref, ref + 4.0, torch.zeros(2), mask, 0.05, 0.05, 0.0)[0]
    torch.testing.assert_close(big, 0.05 * mask)
    torch.testing.assert_close(parts["score"], scores)
    torch.testing.assert_close(parts["return"], expected.sum(1))


def test_gae_and_losses_by_hand():
    rewards = torch.tensor([[0.0, 1.0, 0.0, 2.0, 0.0]])
    values = torch.tensor([[9.0, 0.5, 0.2, 0.1, 9.0]])  # off-mask values never leak in
    mask = torch.tensor([[0.0, 1.0, 1.0, 1.0, 0.0]])
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    torch.testing.assert_close(ret, torch.tensor([[0.0, 3.0, 2.0, 2.0, 0.0]]))  # rewards to go
    torch.testing.assert_close(adv, ret - values * mask)
    adv0, _ = gae(rewards, values, mask, gamma=0.9, lam=0.0)  # one-step TD errors
    torch.testing.assert_close(adv0, torch.tensor([[0.0, 1.0 + 0.9 * 0.2 - 0.5, 0.9 * 0.1 - 0.2, 2.0 - 0.1, 0.0]]))
    white = masked_whiten(adv, mask)
    assert white[mask.bool()].mean().abs() < 1e-6 and (white[~mask.bool()] == 0).all()

    old = torch.zeros(1, 3)
    advantages = torch.tensor([[1.0, -1.0, 1.0]])
    new = torch.log(torch.tensor([[1.5, 1.5, 0.5]]))  # ratios 1.5 (clipped to 1.2 for A > 0), 1.5, 0.5
    loss, stats = policy_loss(new, old, advantages, torch.ones(1, 3), cliprange=0.2)
    assert loss.item() == pytest.approx(-1.2 + 1.5 - 0.5)
    assert stats["clipfrac"].item() == pytest.approx(1.0)
    v_loss = value_loss(torch.tensor([[1.0]]), torch.tensor([[0.0]]), torch.tensor([[1.0]]), torch.ones(1, 1), 0.2)
    assert v_loss.item() == pytest.approx(0.5 * 0.8**2)  # the clipped value 0.2 is further from the return


# ---------------------------------------------------------------- the PPO core on toy problems


def test_ppo_reaches_the_kl_regularised_optimum_of_a_bandit():
    """One token, four actions, RTO's reward: the optimum is pi* = pi_ref exp(r / kl) / Z, worth kl log Z."""
    torch.manual_seed(0)
    ref = torch.full((4,), 0.25).log()
    dpo = ref + torch.tensor([0.8, 0.1, -0.3, -1.0])
    score = torch.tensor([0.0, 0.6, 0.2, -0.4])
    beta_1, clip, kl = 1.0, 0.5, 0.5
    r = torch.clamp(beta_1 * (dpo - ref), -clip, clip) + score
    optimum = torch.softmax(ref + r / kl, 0)
    best = kl * torch.logsumexp(ref + r / kl, 0)

    theta = torch.zeros(4, requires_grad=True)
    value = torch.zeros(1, requires_grad=True)
    optimizers = [torch.optim.Adam([theta], lr=0.05), torch.optim.Adam([value], lr=0.1)]
    config = PPOConfig(ppo_epochs=4, mini_batch_size=16, micro_batch_size=8)
    generator = torch.Generator().manual_seed(0)

    def objective() -> float:
        p = torch.softmax(theta.detach(), 0)
        return float((p * r).sum() - kl * (p * (p.log() - ref)).sum())

    start = objective()
    for _ in range(120):
        with torch.no_grad():
            logp = torch.log_softmax(theta, 0)
            actions = torch.multinomial(logp.exp(), 64, replacement=True, generator=generator)
            mask = torch.ones(64, 1)
            rewards, _ = token_rewards(
                logp[actions, None], ref[actions, None], dpo[actions, None], score[actions], mask, beta_1, clip, kl
            )
            rollout = finish_rollout(Rollout(logp[actions, None], value.expand(64, 1).clone(), rewards, mask), config)

        def evaluate(idx, actions=actions):
            return torch.log_softmax(theta, 0)[actions[idx], None], value.expand(len(idx), 1)

        ppo_update(rollout, evaluate, optimizers, config, generator=generator)
    p = torch.softmax(theta.detach(), 0)
    assert objective() > start + 0.2
    assert objective() == pytest.approx(float(best), abs=0.02)
    assert 0.5 * (p - optimum).abs().sum() < 0.12  # total variation to pi*


def test_ppo_learns_a_delayed_reward_in_a_token_mdp():
    """Three tokens from {0, 1, 2}; the score (matches with a target sequence) comes only at the last token:
    the optimum is the target itself, worth 3. GAE has to carry the credit back."""
    torch.manual_seed(0)
    horizon, vocab, target = 3, 3, torch.tensor([2, 0, 1])
    theta = torch.zeros(horizon, vocab + 1, vocab, requires_grad=True)  # logits by (position, previous token)
    table = torch.zeros(horizon, vocab + 1, requires_grad=True)  # values by (position, previous token)
    optimizers = [torch.optim.Adam([theta], lr=0.05), torch.optim.Adam([table], lr=0.1)]
    config = PPOConfig(ppo_epochs=4, mini_batch_size=16, micro_batch_size=16)
    generator = torch.Generator().manual_seed(0)
    steps = torch.arange(horizon).expand(64, horizon)
    uniform = torch.full((64, horizon), -math.log(vocab))

    def expected_score() -> float:
        total = 0.0
        with torch.no_grad():
            for seq in itertools.product(range(vocab), repeat=horizon):
                prev, logp = vocab, 0.0
                for t, a in enumerate(seq):
                    logp, prev = logp + torch.log_softmax(theta[t, prev], 0)[a], a
                total += math.exp(logp) * sum(int(a == b) for a, b in zip(seq, target.tolist(), strict=True))
        return total

    start = expected_score()
    for _ in range(100):
        with torch.no_grad():
            actions = torch.zeros(64, horizon, dtype=torch.long)
            previous = torch.full((64, horizon), vocab)
            logps = torch.zeros(64, horizon)
            prev = torch.full((64,), vocab)
            for t in range(horizon):
                logp = torch.log_softmax(theta[t, prev], -1)
                a = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(1)
                actions[:, t], previous[:, t], logps[:, t], prev = a, prev, logp.gather(1, a[:, None]).squeeze(1), a
            score = (actions == target).sum(1).float()
            mask = torch.ones(64, horizon)
            rewards, _ = token_rewards(logps, uniform, uniform, score, mask, 0.05, 0.05, 0.01)  # dpo = ref: no dense
            rollout = finish_rollout(Rollout(logps, table[steps, previous].clone(), rewards, mask), config)

        def evaluate(idx, actions=actions, previous=previous):
            logp = torch.log_softmax(theta[steps[idx], previous[idx]], -1)
            return logp.gather(2, actions[idx, :, None]).squeeze(2), table[steps[idx], previous[idx]]

        ppo_update(rollout, evaluate, optimizers, config, generator=generator)
    assert start == pytest.approx(1.0)
    assert expected_score() > 2.9


# ---------------------------------------------------------------- RTO on a tiny language model


REWARD_TRAINING = {
    "learning_rate": 1e-2,
    "max_steps": 12,
    "per_device_train_batch_size": 8,
    "max_length": 128,
    "logging_steps": 4,
    "save_steps": 100,
    "warmup_ratio": 0.0,
}
RTO = {
    "actor_lr": 1e-2,
    "critic_lr": 1e-3,
    "rollout_batch_size": 8,
    "mini_batch_size": 4,
    "ppo_epochs": 4,
    "max_new_tokens": 16,
}


def pairs() -> list[dict]:
    return toy_pairs("rto")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The start model, its DPO model and a reward model, as the workflow's rules make them."""
    root = tmp_path_factory.mktemp("rto")
    records = pairs()
    prepare_toy_run(root, records, TRAINING)
    run_training("dpo", {"beta": 0.1}, root / "start", root / "data.jsonl", root / "reference.pt", TRAINING,
                 root / "checkpoints" / "dpo", root / "dpo")  # fmt: skip
    train_reward_model(root / "start", root / "data.jsonl", REWARD_TRAINING, root / "checkpoints" / "rm", root / "rm")
    return root


def test_rto_trains_a_tiny_model_and_its_returns_improve(models: Path):
    root = models
    history = run_rto(RTO, root / "start", root / "dpo", root / "rm", root / "data.jsonl",
                      {**TRAINING, "max_steps": 24}, root / "checkpoints" / "rto", root / "rto")  # fmt: skip
    assert [h["step"] for h in history] == list(range(1, 25))
    for key in ("loss", "loss/policy", "loss/value", "reward/return", "reward/score", "reward/kl"):
        assert all(math.isfinite(h[key]) for h in history), key
    returns = [h["reward/return"] for h in history]
    scores = [h["reward/score"] for h in history]
    first, last = sum(returns[:6]) / 6, sum(returns[-6:]) / 6
    assert last > first + 0.1, returns
    assert sum(scores[-6:]) / 6 > sum(scores[:6]) / 6 + 0.1, scores
    assert history[0]["reward/kl"] == pytest.approx(0.0, abs=1e-4)  # the policy starts as the reference
    assert history[-1]["reward/kl"] > 0
    assert (root / "rto" / "config.json").exists() and (root / "rto" / "tokenizer.json").exists()


def test_rto_resumes_from_its_checkpoint(models: Path):
    root = models
    training = {**TRAINING, "max_steps": 3, "save_steps": 2}
    full = run_rto(RTO, root / "start", root / "dpo", root / "rm", root / "data.jsonl", training,
                   root / "checkpoints" / "full", root / "full")  # fmt: skip
    assert len(list((root / "checkpoints" / "full").glob("run-*/state.pt"))) == 1
    # a second run finds the checkpoint after iteration 2 and runs only iteration 3, the same way
    again = run_rto(RTO, root / "start", root / "dpo", root / "rm", root / "data.jsonl", training,
                    root / "checkpoints" / "full", root / "again")  # fmt: skip
    assert [h["step"] for h in again] == [1, 2, 3]
    assert again[2]["reward/score"] == pytest.approx(full[2]["reward/score"], rel=1e-4)
    # another token-reward scale is another run: it starts at iteration 1 instead of resuming the old state
    changed = run_rto({**RTO, "beta_1": 0.01}, root / "start", root / "dpo", root / "rm", root / "data.jsonl",
                      training, root / "checkpoints" / "full", root / "changed")  # fmt: skip
    assert len(list((root / "checkpoints" / "full").glob("run-*/state.pt"))) == 2
    assert changed[0]["reward/return"] != pytest.approx(full[0]["reward/return"], rel=1e-4)


def test_rto_critic_can_start_from_the_policy(models: Path):
    root = models
    params, training = {**RTO, "critic_init": "policy"}, {**TRAINING, "max_steps": 2}
    history = run_rto(params, root / "start", root / "dpo", root / "rm", root / "data.jsonl", training,
                      root / "checkpoints" / "policy-critic", root / "policy-critic")  # fmt: skip
    assert len(history) == 2 and all(math.isfinite(h["loss/value"]) for h in history)


def test_rto_is_not_a_preference_loss_and_checks_its_parameters():
    with pytest.raises(TypeError, match=r"pipeline\.rto"):
        get_method("rto").loss(None)
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) kl; valid: .*kl_coef"):
        get_method("rto").resolve_params({"kl": 0.1})
    assert get_method("rto").resolve_params({"kl_coef": 0.02})["beta_1"] == 0.05
    inputs = pack([[5, 6], [7]], [[8, 9, 2], [3]], pad_token_id=0)
    assert inputs["labels"].tolist() == [[-100, -100, 8, 9, 2], [-100, 3, -100, -100, -100]]
    assert inputs["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]


# ---------------------------------------------------------------- the DAG


def test_dag_builds_the_contrastive_models_weights_and_reward_model_once_per_variant(tmp_path: Path):
    work = clean_checkout(tmp_path)
    one = snakemake(work, "-n", "results/train/llama-base/tis_dpo/model", "results/train/llama-base/rto/model")
    assert one.returncode == 0, one.stderr
    counts = job_counts(one.stdout)
    # the DPO run is the one generic train job both new methods reuse
    assert counts["train"] == 1 and "wildcards: variant=llama-base, method=dpo" in one.stdout
    for rule in ("train_dpo_reverse", "tis_weights", "train_tis_dpo", "rto_reward_model", "train_rto"):
        assert counts[rule] == 1, rule

    paper = snakemake(work, "-n", "--configfile", "workflow/config/paper.yaml")
    assert paper.returncode == 0, paper.stderr
    counts = job_counts(paper.stdout)
    for rule in ("train_dpo_reverse", "tis_weights", "train_tis_dpo", "rto_reward_model", "train_rto"):
        assert counts[rule] == 4 + 2, rule  # the four variants and the HH experiment's two runs
    assert counts["train"] == (4 + 2) * 7  # every other method; tis_dpo and rto have their own rules
