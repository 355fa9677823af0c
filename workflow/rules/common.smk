import functools
import json
import os
import shlex
import sys
from pathlib import Path

from snakemake.utils import validate

from llmbench import artifacts, engines, provenance
from llmbench.planning import envs, locks, plan
from llmbench.planning import config as llmbench_config


validate(config, schema="../schemas/config.schema.yaml")
if workflow.is_main_process:  # not in a job's own Snakemake (cluster executors): that one never takes the lock
    for message in locks.register_and_clear_stale(Path(".snakemake")):
        print(message, file=sys.stderr)
llmbench_config.check(config, Path(workflow.basedir))


wildcard_constraints:
    model="[^/]+",
    artifact="[^/]+",
    variant="[^/]+",
    scenario="[^/.]+",  # no dot: <scenario>.quality.parquet beside <scenario>.parquet (config.py refuses one)


# The planning policy (job list, scoring variant, stale check, env choice) is llmbench.planning.plan, pure
# functions of the config; the functions here only adapt it to Snakemake (wildcards, argv, workflow).


def run_files():
    return plan.run_files(config)


def serving_files():
    return plan.serving_files(config)


TABLE_VERSIONS = plan.table_versions()


def final_tables():
    return plan.final_tables(config)


PLOT_CATEGORIES = plan.PLOT_CATEGORIES
TABLE_CATEGORIES = plan.TABLE_CATEGORIES


def quoted(obj):
    """A JSON spec as one shell word; it is also the rule's params, so a change to it reruns the job."""
    return shlex.quote(json.dumps(obj, sort_keys=True))


def model_spec(wildcards):
    return quoted({"name": wildcards.model, "config": config["models"][wildcards.model]})


def artifact_spec(wildcards):
    a = config["artifacts"][wildcards.artifact]
    return quoted(
        {
            "method": a["method"],
            "params": llmbench_config.resolved_params(config, wildcards.artifact),
            "model_dir": f"resources/models/{wildcards.model}",
        }
    )


def bench_spec(wildcards):
    """The job's spec. It carries the versions of the tables the job writes: a release that changes their
    columns reruns the jobs (their params changed) instead of leaving rows the merge refuses."""
    return quoted(
        {
            "table_versions": TABLE_VERSIONS,
            "model": wildcards.model,
            "artifact": wildcards.artifact,
            "variant_name": wildcards.variant,
            "scenario_name": wildcards.scenario,
            "model_dir": f"resources/models/{wildcards.model}",
            "artifact_dir": f"resources/artifacts/{wildcards.model}/{wildcards.artifact}",
            "model_config": config["models"][wildcards.model],
            "artifact_config": {
                **config["artifacts"][wildcards.artifact],
                "params": llmbench_config.resolved_params(config, wildcards.artifact),
            },
            "variant": {
                **config["variants"][wildcards.variant],
                "options": llmbench_config.resolved_options(config, wildcards.variant),
            },
            "scenario": config["scenarios"][wildcards.scenario],
            # the line's quality, scored after the measured requests with the engine already loaded (plan.py
            # quality_carrier); None: another job of the line scores it, or the line has no quality figure
            "quality": config["quality"] if bench_scores(wildcards) else None,
            "reference_quality": (bench_quality_reference(wildcards) or [None])[0],
        }
    )


# Which benchmark job scores which line's quality, and where each latency line's first job is: computed once per
# plan (every benchmark job asks)
QUALITY_CARRIERS = plan.quality_carriers(config)
FIRST_LATENCY = plan.first_latency_scenarios(config)


def bench_scores(wildcards):
    return plan.scores_in_benchmark(config, wildcards.model, wildcards.artifact, wildcards.variant,
                                    wildcards.scenario, QUALITY_CARRIERS)


def bench_quality_reference(wildcards):
    """The reference line's quality file, for a benchmark job that scores a line other than the reference."""
    return quality_reference(wildcards) if bench_scores(wildcards) else []


def scenario_prompts(wildcards):
    """The scenario's prompt file; none for a serving scenario of random prompts."""
    return config["scenarios"][wildcards.scenario].get("prompts", [])


def gpus(wildcards):
    """GPUs a job claims (the engine decides, e.g. vLLM's tensor_parallel_size); CPU-only jobs claim none."""
    v = config["variants"][wildcards.variant]
    return engines.gpus(v["engine"], v.get("options", {}))


def bench_launcher(wildcards):
    """What the job's interpreter runs before `-m llmbench` (engines.launcher): e.g. HF tensor parallel's
    `-m torch.distributed.run --standalone --nproc-per-node N`; empty for a single process."""
    v = config["variants"][wildcards.variant]
    return shlex.join(engines.launcher(v["engine"], v.get("options", {})))


def all_cores():
    """A job that runs alone takes every core of a local run (--cores); a cluster run (no --cores) gives it 1
    unless the profile's set-threads says more (profiles/slurm gives a benchmark 8)."""
    return workflow.resource_settings.cores or 1


def gpu_model(wildcards):
    """The GPU model a GPU job asks the cluster for (config cluster.gpu_model); empty for CPU jobs, which the
    SLURM plugin then gives no --gpus at all."""
    return config.get("cluster", {}).get("gpu_model", "") if gpus(wildcards) else ""


def env_file(name):
    """The env file as the `conda:` directive takes it (absolute: conda resolves relative paths against the
    .smk file that holds the directive)."""
    return str(Path(workflow.basedir) / "envs" / f"{name}.yaml")


def env_file_input(name):
    """The env file as an input of build_env: relative to the working directory when the checkout is the working
    directory (the usual case), so a moved or copied checkout plans the same inputs and reruns nothing."""
    path = Path(env_file(name))
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def engine_env_name(wildcards):
    v = config["variants"][wildcards.variant]
    return engines.env(v["engine"], v.get("options", {}))


def artifact_env_name(wildcards):
    return artifacts.env(config["artifacts"][wildcards.artifact]["method"])


def engine_env(wildcards):
    return env_file(engine_env_name(wildcards))


def artifact_env(wildcards):
    return env_file(artifact_env_name(wildcards))


# Software envs. With --sdm conda, conda builds each rule's `conda:` env file and `python` is that env's.
# Otherwise `software_envs.backend` decides: `venv` builds the same env files as venvs in a DAG step
# (rule build_env, envs.smk) and each harness rule depends on its env's env.json; `none` runs everything
# in the driver's interpreter. Each harness rule takes `env_name` (a function of wildcards or a name).
USE_CONDA = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
ENV_BACKEND = plan.env_backend(config, USE_CONDA)
# The one parse-time side effect: the driver's interpreter reaches jobs through the environment, not the
# jobs' params (plan.DRIVER_PYTHON says why); jobs inherit the environment of this process.
# (Not realpath: a venv's bin/python resolves to the base interpreter, which does not see the venv.)
os.environ[plan.DRIVER_PYTHON_VAR] = sys.executable  # set here for the jobs, not read from the user
# Envs are installed without byte-compiling every file (planning/envs.py): a job compiles what it imports and
# writes the .pyc into its own env, once. A PYTHONDONTWRITEBYTECODE inherited from the user's shell would make
# every process of every job compile torch & co. again (vLLM's start took twice as long that way).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
DRIVER_PYTHON = plan.DRIVER_PYTHON


def _env_name(env_name, wildcards):
    return env_name(wildcards) if callable(env_name) else env_name


def env_info(env_name):
    """Input function: the env.json the job's venv is complete with (nothing unless backend venv)."""
    return lambda wildcards: plan.env_inputs(ENV_BACKEND, _env_name(env_name, wildcards))


def env_python(env_name):
    """Params function: the interpreter that runs the harness in the job."""
    return lambda wildcards: plan.env_python(ENV_BACKEND, _env_name(env_name, wildcards))


def env_hash(env_name):
    """Params function: the requirements hash of the job's env file, exported as LLMBENCH_ENV_HASH (rows
    record it as env_hash); when the driver's interpreter runs the job (backend none), the hash of the installed
    versions of what that env file names, with their dependencies (provenance.installed_hash). Being a param,
    it keys the between-workflow cache of fetch_model/build_artifact."""
    if ENV_BACKEND == "none":
        return lambda wildcards: driver_software(_env_name(env_name, wildcards))
    return lambda wildcards: env_requirements_hash(_env_name(env_name, wildcards))


@functools.cache
def env_requirements_hash(env_name):
    """The env file's requirements hash, computed once per plan (it parses the file and hashes the files its
    config settings name; every job of the env asks)."""
    return envs.requirements_hash(env_file(env_name))


@functools.cache
def driver_software(env_name):
    """backend none: what the driver's interpreter has installed of the env file's requirements, so a cached
    artifact (Snakemake's between-workflow cache hashes params, not the interpreter) is never reused across a
    changed library, and installing a plugin does not rebuild every artifact."""
    return provenance.installed_hash(envs.requirement_names(env_file(env_name)))


# --- quality (rule quality in quality.smk) ---


def quality_files():
    return plan.quality_files(config)


def serving_quality_files():
    return plan.serving_quality_files(config)


def quality_reference(wildcards):
    return plan.quality_reference(config, wildcards.model, wildcards.artifact, wildcards.variant, FIRST_LATENCY)


def quality_variant_env(wildcards):
    v = config["variants"][wildcards.variant]
    return engines.env(v["engine"], v.get("options", {}))


def quality_spec(wildcards):
    v = wildcards.variant
    ref = quality_reference(wildcards)
    return quoted(
        {
            "table_versions": TABLE_VERSIONS,
            "model": wildcards.model,
            "artifact": wildcards.artifact,
            "artifact_dir": f"resources/artifacts/{wildcards.model}/{wildcards.artifact}",
            "variant_name": v,
            "variant": {**config["variants"][v], "options": llmbench_config.resolved_options(config, v)},
            "quality": config["quality"],
            "reference_quality": ref[0] if ref else None,
        }
    )


# Stale built directories stop the run before any job: a stale artifact is never measured, and never
# silently rebuilt from under a result either. Those given to --forcerun (or all, with --forceall) are
# rebuilt instead. Snakemake's argv, since its DAG settings do not exist yet at parse time.
_stale = plan.stale_to_stop(config, sys.argv[1:])
if _stale:
    raise WorkflowError(plan.stale_message(_stale))
