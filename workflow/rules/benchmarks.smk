rule benchmark:
    input:
        model="resources/models/{model}",
        artifact="resources/artifacts/{model}/{artifact}",
        prompts=scenario_prompts,
        env=env_info(engine_env_name),
        reference=bench_quality_reference,
    output:
        runs="results/runs/{model}/{artifact}/{variant}/{scenario}.parquet",
        # the line's quality row when this job carries it (plan.quality_carrier), else an empty quality table
        quality="results/runs/{model}/{artifact}/{variant}/{scenario}.quality.parquet",
    params:
        spec=bench_spec,
        python=env_python(engine_env_name),
        env_hash=env_hash(engine_env_name),
        launcher=bench_launcher,
    threads: all_cores()  # a benchmark runs alone: a job beside it would take the cores it measures
    resources:
        gpu=gpus,
        gpu_model=gpu_model,
    log:
        "logs/benchmark/{model}/{artifact}/{variant}/{scenario}.log",
    conda:
        engine_env
    shell:
        "LLMBENCH_ENV_HASH={params.env_hash} {params.python} {params.launcher} -m llmbench bench --spec {params.spec} --out {output.runs} --quality-out {output.quality} > {log} 2>&1"
