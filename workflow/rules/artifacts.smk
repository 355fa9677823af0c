rule build_artifact:
    # --cache (SNAKEMAKE_OUTPUT_CACHE): reused across checkouts, keyed by params incl. the env hash (README)
    cache: True
    input:
        model="resources/models/{model}",
        env=env_info(artifact_env_name),
    output:
        directory("resources/artifacts/{model}/{artifact}"),
    params:
        spec=artifact_spec,
        python=env_python(artifact_env_name),
        env_hash=env_hash(artifact_env_name),
    log:
        "logs/build_artifact/{model}/{artifact}.log",
    conda:
        artifact_env
    shell:
        "LLMBENCH_ENV_HASH={params.env_hash} {params.python} -m llmbench build-artifact --spec {params.spec} --out {output} > {log} 2>&1"
