# Stage 1a: validate and normalise every dataset (local files here, hub datasets on the cluster).
# It runs on the login node of a cluster, which reaches the hub; compute nodes then read local files.
# Each prepared file has a manifest beside it (results/data/<dataset>.manifest.json): records read,
# kept, skipped by reason (the dataset's on_invalid policy), identical and duplicate pairs; the
# tables carry it into their notes. A local source file is an input of the rule, so editing it
# reruns exactly what depends on it; a URL source carries its sha256 (a param, and part of the
# download cache's path); a hub source its revision (the commit read is in the manifest).

POLICY_KEYS = ("on_invalid", "max_invalid_fraction", "drop_duplicates", "drop_identical")


def data_source(name):
    """The loader's view of a dataset entry: where and how to read it, named for stable record ids."""
    entry = config["datasets"][name]
    ignored = ("kind", "limit", "with_chosen", *POLICY_KEYS)
    return {"name": name, **{k: v for k, v in entry.items() if k not in ignored}}


def data_flags(name):
    """The prepare step's options of a dataset entry: its policy, limit and what a prompt set keeps."""
    entry = config["datasets"][name]
    flags = f"--policy {shlex.quote(as_json({k: entry[k] for k in POLICY_KEYS}))} {limit_flag(entry)}"
    if entry.get("with_chosen"):
        flags += " --with-chosen"
    return flags


def source_files(wildcards):
    """A local source file is an input (its edits rerun the rule); URL and hub sources are pinned in params."""
    entry = config["datasets"][wildcards.dataset]
    return [entry["path"]] if "path" in entry else []


localrules:
    prepare_data,
    prepare_data_json,


# One rule per file type (alpaca_eval's prepared file is a JSON list, every other one JSON lines),
# because a rule's outputs must share their wildcards and the manifest's name has no suffix wildcard.
for _suffix, _rule in (("jsonl", "prepare_data"), ("json", "prepare_data_json")):

    rule:
        name:
            _rule
        input:
            source_files,
        output:
            data=f"results/data/{{dataset}}.{_suffix}",
            manifest="results/data/{dataset}.manifest.json",
        wildcard_constraints:
            dataset=alternatives([n for n in PREPARED_DATASETS if dataset_file(n).endswith(f".{_suffix}")]),
        params:
            kind=lambda w: config["datasets"][w.dataset]["kind"],
            source=lambda w: as_json(data_source(w.dataset)),
            flags=lambda w: data_flags(w.dataset),
            seed=config["seed"],
        log:
            "results/logs/prepare_data/{dataset}.log",
        benchmark:
            "results/benchmarks/prepare_data/{dataset}.tsv"
        shell:
            "{PYTHON} -m pipeline.data {params.kind} --source {params.source:q} {params.flags} --seed {params.seed} "
            "--out {output.data} --manifest {output.manifest} > {log} 2>&1"
