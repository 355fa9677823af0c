rule build_artifact:
    input:
        model="resources/models/{model}",
    output:
        directory("resources/artifacts/{model}/{artifact}"),
    params:
        spec=artifact_spec,
        python=PYTHON,
    log:
        "logs/build_artifact/{model}/{artifact}.log",
    benchmark:
        "logs/build_artifact/{model}/{artifact}.benchmark.tsv"
    conda:
        artifact_env
    shell:
        "{params.python} -m llmbench build-artifact --spec {params.spec} --out {output} > {log} 2>&1"
