# Stage 1a: validate and normalise every dataset (local files here, hub datasets on the cluster).
# It runs on the login node of a cluster, which reaches the hub; compute nodes then read local files.


localrules:
    prepare_data,


rule prepare_data:
    output:
        "results/data/{dataset}.{ext}",
    wildcard_constraints:
        dataset=alternatives(PREPARED_DATASETS),
        ext="json|jsonl",
    params:
        kind=lambda w: config["datasets"][w.dataset]["kind"],
        source=lambda w: as_json(data_source(w.dataset)),
        limit=lambda w: limit_flag(config["datasets"][w.dataset]),
        seed=config["seed"],
    log:
        "results/logs/prepare_data/{dataset}.{ext}.log",
    benchmark:
        "results/benchmarks/prepare_data/{dataset}.{ext}.tsv"
    shell:
        "python -m suite.data {params.kind} --source {params.source:q} {params.limit} --seed {params.seed} --out {output} > {log} 2>&1"
