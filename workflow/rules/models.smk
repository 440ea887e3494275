# Stage 1b: the four model variants, and SFT for the Base ones.
# A hub variant becomes a pointer (weights stay in the HF cache); a tiny
# variant is built here; a tiny Instruct stand-in is its tiny Base after a
# short SFT, so that Base and Instruct really differ.


localrules:
    init_hub_model,


rule tokenizer:
    input:
        [dataset_file(name) for name in config["tokenizer"]["corpus"]],
    output:
        directory("results/models/tokenizer"),
    params:
        vocab=config["tokenizer"]["vocab_size"],
    log:
        "results/logs/tokenizer.log",
    benchmark:
        "results/benchmarks/tokenizer.tsv"
    shell:
        "{PYTHON} -m pipeline.models tokenizer --corpus {input} --vocab-size {params.vocab} --out {output} > {log} 2>&1"


rule tiny_model:
    input:
        "results/models/tokenizer",
    output:
        directory("results/models/tiny-{arch}"),
    params:
        size=as_json(config["tiny_model"]),
        seed=config["seed"],
    log:
        "results/logs/tiny_model/{arch}.log",
    benchmark:
        "results/benchmarks/tiny_model/{arch}.tsv"
    shell:
        "{PYTHON} -m pipeline.models tiny --arch {wildcards.arch} --tokenizer {input} --size {params.size:q} "
        "--seed {params.seed} --out {output} > {log} 2>&1"


def local_checkpoint(wildcards):
    """The files of a variant's model given as a local checkpoint directory: inputs, so that a changed
    checkpoint reruns its pointer (Snakemake sees a directory's own mtime only); a hub id is pinned by its revision.
    """
    name = os.path.normpath(os.path.expanduser(variant_spec(wildcards)["model"]["hub"]))
    if not os.path.isdir(name):
        return []
    files = (os.path.join(root, f) for root, _, names in os.walk(name) for f in names)
    return sorted(f for f in files if not any(part.startswith(".") for part in os.path.relpath(f, name).split(os.sep)))


rule init_hub_model:
    # A pointer to the hub checkpoint (downloaded here, on the login node; the commit is recorded)
    # or to a local checkpoint directory (never downloaded; its content hash is recorded).
    input:
        local_checkpoint,
    output:
        directory("results/models/{variant}/init"),
    wildcard_constraints:
        variant=alternatives(HUB_VARIANTS),
    params:
        hub=lambda w: variant_spec(w)["model"]["hub"],
        revision=lambda w: (
            f"--revision {variant_spec(w)['model']['revision']}" if variant_spec(w)["model"]["revision"] else ""
        ),
        template=lambda w: (
            f"--chat-template {variant_spec(w)['model']['chat_template']}"
            if variant_spec(w)["model"]["chat_template"]
            else ""
        ),
    log:
        "results/logs/init_model/{variant}.log",
    benchmark:
        "results/benchmarks/init_model/{variant}.tsv"
    shell:
        "{PYTHON} -m pipeline.models pointer --download --name-or-path {params.hub} {params.revision} {params.template} "
        "--out {output} > {log} 2>&1"


rule init_tiny_base:
    input:
        lambda w: f"results/models/tiny-{variant_spec(w)['model']['tiny']}",
    output:
        directory("results/models/{variant}/init"),
    wildcard_constraints:
        variant=alternatives(TINY_BASE_VARIANTS),
    log:
        "results/logs/init_model/{variant}.log",
    benchmark:
        "results/benchmarks/init_model/{variant}.tsv"
    shell:
        "{PYTHON} -m pipeline.models pointer --name-or-path {input} --out {output} > {log} 2>&1"


rule init_tiny_instruct:
    input:
        model=lambda w: f"results/models/tiny-{variant_spec(w)['model']['tiny']}",
        data=lambda w: dataset_file(variant_spec(w)["model"]["instruct_stand_in"]),
    output:
        model=directory("results/models/{variant}/init"),
        history="results/models/{variant}/init.log_history.json",
    wildcard_constraints:
        variant=alternatives(TINY_INSTRUCT_VARIANTS),
    params:
        training=as_json(config["instruct_stand_in_training"]),
        launch=lambda w, resources: launch(resources, config["instruct_stand_in_training"]),
    log:
        "results/logs/init_model/{variant}.log",
    benchmark:
        "results/benchmarks/init_model/{variant}.tsv"
    shell:
        "{params.launch} -m pipeline.sft --model {input.model} --data {input.data} --training {params.training:q} "
        "--checkpoints results/checkpoints/{wildcards.variant}/init --out {output.model} "
        "--log-history {output.history} > {log} 2>&1"


rule sft:
    input:
        model="results/models/{variant}/init",
        data=lambda w: dataset_file(variant_spec(w)["sft"]["data"]),
    output:
        model=directory("results/models/{variant}/sft"),
        history="results/models/{variant}/sft.log_history.json",
    params:
        training=as_json(config["sft_training"]),
        launch=lambda w, resources: launch(resources, config["sft_training"]),
    log:
        "results/logs/sft/{variant}.log",
    benchmark:
        "results/benchmarks/sft/{variant}.tsv"
    shell:
        "{params.launch} -m pipeline.sft --model {input.model} --data {input.data} --training {params.training:q} "
        "--checkpoints results/checkpoints/{wildcards.variant}/sft --out {output.model} "
        "--log-history {output.history} > {log} 2>&1"
