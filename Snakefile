# llmbench: fetch weights -> build artifacts -> benchmark artifact x engine variant x scenario -> tables.
# Run: snakemake --cores 1 --resources gpu=1     (see README.md)

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


# On a cluster (profiles/slurm) these run on the submitting host: downloads and env builds need the network that
# compute nodes often lack; merges and plots are seconds and measure nothing.
localrules:
    all,
    build_env,
    fetch_model,
    merge_tables,
    merge_serving,
    plots,
    report_tables,
    serving_plots,


include: "workflow/rules/common.smk"
include: "workflow/rules/envs.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/artifacts.smk"
include: "workflow/rules/benchmarks.smk"
include: "workflow/rules/quality.smk"
include: "workflow/rules/serving.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        final_tables(),
    default_target: True
