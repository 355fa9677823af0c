rule fetch_model:
    output:
        directory("resources/models/{model}"),
    params:
        spec=model_spec,
        python=PYTHON,
    log:
        "logs/fetch_model/{model}.log",
    conda:
        "../../envs/hf.yaml"
    shell:
        "{params.python} -m llmbench fetch-model --spec {params.spec} --out {output} > {log} 2>&1"
