rule fetch_model:
    # --cache (SNAKEMAKE_OUTPUT_CACHE): reused across checkouts, keyed by params incl. the env hash (README)
    cache: True
    input:
        env=env_info("hf"),
    output:
        directory("resources/models/{model}"),
    params:
        spec=model_spec,
        python=env_python("hf"),
        env_hash=env_hash("hf"),
    log:
        "logs/fetch_model/{model}.log",
    conda:
        "../../envs/hf.yaml"
    shell:
        "LLMBENCH_ENV_HASH={params.env_hash} {params.python} -m llmbench fetch-model --spec {params.spec} --out {output} > {log} 2>&1"
