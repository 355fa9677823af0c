# llmbench: fetch weights -> build artifacts -> benchmark artifact x engine variant x scenario -> tables.
# Run: snakemake --cores 1 --resources gpu=1     (see README.md)

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


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
