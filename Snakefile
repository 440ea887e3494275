# AAO reproducibility suite: the paper's DAG.
#   snakemake                                   CPU-scale run on tiny local models (the embedded default)
#   snakemake -n --configfile workflow/config/paper.yaml    the paper-scale DAG, dry run
#   snakemake --profile slurm                   the paper-scale DAG on a Slurm cluster
#   snakemake --report results/report.html      after a run: every table and plot in one HTML page
# The embedded default config is read only when no --configfile is given:
# Snakemake merges config files key by key, which would mix tiny and hub variants.

if not workflow.overwrite_configfiles:

    configfile: "workflow/config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/onpolicy.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/eval.smk"
include: "workflow/rules/capability.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/poc.smk"


rule all:
    input:
        TABLE_OUTPUTS,  # every table, plot and the claims (workflow/rules/aggregate.smk)
