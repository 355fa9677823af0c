rule benchmark:
    input:
        model="resources/models/{model}",
        artifact="resources/artifacts/{model}/{artifact}",
        prompts=scenario_prompts,
    output:
        "results/runs/{model}/{artifact}/{variant}/{scenario}.parquet",
    params:
        spec=bench_spec,
        python=PYTHON,
    resources:
        gpu=gpus,
    log:
        "logs/benchmark/{model}/{artifact}/{variant}/{scenario}.log",
    conda:
        engine_env
    shell:
        "{params.python} -m llmbench bench --spec {params.spec} --out {output} > {log} 2>&1"
