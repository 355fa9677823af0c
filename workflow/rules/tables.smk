rule merge_tables:
    input:
        run_files(),
    output:
        md=report(
            "results/tables/latency.md",
            caption="../report/latency.rst",
            category="Tables",
        ),
        summary="results/tables/latency.parquet",
        requests="results/tables/requests.parquet",
    params:
        python=PYTHON,
    log:
        "logs/merge_tables.log",
    conda:
        "../../envs/hf.yaml"
    shell:
        "{params.python} -m llmbench merge --out-dir results/tables {input} > {log} 2>&1"
