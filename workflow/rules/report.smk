# The report's plots and HTML tables, drawn from the merged tables only (llmbench/analysis/plots.py and
# report_tables.py), in their own small env. `snakemake --report results/report.html` collects them, with the
# tables of tables.smk / serving.smk, by the categories below.


rule plots:
    input:
        summary="results/tables/latency.parquet",
        requests="results/tables/requests.parquet",
        env=env_info("report"),
    output:
        **{
            name: report(
                f"results/plots/{name}.png",
                caption=f"../report/plot-{name}.rst",
                category=category,
            )
            for name, category in PLOT_CATEGORIES.items()
        },
        svg=expand("results/plots/{name}.svg", name=list(PLOT_CATEGORIES)),
    params:
        python=env_python("report"),
        env_hash=env_hash("report"),
    log:
        "logs/plots.log",
    conda:
        "../../envs/report.yaml"
    shell:
        "LLMBENCH_ENV_HASH={params.env_hash} {params.python} -m llmbench plots --tables results/tables "
        "--out results/plots > {log} 2>&1"


rule report_tables:
    input:
        summary="results/tables/latency.parquet",
        requests="results/tables/requests.parquet",
        env=env_info("report"),
    output:
        **{
            name.replace("-", "_"): report(
                f"results/report/{name}.html",
                caption=f"../report/table-{name}.rst",
                category=category,
            )
            for name, category in TABLE_CATEGORIES.items()
        },
    params:
        python=env_python("report"),
        env_hash=env_hash("report"),
    log:
        "logs/report_tables.log",
    conda:
        "../../envs/report.yaml"
    shell:
        "LLMBENCH_ENV_HASH={params.env_hash} {params.python} -m llmbench report-tables --tables results/tables "
        "--out results/report > {log} 2>&1"


rule serving_plots:
    input:
        summary="results/tables/serving.parquet",
        env=env_info("report"),
    output:
        throughput=report(
            "results/plots/serving-throughput.png",
            caption="../report/plot-serving-throughput.rst",
            category="Serving",
        ),
        latency=report(
            "results/plots/serving-latency.png",
            caption="../report/plot-serving-latency.rst",
            category="Serving",
        ),
        svg=["results/plots/serving-throughput.svg", "results/plots/serving-latency.svg"],
    params:
        python=env_python("report"),
        env_hash=env_hash("report"),
    log:
        "logs/serving_plots.log",
    conda:
        "../../envs/report.yaml"
    shell:
        "LLMBENCH_ENV_HASH={params.env_hash} {params.python} -m llmbench plots --serving --tables results/tables "
        "--out results/plots > {log} 2>&1"
