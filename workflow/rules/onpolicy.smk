# Stage 1c: on-policy preference data (SimPO's protocol for the Instruct variants)
# and the reward models that label it (suite/onpolicy.py, suite/reward.py).
#   sample -> score -> binarize -> results/data/{dataset}.jsonl, which training reads
# Samples and scores are written in shards under results/onpolicy/{dataset}/shards/
# (not a rule output, keyed by a hash of the settings), so a killed or timed-out
# job resumes from its finished shards and a changed setting never reuses them.
import types

REWARD_MODELS = config["reward_models"]
HUB_REWARD_MODELS = [name for name, entry in REWARD_MODELS.items() if "hub" in entry]
TRAINED_REWARD_MODELS = [name for name, entry in REWARD_MODELS.items() if "train" in entry]


def onpolicy_spec(wildcards):
    return config["datasets"][wildcards.dataset]["onpolicy"]


def onpolicy_policy_model(wildcards):
    """The policy samples from the model its preference training starts from."""
    return start_model(types.SimpleNamespace(variant=onpolicy_spec(wildcards)["policy"]))


def onpolicy_reward(wildcards):
    return REWARD_MODELS[onpolicy_spec(wildcards)["reward_model"]]


def reward_base(wildcards):
    base = REWARD_MODELS[wildcards.reward_model]["train"]["base"]
    return f"results/models/tiny-{base['tiny']}" if "tiny" in base else f"results/models/{base['stage']}"


localrules:
    reward_model_hub,
    onpolicy_binarize,


rule reward_model_hub:
    # A pointer stage (with trust_remote_code) once the weights are in the HF cache; login node.
    output:
        directory("results/reward_models/{reward_model}"),
    wildcard_constraints:
        reward_model=alternatives(HUB_REWARD_MODELS),
    params:
        hub=lambda w: REWARD_MODELS[w.reward_model]["hub"],
        revision=lambda w: (
            f"--revision {REWARD_MODELS[w.reward_model]['revision']}" if REWARD_MODELS[w.reward_model]["revision"] else ""
        ),
        trust=lambda w: "--trust-remote-code" if REWARD_MODELS[w.reward_model]["trust_remote_code"] else "",
    log:
        "results/logs/reward_model/{reward_model}.log",
    benchmark:
        "results/benchmarks/reward_model/{reward_model}.tsv"
    shell:
        "{PYTHON} -m pipeline.reward pointer --download --hub {params.hub} {params.revision} {params.trust} "
        "--out {output} > {log} 2>&1"


rule train_reward_model:
    input:
        base=reward_base,
        data=lambda w: dataset_file(REWARD_MODELS[w.reward_model]["train"]["data"]),
    output:
        model=directory("results/reward_models/{reward_model}"),
        history="results/reward_models/{reward_model}.log_history.json",
        eval="results/reward_models/{reward_model}.eval.json",
    wildcard_constraints:
        reward_model=alternatives(TRAINED_REWARD_MODELS),
    params:
        training=lambda w: as_json(REWARD_MODELS[w.reward_model]["train"]["training"]),
        held_out=lambda w: REWARD_MODELS[w.reward_model]["train"]["held_out"],
        launch=lambda w, resources: launch(resources, REWARD_MODELS[w.reward_model]["train"]["training"]),
    log:
        "results/logs/reward_model/{reward_model}.log",
    benchmark:
        "results/benchmarks/reward_model/{reward_model}.tsv"
    shell:
        "{params.launch} -m pipeline.reward train --base {input.base} --data {input.data} "
        "--training {params.training:q} --held-out {params.held_out} "
        "--checkpoints results/checkpoints/reward_models/{wildcards.reward_model} --out {output.model} "
        "--log-history {output.history} --eval-out {output.eval} > {log} 2>&1"


rule onpolicy_sample:
    input:
        model=onpolicy_policy_model,
        prompts=lambda w: dataset_file(onpolicy_spec(w)["prompts"]),
    output:
        samples="results/onpolicy/{dataset}/samples.jsonl",
        meta="results/onpolicy/{dataset}/samples.json",
    wildcard_constraints:
        dataset=alternatives(ONPOLICY_DATASETS),
    params:
        n_samples=lambda w: onpolicy_spec(w)["n_samples"],
        decoding=lambda w: as_json(onpolicy_spec(w)["decoding"]),
        backend=lambda w: onpolicy_spec(w)["backend"],
        shard_size=lambda w: onpolicy_spec(w)["shard_size"],
        limit=lambda w: limit_flag(onpolicy_spec(w)),
        batch_size=config["compute"]["generation_batch_size"],
        # vLLM spreads one model over the job's GPUs itself; the hf backend runs one process per GPU
        launch=lambda w, resources: PYTHON if onpolicy_spec(w)["backend"] == "vllm" else launch_processes(resources),
        seed=config["seed"],
    log:
        "results/logs/onpolicy/{dataset}.sample.log",
    benchmark:
        "results/benchmarks/onpolicy/{dataset}.sample.tsv"
    shell:
        "{params.launch} -m pipeline.onpolicy sample --model {input.model} --prompts {input.prompts} {params.limit} "
        "--n-samples {params.n_samples} --decoding {params.decoding:q} --backend {params.backend} "
        "--shard-size {params.shard_size} --batch-size {params.batch_size} --seed {params.seed} "
        "--work-dir results/onpolicy/{wildcards.dataset}/shards --out {output.samples} --meta {output.meta} "
        "> {log} 2>&1"


rule onpolicy_score:
    input:
        samples="results/onpolicy/{dataset}/samples.jsonl",
        reward=lambda w: f"results/reward_models/{onpolicy_spec(w)['reward_model']}",
    output:
        scores="results/onpolicy/{dataset}/scores.jsonl",
        meta="results/onpolicy/{dataset}/scores.json",
    wildcard_constraints:
        dataset=alternatives(ONPOLICY_DATASETS),
    params:
        dtype=lambda w: onpolicy_reward(w)["dtype"],
        batch_size=lambda w: onpolicy_reward(w)["batch_size"],
        shard_size=lambda w: onpolicy_spec(w)["shard_size"],
    log:
        "results/logs/onpolicy/{dataset}.score.log",
    benchmark:
        "results/benchmarks/onpolicy/{dataset}.score.tsv"
    shell:
        "{PYTHON} -m pipeline.onpolicy score --samples {input.samples} --reward {input.reward} --dtype {params.dtype} "
        "--batch-size {params.batch_size} --shard-size {params.shard_size} "
        "--work-dir results/onpolicy/{wildcards.dataset}/shards --out {output.scores} --meta {output.meta} "
        "> {log} 2>&1"


rule onpolicy_binarize:
    input:
        samples="results/onpolicy/{dataset}/samples.jsonl",
        samples_meta="results/onpolicy/{dataset}/samples.json",
        scores="results/onpolicy/{dataset}/scores.jsonl",
        scores_meta="results/onpolicy/{dataset}/scores.json",
    output:
        data="results/data/{dataset}.jsonl",
        meta="results/data/{dataset}.meta.json",
    wildcard_constraints:
        dataset=alternatives(ONPOLICY_DATASETS),
    params:
        describe=lambda w: as_json(
            {
                "dataset": w.dataset,
                "policy": onpolicy_spec(w)["policy"],
                "prompts": onpolicy_spec(w)["prompts"],
                "reward_model": {"name": onpolicy_spec(w)["reward_model"], **onpolicy_reward(w)},
            }
        ),
    log:
        "results/logs/onpolicy/{dataset}.binarize.log",
    benchmark:
        "results/benchmarks/onpolicy/{dataset}.binarize.tsv"
    shell:
        "{PYTHON} -m pipeline.onpolicy binarize --samples {input.samples} --samples-meta {input.samples_meta} "
        "--scores {input.scores} --scores-meta {input.scores_meta} --describe {params.describe:q} "
        "--out {output.data} --meta {output.meta} > {log} 2>&1"
