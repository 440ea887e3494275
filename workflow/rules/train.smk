# Stage 2: reference log-probs once per (variant, dataset), then every method on every variant.
# Checkpoints live outside the rule outputs (results/checkpoints/), so a killed job resumes.


rule reference_logps:
    input:
        model=start_model,
        data=lambda w: dataset_file(w.dataset),
    output:
        "results/reference/{variant}/{dataset}.pt",
    params:
        training=lambda w: as_json(training_block(w)),
        launch=lambda w, resources: launch_processes(resources),
    log:
        "results/logs/reference_logps/{variant}/{dataset}.log",
    benchmark:
        "results/benchmarks/reference_logps/{variant}/{dataset}.tsv"
    shell:
        "{params.launch} -m pipeline.reference --model {input.model} --data {input.data} --training {params.training:q} "
        "--out {output} > {log} 2>&1"


# Trained by rules of their own (workflow/rules/baselines.smk): TIS-DPO needs its token weights, RTO is PPO.
OWN_TRAINING_RULE = ("tis_dpo", "rto")


rule train:
    input:
        unpack(train_inputs),
    output:
        model=directory("results/train/{variant}/{method}/model"),
        history="results/train/{variant}/{method}/log_history.json",
    wildcard_constraints:
        method=alternatives([m for m in METHODS if m not in OWN_TRAINING_RULE]),
    params:
        training=lambda w: as_json(training_block(w)),
        method_params=lambda w: as_json(method_params(w)),
        reference=lambda w, input: f"--reference {input.reference}" if "reference" in input.keys() else "",
        launch=lambda w, resources: launch(resources, training_block(w)),
    log:
        "results/logs/train/{variant}/{method}.log",
    benchmark:
        "results/benchmarks/train/{variant}/{method}.tsv"
    shell:
        "{params.launch} -m pipeline.train --method {wildcards.method} --params {params.method_params:q} "
        "--model {input.model} --data {input.data} {params.reference} --training {params.training:q} "
        "--checkpoints results/checkpoints/{wildcards.variant}/{wildcards.method} --out {output.model} "
        "--log-history {output.history} > {log} 2>&1"
