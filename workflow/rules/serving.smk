# Serving scenarios: the engine's OpenAI-compatible server on 127.0.0.1 and the streaming client, in one job
# (llmbench/serving/job.py). The rows go to results/serving/runs, one `vllm bench serve --save-result` JSON
# per sweep point to results/serving/points, the server's own output to the .server.log beside the job's log.


rule serve:
    input:
        model="resources/models/{model}",
        artifact="resources/artifacts/{model}/{artifact}",
        prompts=scenario_prompts,
        env=env_info(engine_env_name),
    output:
        runs="results/serving/runs/{model}/{artifact}/{variant}/{scenario}.parquet",
        points=directory("results/serving/points/{model}/{artifact}/{variant}/{scenario}"),
    params:
        spec=bench_spec,
        python=env_python(engine_env_name),
        env_hash=env_hash(engine_env_name),
    threads: all_cores()  # server and client are what is measured: nothing runs beside them
    resources:
        gpu=gpus,
        gpu_model=gpu_model,
    log:
        job="logs/serve/{model}/{artifact}/{variant}/{scenario}.log",
        server="logs/serve/{model}/{artifact}/{variant}/{scenario}.server.log",
    conda:
        engine_env
    shell:
        "LLMBENCH_ENV_HASH={params.env_hash} {params.python} -m llmbench serve --spec {params.spec} "
        "--out {output.runs} --points {output.points} --server-log {log.server} > {log.job} 2>&1"


rule merge_serving:
    input:
        runs=serving_files(),
        quality=serving_quality_files(),
        env=env_info("hf"),
    output:
        md=report(
            "results/tables/serving.md",
            caption="../report/serving.rst",
            category="Serving",
        ),
        summary="results/tables/serving.parquet",
        requests="results/tables/serving-requests.parquet",
    params:
        python=env_python("hf"),
        env_hash=env_hash("hf"),
        pricing=quoted(config.get("pricing", [])),
    log:
        "logs/merge_serving.log",
    conda:
        "../../envs/hf.yaml"
    shell:
        "LLMBENCH_ENV_HASH={params.env_hash} {params.python} -m llmbench merge-serving --out-dir results/tables "
        "--runs {input.runs} --quality {input.quality} --pricing {params.pricing} > {log} 2>&1"
