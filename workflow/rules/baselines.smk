# Stage 2b: the baselines that need other trained models first (method spec, section 4).
#   TIS-DPO: the variant's DPO run + a reverse DPO (pairs swapped) -> token weights -> weighted DPO
#   RTO:     the variant's DPO run + a reward model -> PPO with dense token rewards
# The DPO model is the DPO run of the `train` rule, reused, never retrained. The reverse
# DPO and RTO's own reward model are not methods: they never become rows of the tables.
import types

if {"tis_dpo", "rto"} & set(METHODS) and "dpo" not in METHODS:
    raise ValueError("config: methods: tis_dpo and rto reuse each variant's DPO run; add dpo to methods")


def method_wildcards(wildcards, method):
    return types.SimpleNamespace(variant=wildcards.variant, method=method)


def method_settings(wildcards, method):
    """The method's defaults under the config's values and this variant's overrides."""
    return {**get_method(method).defaults, **method_params(method_wildcards(wildcards, method))}


def dpo_model(wildcards):
    return f"results/train/{wildcards.variant}/dpo/model"


def tis_dpo_inputs(wildcards):
    weights = f"results/tis_weights/{wildcards.variant}.pt"
    return {**train_inputs(method_wildcards(wildcards, "tis_dpo")), "weights": weights}


def reward_model_training(wildcards):
    """RTO's own reward model trains under the variant's training block with RTO's overrides."""
    return {**training_block(wildcards), **method_settings(wildcards, "rto")["reward_model_training"]}


def rto_reward(wildcards):
    """The reward model the config names (under reward_models), or the one trained for this variant."""
    name = method_settings(wildcards, "rto")["reward_model"]
    return f"results/reward_models/{name}" if name else f"results/rto/{wildcards.variant}/reward_model"


if "rto" in METHODS:
    _named = [config["methods"]["rto"].get("reward_model")]
    _named += [v["method_params"].get("rto", {}).get("reward_model") for v in config["variants"].values()]
    for _name in filter(None, _named):
        if _name not in config["reward_models"]:
            raise ValueError(f"config: methods/rto/reward_model: {_name!r} is not under reward_models")


rule train_dpo_reverse:
    input:
        model=start_model,
        data=preference_file,
        reference=reference_file,
    output:
        model=directory("results/train/{variant}/dpo_reverse/model"),
        history="results/train/{variant}/dpo_reverse/log_history.json",
    params:
        training=lambda w: as_json(training_block(w)),
        method_params=lambda w: as_json({"beta": method_settings(w, "tis_dpo")["contrastive_beta"]}),
        launch=lambda w, resources: launch(resources, training_block(w)),
    log:
        "results/logs/train/{variant}/dpo_reverse.log",
    benchmark:
        "results/benchmarks/train/{variant}/dpo_reverse.tsv"
    shell:
        "{params.launch} -m pipeline.train --method dpo --swap-pairs --params {params.method_params:q} "
        "--model {input.model} --data {input.data} --reference {input.reference} --training {params.training:q} "
        "--checkpoints results/checkpoints/{wildcards.variant}/dpo_reverse --out {output.model} "
        "--log-history {output.history} > {log} 2>&1"


rule tis_weights:
    input:
        dpo=dpo_model,
        reverse_dpo="results/train/{variant}/dpo_reverse/model",
        data=preference_file,
    output:
        "results/tis_weights/{variant}.pt",
    params:
        training=lambda w: as_json(training_block(w)),
        method_params=lambda w: as_json(method_settings(w, "tis_dpo")),
    log:
        "results/logs/tis_weights/{variant}.log",
    benchmark:
        "results/benchmarks/tis_weights/{variant}.tsv"
    shell:
        "{PYTHON} -m pipeline.tis_weights --dpo {input.dpo} --reverse {input.reverse_dpo} --data {input.data} "
        "--training {params.training:q} --params {params.method_params:q} --out {output} > {log} 2>&1"


rule train_tis_dpo:
    input:
        unpack(tis_dpo_inputs),
    output:
        model=directory("results/train/{variant}/tis_dpo/model"),
        history="results/train/{variant}/tis_dpo/log_history.json",
    params:
        training=lambda w: as_json(training_block(w)),
        method_params=lambda w: as_json(method_params(method_wildcards(w, "tis_dpo"))),
        launch=lambda w, resources: launch(resources, training_block(w)),
    log:
        "results/logs/train/{variant}/tis_dpo.log",
    benchmark:
        "results/benchmarks/train/{variant}/tis_dpo.tsv"
    shell:
        "{params.launch} -m pipeline.train --method tis_dpo --params {params.method_params:q} --model {input.model} "
        "--data {input.data} --reference {input.reference} --artifact {input.weights} "
        "--training {params.training:q} --checkpoints results/checkpoints/{wildcards.variant}/tis_dpo "
        "--out {output.model} --log-history {output.history} > {log} 2>&1"


rule rto_reward_model:
    # RTO's reward model when the config names none: TRL's RewardTrainer from the variant's
    # start model on its preference data (suite/reward.py).
    input:
        base=start_model,
        data=preference_file,
    output:
        model=directory("results/rto/{variant}/reward_model"),
        history="results/rto/{variant}/reward_model.log_history.json",
        eval="results/rto/{variant}/reward_model.eval.json",
    params:
        training=lambda w: as_json(reward_model_training(w)),
        held_out=lambda w: method_settings(w, "rto")["reward_model_held_out"],
        launch=lambda w, resources: launch(resources, reward_model_training(w)),
    log:
        "results/logs/rto/{variant}/reward_model.log",
    benchmark:
        "results/benchmarks/rto/{variant}/reward_model.tsv"
    shell:
        "{params.launch} -m pipeline.reward train --base {input.base} --data {input.data} "
        "--training {params.training:q} --held-out {params.held_out} "
        "--checkpoints results/checkpoints/{wildcards.variant}/rto_reward_model --out {output.model} "
        "--log-history {output.history} --eval-out {output.eval} > {log} 2>&1"


rule train_rto:
    input:
        model=start_model,
        dpo=dpo_model,
        reward=rto_reward,
        data=preference_file,
    output:
        model=directory("results/train/{variant}/rto/model"),
        history="results/train/{variant}/rto/log_history.json",
    params:
        training=lambda w: as_json(training_block(w)),
        method_params=lambda w: as_json(method_params(method_wildcards(w, "rto"))),
        launch=lambda w, resources: launch(resources, training_block(w)),
    log:
        "results/logs/train/{variant}/rto.log",
    benchmark:
        "results/benchmarks/train/{variant}/rto.tsv"
    shell:
        "{params.launch} -m pipeline.rto --params {params.method_params:q} --model {input.model} --dpo {input.dpo} "
        "--reward {input.reward} --data {input.data} --training {params.training:q} "
        "--checkpoints results/checkpoints/{wildcards.variant}/rto --out {output.model} "
        "--log-history {output.history} > {log} 2>&1"
