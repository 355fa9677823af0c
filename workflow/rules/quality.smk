def scoring_variant(model, artifact):
    """The first variant that benchmarks this artifact with an engine that can score (teacher forced)."""
    for m, a, v, _ in jobs():
        if (m, a) == (model, artifact) and hasattr(engines.adapter_class(config["variants"][v]["engine"]), "score"):
            return v
    return None


def quality_files():
    """One quality file per (model, artifact) of a real (not synthetic) model that some engine can score."""
    if "quality" not in config:
        return []
    pairs = dict.fromkeys((m, a) for m, a, _, _ in jobs())
    return [
        f"results/quality/{m}/{a}.parquet"
        for m, a in pairs
        if not config["models"][m]["source"].startswith("synthetic:") and scoring_variant(m, a)
    ]


def quality_reference(wildcards):
    ref = config["quality"]["reference_artifact"]
    return [] if wildcards.artifact == ref else [f"results/quality/{wildcards.model}/{ref}.parquet"]


def quality_variant_env(wildcards):
    v = config["variants"][scoring_variant(wildcards.model, wildcards.artifact)]
    return engines.env(v["engine"], v.get("options", {}))


def quality_spec(wildcards):
    v = scoring_variant(wildcards.model, wildcards.artifact)
    ref = quality_reference(wildcards)
    return quoted(
        {
            "model": wildcards.model,
            "artifact": wildcards.artifact,
            "artifact_dir": f"resources/artifacts/{wildcards.model}/{wildcards.artifact}",
            "variant_name": v,
            "variant": config["variants"][v],
            "quality": config["quality"],
            "reference_quality": ref[0] if ref else None,
        }
    )


rule quality:
    input:
        artifact="resources/artifacts/{model}/{artifact}",
        reference=quality_reference,
        env=env_info(quality_variant_env),
    output:
        "results/quality/{model}/{artifact}.parquet",
    params:
        spec=quality_spec,
        python=env_python(quality_variant_env),
        env_hash=env_hash(quality_variant_env),
    log:
        "logs/quality/{model}/{artifact}.log",
    conda:
        lambda wildcards: env_file(quality_variant_env(wildcards))
    shell:
        "LLMBENCH_ENV_HASH={params.env_hash} {params.python} -m llmbench quality --spec {params.spec} --out {output} > {log} 2>&1"
