rule merge_tables:
    input:
        runs=run_files(),
        quality=quality_files(),
        env=env_info("hf"),
    output:
        md=report(
            "results/tables/latency.md",
            caption="../report/latency.rst",
            category="Latency",
        ),
        summary="results/tables/latency.parquet",
        requests="results/tables/requests.parquet",
    params:
        spec=quoted(config.get("quality", {})),
        pricing=quoted(config.get("pricing", [])),
        python=env_python("hf"),
        env_hash=env_hash("hf"),
    log:
        "logs/merge_tables.log",
    conda:
        "../../envs/hf.yaml"
    shell:
        "LLMBENCH_ENV_HASH={params.env_hash} {params.python} -m llmbench merge --out-dir results/tables --quality-spec {params.spec} --pricing {params.pricing} --quality {input.quality} --runs {input.runs} > {log} 2>&1"
