# Software envs without conda (software_envs.backend: venv): the venv an envs/<env>.yaml file describes.
# The params entry is the env file's requirements hash, so a changed pin (not a comment) rebuilds exactly
# that env, and the jobs that run in it (their input env.json is renewed). The env file itself is ancient():
# its mtime alone rebuilds nothing. The build runs in the driver's interpreter (llmbench.planning.env_build.build).


rule build_env:
    input:
        env_file=ancient(lambda wildcards: env_file_input(wildcards.env)),
    output:
        "resources/envs/{env}/env.json",
    params:
        requirements_hash=lambda wildcards: env_requirements_hash(wildcards.env),
        prefix=lambda wildcards, output: str(Path(output[0]).parent),
        # software_envs.wheelhouse / provided_python (offline installs): a change rebuilds the env
        offline=lambda wildcards: plan.env_build_flags(config, wildcards.env),
    log:
        "logs/build_env/{env}.log",
    wildcard_constraints:
        env="[^/]+",
    run:
        shell(
            "{DRIVER_PYTHON} -m llmbench build-env --name {wildcards.env} --file {input.env_file}"
            " --prefix {params.prefix} {params.offline} > {log} 2>&1"
        )
