rule quality:
    input:
        artifact="resources/artifacts/{model}/{artifact}",
        reference=quality_reference,
        env=env_info(quality_variant_env),
    output:
        "results/quality/{model}/{artifact}/{variant}.parquet",
    params:
        spec=quality_spec,
        python=env_python(quality_variant_env),
        env_hash=env_hash(quality_variant_env),
    resources:
        gpu=gpus,  # the variant's engine runs where its benchmark ran (a GPU job claims the GPU it uses)
        gpu_model=gpu_model,
    log:
        "logs/quality/{model}/{artifact}/{variant}.log",
    conda:
        lambda wildcards: env_file(quality_variant_env(wildcards))
    shell:
        "LLMBENCH_ENV_HASH={params.env_hash} {params.python} -m llmbench quality --spec {params.spec} --out {output} > {log} 2>&1"
